package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/loomllm/loom/model/loader"
	"github.com/loomllm/loom/model/tokenizer"
)

// tokenizeStdin is where "loom tokenize -" reads its text (tests replace it).
var tokenizeStdin io.Reader = os.Stdin

func init() {
	register(command{
		name:    "tokenize",
		summary: "print the token ids of a text",
		run:     runTokenize,
	})
}

func runTokenize(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("tokenize", stderr)
	path := fs.String("model", "", "model `file` (GGUF) or Hugging Face directory")
	noBOS := fs.Bool("no-bos", false, "do not add the BOS token the vocabulary asks for")
	pieces := fs.Bool("pieces", false, "also print the tokens' vocabulary strings, as a JSON array on a second line")
	special := fs.Bool("special", false, "recognise control tokens written in the text (\"<|im_start|>\")")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: loom tokenize --model FILE [--no-bos] [--pieces] [--special] [TEXT | -]")
		fmt.Fprintln(stderr, "\nPrints the token ids of TEXT (or of standard input, for - or no TEXT) as a JSON array on one line.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *path == "" {
		return fmt.Errorf("%w: --model is required", errUsage)
	}
	text := strings.Join(fs.Args(), " ")
	if fs.NArg() == 0 || (fs.NArg() == 1 && fs.Arg(0) == "-") {
		b, err := io.ReadAll(tokenizeStdin)
		if err != nil {
			return fmt.Errorf("reading standard input: %w", err)
		}
		text = string(b)
	}

	m, err := loader.Open(*path)
	if err != nil {
		return err
	}
	tok, err := tokenizer.New(&m.Tokenizer)
	m.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", *path, err)
	}
	ids := tok.Encode(text, tokenizer.EncodeOptions{AddSpecial: true, ParseSpecial: *special})
	if *noBOS && tok.AddBOS() && len(ids) > 0 && ids[0] == tok.BOS() {
		ids = ids[1:]
	}

	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	if ids == nil {
		ids = []int32{}
	}
	if err := enc.Encode(ids); err != nil {
		return err
	}
	if *pieces {
		ps := make([]string, len(ids))
		for i, id := range ids {
			ps[i] = tok.Piece(id)
		}
		return enc.Encode(ps)
	}
	return nil
}
