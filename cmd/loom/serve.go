package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/loomllm/loom"
	"github.com/loomllm/loom/model/chat"
	"github.com/loomllm/loom/runtime/generate"
	"github.com/loomllm/loom/runtime/sched"
	"github.com/loomllm/loom/server"
)

func init() {
	register(command{
		name:    "serve",
		summary: "serve a model over an OpenAI-compatible HTTP API",
		run:     runServe,
	})
}

// serveFlags are the flags of loom serve.
type serveFlags struct {
	model, host, device, apiKey, name, template, weights, kvMemory, logLevel string
	kvType, draftModel                                                       string
	port, threads, maxBatch, ctx, kvBlocks, maxQueue, prefill, lookup        int
	maxBody                                                                  int64
	grace                                                                    time.Duration
	prefixCache, splitReasoning                                              bool
	pooling                                                                  string
}

func runServe(args []string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serve(ctx, args, stderr)
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	var f serveFlags
	fs.StringVar(&f.model, "model", "", "model `file` (GGUF) or Hugging Face directory; without it, the built-in random-weight demo")
	fs.StringVar(&f.host, "host", "127.0.0.1", "address to listen on (0.0.0.0 for every interface)")
	fs.IntVar(&f.port, "port", 8080, "port to listen on (0: any free port)")
	fs.StringVar(&f.device, "device", defaultDevice(), "auto, cpu, cuda or cuda:N (default $LOOM_DEVICE, else auto)")
	fs.IntVar(&f.threads, "threads", 0, "CPU threads (0: all cores)")
	fs.StringVar(&f.weights, "weight-type", "", "convert float weights while loading: q8_0, f16 or bf16")
	fs.IntVar(&f.maxBatch, "max-batch", 32, "most sequences decoding at once")
	fs.IntVar(&f.lookup, "lookup", 0, "greedy requests without logprobs verify up to `N` draft tokens a step, looked up in their text so far, in rows the step has spare (same output, fewer steps when the text repeats)")
	fs.IntVar(&f.ctx, "ctx", 0, "context size in tokens per sequence (0: the model's, capped by memory)")
	fs.IntVar(&f.kvBlocks, "kv-blocks", 0, "KV cache blocks of 16 positions shared by all sequences (0: max-batch full contexts)")
	fs.StringVar(&f.kvMemory, "kv-memory", "", "KV cache size in `bytes` instead of --kv-blocks (suffixes KiB, MiB, GiB)")
	fs.StringVar(&f.draftModel, "draft-model", "", "a smaller model `file` of the same vocabulary that proposes each greedy request's --lookup drafts (4 by default), one draft sequence per request")
	fs.StringVar(&f.kvType, "kv-type", "", "key/value cache element type: f32, f16 or bf16 (default: f32 on the CPU, f16 on a GPU)")
	fs.IntVar(&f.maxQueue, "max-queue", 64, "most requests waiting for KV blocks or a batch slot; beyond it 429")
	fs.IntVar(&f.prefill, "prefill-chunk", 0, "most prompt tokens per step, so running sequences keep decoding (0: 256)")
	fs.BoolVar(&f.splitReasoning, "reasoning-parser", true, "with a chat template that writes <think> tags (Qwen3, DeepSeek-R1), return a reply's think block as reasoning_content, apart from its content")
	fs.BoolVar(&f.prefixCache, "prefix-cache", true, "reuse the keys and values of earlier prompts' whole 16-token blocks (a shared system prompt is computed once)")
	fs.StringVar(&f.apiKey, "api-key", "", "require Authorization: Bearer `KEY` on /v1/ (default $LOOM_API_KEY)")
	fs.StringVar(&f.name, "model-name", "", "model id clients send (default: the file name without extension)")
	fs.StringVar(&f.pooling, "pooling", "", "how /v1/embeddings pools a text's final hidden states: mean, last or cls (default: what the model file says; without it, embeddings are refused)")
	fs.StringVar(&f.template, "chat-template", "", "Jinja chat template `file` to use instead of the model's")
	fs.Int64Var(&f.maxBody, "max-body", 4<<20, "largest request body in bytes")
	fs.DurationVar(&f.grace, "grace", 30*time.Second, "on SIGINT/SIGTERM, time in-flight requests get to finish")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug (every request), info, warn or error")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: loom serve --model FILE|DIR [flags]")
		fmt.Fprintln(stderr, "\nServes the model over HTTP with OpenAI's API: POST /v1/completions, POST /v1/chat/completions,")
		fmt.Fprintln(stderr, "GET /v1/models, GET /health and GET /metrics (Prometheus). Requests are batched continuously;")
		fmt.Fprintln(stderr, "SIGINT or SIGTERM stops accepting, lets in-flight requests finish (--grace) and exits 0.")
		fmt.Fprintln(stderr)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	if f.apiKey == "" {
		f.apiKey = os.Getenv("LOOM_API_KEY")
	}
	kvMemory, err := parseBytes(f.kvMemory)
	switch {
	case err != nil:
		return fmt.Errorf("%w: --kv-memory: %v", errUsage, err)
	case f.kvBlocks > 0 && kvMemory > 0:
		return fmt.Errorf("%w: give --kv-blocks or --kv-memory, not both", errUsage)
	case f.port < 0 || f.port > 65535:
		return fmt.Errorf("%w: --port %d", errUsage, f.port)
	case f.lookup < 0 || f.lookup > 32:
		return fmt.Errorf("%w: --lookup %d is out of range (0 to 32)", errUsage, f.lookup)
	case f.pooling != "" && f.pooling != "mean" && f.pooling != "last" && f.pooling != "cls":
		return fmt.Errorf("%w: --pooling %q (mean, last or cls)", errUsage, f.pooling)
	case f.maxBatch < 1 || f.maxQueue < 1 || f.kvBlocks < 0 || f.ctx < 0 || f.prefill < 0 || f.maxBody <= 0 || f.grace < 0:
		return fmt.Errorf("%w: --max-batch and --max-queue must be at least 1, other counts, sizes and --grace not negative", errUsage)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return fmt.Errorf("%w: --log-level %q", errUsage, f.logLevel)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	rows := max(512, 2*f.maxBatch)
	var draft *loom.Model
	if f.draftModel != "" {
		if f.lookup == 0 {
			f.lookup = 4
		}
		if draft, err = openModel(f.draftModel, loom.Options{Device: f.device, Threads: f.threads, Context: f.ctx,
			Sequences: f.maxBatch, KVType: f.kvType}, stderr); err != nil {
			return err
		}
		defer draft.Close()
	}
	m, err := openModel(f.model, loom.Options{Device: f.device, Threads: f.threads, Context: f.ctx, Sequences: f.maxBatch,
		BatchRows: rows, KVBlocks: f.kvBlocks, KVMemory: kvMemory, WeightType: f.weights, PromptLookup: f.lookup,
		KVType: f.kvType, Draft: draft}, stderr)
	if err != nil {
		return err
	}
	defer m.Close()
	info := m.Info()

	tmpl, origin, err := chatTemplate(info.ChatTemplate, f.template)
	if err != nil {
		return err
	}
	name := f.name
	if name == "" {
		name = modelName(f.model)
	}

	metrics := server.NewMetrics()
	cfg := sched.Config{MaxBatch: f.maxBatch, MaxQueue: f.maxQueue, PrefillChunk: f.prefill,
		OnStep: metrics.ObserveStep, PrefixCache: f.prefixCache, PromptLookup: f.lookup}
	if draft != nil { // a draft sequence per request, on the draft model's engine
		cfg.NewDrafter = func() generate.Drafter { return generate.NewModelDrafter(draft.Engine()) }
		cfg.SpeculateMaxBatch = 4 // the draft model's steps run a sequence at a time
	}
	sc, err := sched.New(m.Engine(), cfg)
	if err != nil {
		return err
	}
	pooling := f.pooling
	if pooling == "" {
		pooling = m.Info().Pooling
	}
	srv, err := server.New(server.Config{Sched: sc, Tokenizer: m.Tokenizer(), ModelName: name, Template: tmpl,
		APIKey: f.apiKey, MaxBodyBytes: f.maxBody, Metrics: metrics, Logger: log, SplitReasoning: f.splitReasoning, Pooling: pooling})
	if err != nil {
		_ = sc.Close(context.Background())
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(f.host, strconv.Itoa(f.port)))
	if err != nil {
		_ = sc.Close(context.Background())
		return err
	}
	cache := m.Engine().Cache()
	log.Info("serving", "model", name, "url", "http://"+ln.Addr().String(), "device", info.Device, "context", info.Context,
		"max_batch", sc.Config().MaxBatch, "kv_blocks", cache.NumBlocks(), "kv_block_tokens", cache.BlockSize(),
		"max_queue", sc.Config().MaxQueue, "prefix_cache", f.prefixCache, "chat_template", origin, "auth", f.apiKey != "")
	if !isLoopback(f.host) && f.apiKey == "" {
		log.Warn("listening beyond loopback without --api-key: anyone who can reach this port can use the model")
	}
	if err := srv.Run(ctx, ln, f.grace); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

// modelName is the id a model is served under: its file or directory
// name without extension ("demo" for the demo model).
func modelName(path string) string {
	if path == "" {
		return "demo"
	}
	base := filepath.Base(filepath.Clean(path))
	return strings.TrimSuffix(base, filepath.Ext(base))
}

// isLoopback reports whether host names only the loopback interface.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// parseBytes parses a size: a number of bytes with an optional suffix
// (K, M, G, T with or without iB/B; powers of 1024). "" is 0.
func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	num := strings.TrimRight(s, "KMGTiBkmgtib ")
	unit := strings.ToUpper(strings.TrimSpace(s[len(num):]))
	shift := map[string]uint{"": 0, "B": 0, "K": 10, "KB": 10, "KIB": 10, "M": 20, "MB": 20, "MIB": 20,
		"G": 30, "GB": 30, "GIB": 30, "T": 40, "TB": 40, "TIB": 40}
	sh, ok := shift[unit]
	v, err := strconv.ParseFloat(num, 64)
	if !ok || err != nil || v < 0 || v*float64(int64(1)<<sh) >= 1<<62 {
		return 0, errors.New("want a size such as 8589934592, 512MiB or 8GiB")
	}
	return int64(v * float64(int64(1)<<sh)), nil
}

// chatTemplate parses the chat template to use: the file given, else the
// model's, else ChatML; origin says which.
func chatTemplate(model, file string) (tmpl *chat.Template, origin string, err error) {
	src, origin := model, "the model's chat template"
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, "", err
		}
		src, origin = string(b), file
	}
	if src == "" {
		src, origin = chat.ChatML, "ChatML (the model has no chat template)"
	}
	tmpl, err = chat.Parse(src)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w (pass --chat-template FILE)", origin, err)
	}
	return tmpl, origin, nil
}
