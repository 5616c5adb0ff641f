package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/loomllm/loom"
	"github.com/loomllm/loom/model/chat"
	"github.com/loomllm/loom/runtime/constrain"
	"github.com/loomllm/loom/runtime/generate"
	"github.com/loomllm/loom/runtime/sample"
	"github.com/loomllm/loom/runtime/sched"
)

func init() {
	register(command{name: "chat", summary: "talk with a model through its chat template, one line a turn", run: runChat})
}

// chatInput is where loom chat reads the user's turns (tests replace it).
var chatInput io.Reader = os.Stdin

func runChat(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("chat", stderr)
	f := runFlags{beams: 1}
	f.register(fs)
	system := fs.String("system", "", "a system message opening the conversation")
	template := fs.String("chat-template", "", "Jinja chat template `file` to use instead of the model's")
	kwargs := fs.String("chat-template-kwargs", "", "further template variables as a JSON object, e.g. '{\"enable_thinking\": false}' (Qwen3)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: loom chat [--model FILE|DIR] [--system TEXT] [flags]")
		fmt.Fprintln(stderr, "\nA conversation on standard input, one line a user turn: each reply streams to standard")
		fmt.Fprintln(stderr, "output, its statistics go to standard error. /reset starts over, /exit (or the end of the")
		fmt.Fprintln(stderr, "input) ends. Earlier turns are not computed again: their keys and values stay in the")
		fmt.Fprintln(stderr, "prefix cache.")
		fmt.Fprintln(stderr)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q (turns are read from standard input)", errUsage, fs.Args())
	}
	if err := f.check(); err != nil {
		return err
	}
	var vars map[string]any
	if *kwargs != "" {
		if err := json.Unmarshal([]byte(*kwargs), &vars); err != nil || vars == nil {
			return fmt.Errorf("%w: --chat-template-kwargs %q: want a JSON object", errUsage, *kwargs)
		}
	}
	draft, err := f.openDraft(stderr)
	if err != nil {
		return err
	}
	if draft != nil {
		defer draft.Close()
	}
	m, err := openModel(f.model, loom.Options{Device: f.device, Threads: f.threads, Context: f.ctx, Sequences: 1,
		WeightType: f.weights, PromptLookup: f.lookup, KVType: f.kvType, Draft: draft}, stderr)
	if err != nil {
		return err
	}
	defer m.Close()
	tmpl, _, err := chatTemplate(m.Info().ChatTemplate, *template)
	if err != nil {
		return err
	}
	sc, err := sched.New(m.Engine(), sched.Config{MaxBatch: 1, PrefixCache: true, PromptLookup: f.lookup})
	if err != nil {
		return err
	}
	defer sc.Close(context.Background())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	if f.seed < 0 {
		f.seed = time.Now().UnixNano() & math.MaxInt64
	}
	tok := m.Tokenizer()
	var msgs []chat.Message
	if *system != "" {
		msgs = append(msgs, chat.Message{Role: "system", Content: *system})
	}
	opening := len(msgs)
	var newConstraint func() generate.Constraint
	switch {
	case f.jsonSchema != nil:
		schema, err := constrain.CompileSchema(f.jsonSchema) // checked by f.check
		if err != nil {
			return err
		}
		v := constrain.NewVocabOf(tok)
		newConstraint = func() generate.Constraint { return constrain.NewSchemaTokens(v, schema) }
	case f.json:
		v := constrain.NewVocabOf(tok)
		newConstraint = func() generate.Constraint { return constrain.NewTokens(v) }
	}
	var drafter generate.Drafter // one turn at a time: one drafter for the conversation
	if draft != nil {
		md := generate.NewModelDrafter(draft.Engine())
		defer md.Close()
		drafter = md
	}
	in := bufio.NewScanner(chatInput)
	in.Buffer(make([]byte, 64<<10), 1<<20)
	for turn := 0; in.Scan(); {
		line := strings.TrimSpace(in.Text())
		switch line {
		case "":
			continue
		case "/exit", "/quit":
			return nil
		case "/reset":
			msgs = msgs[:opening]
			fmt.Fprintln(stderr, "(new conversation)")
			continue
		}
		msgs = append(msgs, chat.Message{Role: "user", Content: line})
		ids, err := chat.Encode(tmpl, tok, msgs, chat.Options{AddGenerationPrompt: true, Vars: vars})
		room := m.Info().Context - len(ids)
		switch {
		case err != nil:
			msgs = msgs[:len(msgs)-1]
			fmt.Fprintf(stderr, "loom chat: %v\n", err)
			continue
		case room < 1:
			msgs = msgs[:len(msgs)-1]
			fmt.Fprintf(stderr, "loom chat: the conversation (%d tokens) fills the context of %d: /reset to start over\n",
				len(ids), m.Info().Context)
			continue
		}
		maxTokens := f.maxTokens
		if maxTokens == 0 || maxTokens > room {
			maxTokens = room
		}
		q := sched.Seq{Prompt: ids, Logprobs: -1, Options: generate.Options{MaxTokens: maxTokens, Stop: f.stop,
			IsEnd: tok.IsEndOfGeneration, NewDecoder: func() generate.Decoder { return tok.NewStream() },
			Sampling: sample.Options{Temperature: float32(f.temperature), TopK: f.topK, TopP: float32(f.topP),
				MinP: float32(f.minP), RepeatPenalty: float32(f.repeat), Seed: uint64(f.seed) + uint64(turn)}}}
		q.Options.NewConstraint = newConstraint
		q.Options.Drafter = drafter
		turn++
		sts, err := sc.Submit(ctx, []sched.Seq{q})
		if err != nil {
			return err
		}
		var reply strings.Builder
		var buf []sched.Event
		var last sched.Event
	events:
		for {
			evs, err := sts[0].Next(ctx, buf)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				fmt.Fprintln(stdout)
				return nil // interrupted
			}
			for _, ev := range evs {
				if ev.Token.Text != "" {
					reply.WriteString(ev.Token.Text)
					if _, err := io.WriteString(stdout, ev.Token.Text); err != nil {
						return err
					}
				}
				if ev.Done {
					last = ev
					break events
				}
			}
			buf = evs
		}
		if last.Err != nil {
			return last.Err
		}
		fmt.Fprintln(stdout)
		st := last.Stats
		rate := 0.0
		if st.Decode > 0 {
			rate = float64(st.Tokens-1) / st.Decode.Seconds()
		}
		lookup := ""
		if st.Drafted > 0 {
			lookup = fmt.Sprintf("; %d of %d drafts accepted", st.Accepted, st.Drafted)
		}
		fmt.Fprintf(stderr, "[prompt %d tokens, %d from the prefix cache; reply %d tokens, %.1f tokens/s%s; %s]\n",
			st.PromptTokens, st.CachedTokens, st.Tokens, rate, lookup, finishName(st.Finish))
		msgs = append(msgs, chat.Message{Role: "assistant", Content: reply.String()})
	}
	return in.Err()
}

// finishName names why a reply ended.
func finishName(f generate.Finish) string {
	switch f {
	case generate.FinishEnd:
		return "end of turn"
	case generate.FinishStop:
		return "stop string"
	case generate.FinishLength:
		return "max tokens"
	case generate.FinishContext:
		return "context full"
	}
	return "unfinished"
}
