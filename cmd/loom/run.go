package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/loomllm/loom"
	"github.com/loomllm/loom/runtime/constrain"
)

func init() {
	register(command{
		name:    "run",
		summary: "generate text from a prompt",
		run:     runRun,
	})
}

// stringsFlag collects a repeatable string flag (--stop A --stop B).
type stringsFlag []string

func (s *stringsFlag) String() string { return strings.Join(*s, ", ") }

func (s *stringsFlag) Set(v string) error {
	*s = append(*s, v)
	return nil
}

// runFlags are the flags of loom run.
type runFlags struct {
	model, prompt, promptFile, device, weights string
	kvType, draftModel, jsonSchemaFile         string
	maxTokens, topK, beams, ctx, threads       int
	lookup                                     int
	temperature, topP, minP, repeat            float64
	seed                                       int64
	stop                                       stringsFlag
	json                                       bool
	jsonSchema                                 []byte // --json-schema's text, checked by check
}

func runRun(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("run", stderr)
	var f runFlags
	f.register(fs)
	fs.StringVar(&f.prompt, "prompt", "", "the prompt `text` (empty: start from BOS alone)")
	fs.StringVar(&f.promptFile, "prompt-file", "", "read the prompt from `file` (one trailing newline is dropped)")
	fs.IntVar(&f.beams, "beams", 1, "beam search with `B` beams (1: sampling or greedy)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: loom run [--model FILE|DIR] [--prompt TEXT | --prompt-file F] [flags]")
		fmt.Fprintln(stderr, "\nGenerates text: the prompt and its continuation go to standard output as they are")
		fmt.Fprintln(stderr, "produced, statistics to standard error. Without --model, loom runs a tiny built-in")
		fmt.Fprintln(stderr, "model with random weights (a demo of the machinery; its text means nothing).")
		fmt.Fprintln(stderr)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q (the prompt goes in --prompt)", errUsage, fs.Args())
	}
	if err := f.check(); err != nil {
		return err
	}
	if f.promptFile != "" {
		b, err := os.ReadFile(f.promptFile)
		if err != nil {
			return err
		}
		f.prompt = strings.TrimSuffix(string(b), "\n")
	}

	draft, err := f.openDraft(stderr)
	if err != nil {
		return err
	}
	if draft != nil {
		defer draft.Close()
	}
	m, err := openModel(f.model, loom.Options{Device: f.device, Threads: f.threads, Context: f.ctx,
		Sequences: f.beams, WeightType: f.weights, PromptLookup: f.lookup, KVType: f.kvType, Draft: draft}, stderr)
	if err != nil {
		return err
	}
	defer m.Close()

	ids, err := m.Encode(f.prompt)
	if err != nil {
		return err
	}
	opt := loom.GenerateOptions{MaxTokens: f.maxTokens, Temperature: float32(f.temperature), TopK: f.topK,
		TopP: float32(f.topP), MinP: float32(f.minP), RepeatPenalty: float32(f.repeat), Stop: f.stop, Beams: f.beams,
		JSON: f.json, JSONSchema: f.jsonSchema}
	if f.seed < 0 {
		f.seed = time.Now().UnixNano() & math.MaxInt64
	}
	opt.Seed = uint64(f.seed)
	// Unless asked for explicitly, the number of tokens is cut to what
	// the context has room for.
	explicit := false
	fs.Visit(func(fl *flag.Flag) { explicit = explicit || fl.Name == "max-tokens" })
	if room := m.Info().Context - len(ids); !explicit && opt.MaxTokens > room {
		opt.MaxTokens = max(room, 0)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	// stdout: the prompt as the model reads it (llama2.c prints the
	// prompt's tokens), then the continuation as it comes.
	if _, err := io.WriteString(stdout, m.Tokenizer().Decode(ids)); err != nil {
		return err
	}
	var werr error
	st, err := m.Stream(ctx, ids, opt, func(t loom.Token) bool {
		if t.Text != "" {
			_, werr = io.WriteString(stdout, t.Text)
		}
		return werr == nil
	})
	fmt.Fprintln(stderr)
	if werr != nil {
		return werr
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	finish := st.Finish
	if err != nil {
		finish = "interrupted"
	}
	fmt.Fprintf(stderr, "prompt: %d tokens, %.1f tokens/s; generated: %d tokens, %.1f tokens/s; finish: %s; seed %d\n",
		st.PromptTokens, st.PrefillRate(), st.Tokens, st.DecodeRate(), finish, f.seed)
	if st.Drafted > 0 {
		fmt.Fprintf(stderr, "drafts: %d of %d accepted (%d tokens made without a step of their own)\n", st.Accepted, st.Drafted, st.Accepted)
	}
	return nil
}

// register adds the flags run and chat share: the model, the device and
// the sampling options.
func (f *runFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.model, "model", "", "model `file` (GGUF) or Hugging Face directory; without it, a built-in random-weight demo model")
	fs.IntVar(&f.maxTokens, "max-tokens", 256, "most tokens to generate (0: until the context is full)")
	fs.Float64Var(&f.temperature, "temperature", 0.8, "sampling temperature; 0 is greedy")
	fs.IntVar(&f.topK, "top-k", 40, "keep the `K` most likely tokens (0: all)")
	fs.Float64Var(&f.topP, "top-p", 0.95, "keep the most likely tokens up to probability `P` (1: all)")
	fs.Float64Var(&f.minP, "min-p", 0.05, "drop tokens less likely than `P` times the most likely (0: none)")
	fs.Float64Var(&f.repeat, "repeat-penalty", 1, "penalise tokens among the last 64 (1: off)")
	fs.Int64Var(&f.seed, "seed", -1, "random seed (-1: a new one each run, printed with the statistics)")
	fs.Var(&f.stop, "stop", "stop where `S` appears in the text (repeatable; not printed)")
	fs.IntVar(&f.ctx, "ctx", 0, "context size in tokens (0: the model's, capped by memory)")
	fs.StringVar(&f.device, "device", defaultDevice(), "auto, cpu, cuda or cuda:N (default $LOOM_DEVICE, else auto)")
	fs.IntVar(&f.threads, "threads", 0, "CPU threads (0: all cores)")
	fs.StringVar(&f.weights, "weight-type", "", "convert float weights while loading: q8_0, f16 or bf16")
	fs.StringVar(&f.kvType, "kv-type", "", "key/value cache element type: f32, f16 or bf16 (default: f32 on the CPU, f16 on a GPU)")
	fs.BoolVar(&f.json, "json", false, "constrain the output to a JSON object (ends when it closes)")
	fs.StringVar(&f.jsonSchemaFile, "json-schema", "", "constrain the output to an instance of the JSON Schema in `file` (ends when it closes; see the README for the keywords supported)")
	fs.IntVar(&f.lookup, "lookup", 0, "greedy only: verify up to `N` draft tokens a step, found by looking the last tokens up in the text so far, or proposed by --draft-model (same output, fewer steps when the drafts are good)")
	fs.StringVar(&f.draftModel, "draft-model", "", "greedy only: a smaller model `file` of the same vocabulary that proposes the drafts (speculative decoding; --lookup drafts a step, 4 by default)")
}

// openDraft loads --draft-model, if given, on the same device (and
// defaults --lookup to 4 drafts a step).
func (f *runFlags) openDraft(stderr io.Writer) (*loom.Model, error) {
	if f.draftModel == "" {
		return nil, nil
	}
	if f.lookup == 0 {
		f.lookup = 4
	}
	return openModel(f.draftModel, loom.Options{Device: f.device, Threads: f.threads, Context: f.ctx, Sequences: 1,
		KVType: f.kvType}, stderr)
}

// check rejects flag values out of range.
func (f *runFlags) check() error {
	bad := func(name string, v any) error { return fmt.Errorf("%w: --%s %v is out of range", errUsage, name, v) }
	switch {
	case f.prompt != "" && f.promptFile != "":
		return fmt.Errorf("%w: --prompt and --prompt-file are exclusive", errUsage)
	case f.maxTokens < 0:
		return bad("max-tokens", f.maxTokens)
	case !(f.temperature >= 0) || math.IsInf(f.temperature, 0):
		return bad("temperature", f.temperature)
	case f.topK < 0:
		return bad("top-k", f.topK)
	case !(f.topP >= 0 && f.topP <= 1):
		return bad("top-p", f.topP)
	case !(f.minP >= 0 && f.minP <= 1):
		return bad("min-p", f.minP)
	case !(f.repeat > 0) || math.IsInf(f.repeat, 0):
		return bad("repeat-penalty", f.repeat)
	case f.beams < 1 || f.beams > 64:
		return bad("beams", f.beams)
	case f.ctx < 0:
		return bad("ctx", f.ctx)
	case f.threads < 0:
		return bad("threads", f.threads)
	case f.lookup < 0 || f.lookup > 32:
		return bad("lookup", f.lookup)
	case f.json && f.jsonSchemaFile != "":
		return fmt.Errorf("%w: --json and --json-schema are exclusive (a schema's root is an object already)", errUsage)
	}
	if f.jsonSchemaFile != "" {
		b, err := os.ReadFile(f.jsonSchemaFile)
		if err != nil {
			return fmt.Errorf("--json-schema: %w", err)
		}
		if _, err := constrain.CompileSchema(b); err != nil {
			return fmt.Errorf("--json-schema %s: %w", f.jsonSchemaFile, err)
		}
		f.jsonSchema = b
	}
	return nil
}

// openModel loads the model at path, or the demo when path is empty,
// reporting progress on stderr: a live percentage on a terminal, one
// summary line otherwise.
func openModel(path string, opt loom.Options, stderr io.Writer) (*loom.Model, error) {
	start := time.Now()
	if path == "" {
		fmt.Fprintln(stderr, "loom: no --model given: running the built-in random-weight demo model; its text means nothing (pass --model FILE for a real model)")
		return loom.Demo(opt)
	}
	if isTerminal(stderr) {
		last := -1
		opt.Progress = func(done, total int64) {
			if total <= 0 {
				return
			}
			if pct := int(100 * done / total); pct != last {
				last = pct
				fmt.Fprintf(stderr, "\rloading %s: %3d%% (%s of %s)", filepath.Base(path), pct, mib(done), mib(total))
			}
		}
	}
	m, err := loom.Load(path, opt)
	if opt.Progress != nil {
		fmt.Fprint(stderr, "\r\033[K")
	}
	if err != nil {
		return nil, err
	}
	i := m.Info()
	fmt.Fprintf(stderr, "loaded %s (%s, %.1fM parameters, %s) on %s in %v; context %d\n", filepath.Base(path), i.Arch,
		float64(i.Params)/1e6, mib(i.Bytes), i.Device, time.Since(start).Round(time.Millisecond), i.Context)
	return m, nil
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
