// Package loom is the Go API for programs that embed loom: load a model,
// generate text from a prompt, and receive the tokens as they come, on the
// CPU or an NVIDIA GPU.
//
//	m, err := loom.Load("model.gguf", loom.Options{})
//	if err != nil { ... }
//	defer m.Close()
//	for tok, err := range m.Generate(ctx, "Once upon a time", loom.GenerateOptions{MaxTokens: 64}) {
//		if err != nil { ... }
//		fmt.Print(tok.Text)
//	}
//
// A Model runs one generation at a time (concurrent calls wait their
// turn); cancel one with its context. Servers that batch many requests
// use the pieces underneath directly: Model.Engine and Model.Tokenizer,
// with packages runtime/generate and runtime/kvcache.
//
// Demo returns a built-in model with random weights and a small word
// vocabulary, for trying loom without downloading anything; its output is
// words without meaning.
package loom

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/loomllm/loom/cpu"
	"github.com/loomllm/loom/model"
	"github.com/loomllm/loom/model/arch"
	"github.com/loomllm/loom/model/chat"
	"github.com/loomllm/loom/model/loader"
	"github.com/loomllm/loom/model/tokenizer"
	"github.com/loomllm/loom/runtime/backend"
	"github.com/loomllm/loom/runtime/constrain"
	"github.com/loomllm/loom/runtime/generate"
)

// ErrOptions reports an option loom cannot honour (an unknown device, a
// negative count).
var ErrOptions = errors.New("invalid option")

// ErrNoTokenizer reports text generation asked of a model whose file
// carries no tokenizer.
var ErrNoTokenizer = errors.New("the model has no tokenizer")

// Options configures Load.
type Options struct {
	// Device is "auto" (or ""): the first GPU if this build has CUDA and
	// the machine a GPU, else the CPU; "cpu"; "cuda" (the first GPU); or
	// "cuda:N".
	Device string
	// Threads is the number of CPU threads; 0 means all.
	Threads int
	// Context is the most positions (prompt plus generated tokens) a
	// generation may use; 0 means the model's trained context, reduced
	// when the key/value cache would not fit in half the free memory.
	Context int
	// Sequences is how many sequences of the full context the key/value
	// cache holds at once; 0 means 1. Beam search with B beams needs up to B.
	Sequences int
	// BatchRows is the most prompt tokens one forward pass takes; 0
	// means 512.
	BatchRows int
	// KVBlocks, when positive, sizes the key/value cache as one pool of
	// that many blocks of 16 positions shared by all sequences (a
	// server's cache) instead of Sequences full contexts; KVMemory does
	// the same in bytes. Sequences still sets how many sequences one
	// forward pass may carry.
	KVBlocks int
	KVMemory int64
	// WeightType converts float weights while loading: "" keeps them as
	// stored, "q8_0", "f16" or "bf16" converts them.
	WeightType string
	// KVType is the element type of the key/value cache: "f32", "f16" or
	// "bf16"; "" means the device's default (f32 on the CPU, the numerical
	// reference; f16 on a GPU). F16 halves a CPU cache's memory, and its
	// attention is no slower (cpu BenchmarkAttention).
	KVType string
	// PrefixCache keeps the keys and values of each generation's whole
	// 16-token blocks (prompt and output) in the key/value cache, so a
	// later prompt that starts the same way (a shared system prompt, a
	// chat's earlier turns) skips those positions; blocks are taken back,
	// least recently used first, when the cache needs room. Stats report
	// the reused tokens.
	PrefixCache bool
	// PromptLookup, when above 0, lets greedy generations verify up to
	// that many draft tokens per step, looked up in the text so far
	// (prompt lookup decoding, see generate.Options.PromptLookup), or
	// proposed by Draft when it is set (speculative decoding): the same
	// output, in fewer steps when the drafts are good. Stats report the
	// drafts accepted. Generations that sample ignore it.
	PromptLookup int
	// Draft, with PromptLookup, is a draft model: usually a much smaller
	// model of the same vocabulary, loaded with its own Load, that
	// proposes the drafts by decoding greedily (generate.ModelDrafter).
	// A generation holds it while it runs; close it after the model.
	Draft *Model
	// Progress, if set, is called as weights reach the device with the
	// bytes done and the total.
	Progress func(done, total int64)
}

// Model is a loaded model, ready to generate.
type Model struct {
	mu   sync.Mutex
	desc *model.Model
	be   backend.Backend
	net  arch.Model
	eng  *generate.Engine
	tok  *tokenizer.Tokenizer
	demo bool

	prefixCache  bool   // Options.PrefixCache
	promptLookup int    // Options.PromptLookup
	draft        *Model // Options.Draft

	vocabOnce sync.Once // GenerateOptions.JSON's and JSONSchema's vocabulary, built on first use
	vocab     *constrain.Vocab
	chatOnce  sync.Once // EncodeChat's template, parsed on first use
	chat      *chat.Template
	chatErr   error
}

// Load opens a model (a GGUF file or a Hugging Face directory) and puts
// it on the device the options name.
func Load(path string, opt Options) (*Model, error) {
	desc, err := loader.Open(path)
	if err != nil {
		return nil, err
	}
	m, err := newModel(desc, opt)
	if err != nil {
		desc.Close()
		return nil, err
	}
	return m, nil
}

// Demo returns the built-in random-weight demo model: a tiny Llama whose
// weights are fixed pseudo-random numbers and whose vocabulary is a few
// hundred common words. It runs anywhere, instantly, and writes words
// without meaning.
func Demo(opt Options) (*Model, error) {
	m, err := newModel(demoModel(), opt)
	if err != nil {
		return nil, err
	}
	m.demo = true
	return m, nil
}

func newModel(desc *model.Model, opt Options) (*Model, error) {
	if opt.Threads < 0 || opt.Context < 0 || opt.Sequences < 0 || opt.BatchRows < 0 || opt.KVBlocks < 0 || opt.KVMemory < 0 {
		return nil, fmt.Errorf("loom: %w: threads %d, context %d, sequences %d, batch rows %d, kv blocks %d, kv memory %d",
			ErrOptions, opt.Threads, opt.Context, opt.Sequences, opt.BatchRows, opt.KVBlocks, opt.KVMemory)
	}
	if opt.PromptLookup < 0 || opt.PromptLookup > maxPromptLookup {
		return nil, fmt.Errorf("loom: %w: prompt lookup %d (want 0 to %d draft tokens)", ErrOptions, opt.PromptLookup, maxPromptLookup)
	}
	if d := opt.Draft; d != nil {
		if err := sameVocabulary(desc, d.desc); err != nil {
			return nil, fmt.Errorf("loom: %w: draft model %s: %v", ErrOptions, d.desc.Path, err)
		}
		if opt.PromptLookup == 0 {
			return nil, fmt.Errorf("loom: %w: a draft model needs PromptLookup, the drafts a step verifies", ErrOptions)
		}
	}
	conv := backend.F32
	if opt.WeightType != "" {
		dt, err := backend.ParseDType(strings.ToLower(opt.WeightType))
		if err != nil || !(dt == backend.Q8_0 || dt == backend.F16 || dt == backend.BF16 || dt == backend.F32) {
			return nil, fmt.Errorf("loom: %w: weight type %q (want q8_0, f16, bf16 or f32)", ErrOptions, opt.WeightType)
		}
		conv = dt
	}
	// A weights-only model (a synthetic benchmark model) has no tokenizer:
	// it can run steps through Engine, but not generate from text.
	var tok *tokenizer.Tokenizer
	if desc.Tokenizer.Model != "" || desc.Tokenizer.HFJSON != nil {
		var err error
		if tok, err = tokenizer.New(&desc.Tokenizer); err != nil {
			return nil, fmt.Errorf("%s: %w", desc.Path, err)
		}
	}
	be, kvType, err := openDevice(opt)
	if err != nil {
		return nil, err
	}
	if opt.KVType != "" {
		dt, err := backend.ParseDType(strings.ToLower(opt.KVType))
		if err != nil || !(dt == backend.F32 || dt == backend.F16 || dt == backend.BF16) {
			be.Close()
			return nil, fmt.Errorf("loom: %w: kv type %q (want f32, f16 or bf16)", ErrOptions, opt.KVType)
		}
		kvType = dt
	}
	seqs := max(opt.Sequences, 1)
	// Every sequence of a step may verify PromptLookup drafts: a result
	// row for each.
	net, err := arch.New(be, desc, arch.Options{MaxRows: opt.BatchRows, MaxOut: seqs * (1 + opt.PromptLookup), Convert: conv, Progress: opt.Progress})
	if err != nil {
		be.Close()
		return nil, err
	}
	pool := opt.KVBlocks > 0 || opt.KVMemory > 0
	ctxSeqs := seqs
	if pool {
		ctxSeqs = 1 // the context only has to fit once
	}
	ctx := contextFor(be, net, opt.Context, ctxSeqs, kvType)
	const blockSize = 16
	blocks := seqs * ((ctx + blockSize - 1) / blockSize)
	if opt.KVMemory > 0 {
		blocks = int(min(opt.KVMemory/int64(net.KVSpec(blockSize, 1, kvType).BytesPerBlock()), 1<<30))
	}
	if opt.KVBlocks > 0 {
		blocks = opt.KVBlocks
	}
	if blocks <= 0 {
		net.Close()
		be.Close()
		return nil, fmt.Errorf("loom: %w: kv memory %d bytes holds no block of %d positions", ErrOptions, opt.KVMemory, blockSize)
	}
	eng, err := generate.NewEngine(be, net, generate.EngineOptions{Context: ctx, BlockSize: blockSize, Blocks: blocks, KVType: kvType})
	if err != nil {
		net.Close()
		be.Close()
		return nil, err
	}
	return &Model{desc: desc, be: be, net: net, eng: eng, tok: tok, prefixCache: opt.PrefixCache, promptLookup: opt.PromptLookup,
		draft: opt.Draft}, nil
}

// sameVocabulary reports a draft model whose vocabulary is not the
// model's: its size, and every token's text where both carry a tokenizer.
func sameVocabulary(m, draft *model.Model) error {
	if m.Config.VocabSize != draft.Config.VocabSize {
		return fmt.Errorf("%d tokens, the model has %d", draft.Config.VocabSize, m.Config.VocabSize)
	}
	a, b := m.Tokenizer.Tokens, draft.Tokenizer.Tokens
	if len(a) > 0 && len(b) > 0 {
		if len(a) != len(b) {
			return fmt.Errorf("a tokenizer of %d tokens, the model's has %d", len(b), len(a))
		}
		for i := range a {
			if a[i] != b[i] {
				return fmt.Errorf("token %d is %q, the model's is %q", i, b[i], a[i])
			}
		}
	}
	return nil
}

// maxPromptLookup bounds Options.PromptLookup: a step verifies at most
// that many drafts per sequence.
const maxPromptLookup = 32

// openDevice returns the backend the options name and the key/value cache
// type for it.
func openDevice(opt Options) (backend.Backend, backend.DType, error) {
	dev := strings.ToLower(strings.TrimSpace(opt.Device))
	switch {
	case dev == "" || dev == "auto":
		if be, err := openGPU(0); err == nil {
			return be, backend.F16, nil
		} else if !errors.Is(err, backend.ErrNoDevice) {
			return nil, 0, err
		}
		fallthrough
	case dev == "cpu":
		return cpu.New(cpu.Options{Threads: opt.Threads}), backend.F32, nil
	case dev == "cuda" || strings.HasPrefix(dev, "cuda:"):
		n := 0
		if s, ok := strings.CutPrefix(dev, "cuda:"); ok {
			var err error
			if n, err = strconv.Atoi(s); err != nil || n < 0 {
				return nil, 0, fmt.Errorf("loom: %w: device %q", ErrOptions, opt.Device)
			}
		}
		be, err := openGPU(n)
		if err != nil {
			return nil, 0, err
		}
		return be, backend.F16, nil
	}
	return nil, 0, fmt.Errorf("loom: %w: device %q (want auto, cpu, cuda or cuda:N)", ErrOptions, opt.Device)
}

// contextFor picks the context: the requested one, else the model's,
// reduced so the cache for seqs sequences takes at most half the free
// memory the backend reports.
func contextFor(be backend.Backend, net arch.Model, want, seqs int, kvType backend.DType) int {
	ctx := want
	if ctx <= 0 {
		ctx = net.Config().Context
		if ctx <= 0 {
			ctx = 2048
		}
		if mr, ok := be.(backend.MemoryReporter); ok {
			if _, free := mr.Memory(); free > 0 {
				perPos := int64(net.KVSpec(1, 1, kvType).BytesPerBlock()) * int64(seqs)
				if limit := free / 2 / perPos; int64(ctx) > limit {
					ctx = max(int(limit), 16)
				}
			}
		}
	}
	if mc := net.MaxContext(); mc > 0 && ctx > mc {
		ctx = mc
	}
	return ctx
}

// Close frees the model's device memory and file mappings.
func (m *Model) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.eng == nil {
		return nil
	}
	m.eng.Close()
	m.net.Close()
	err := m.be.Close()
	if cerr := m.desc.Close(); err == nil {
		err = cerr
	}
	m.eng = nil
	return err
}

// Info describes a loaded model.
type Info struct {
	Name    string // the model's name
	Arch    string // "llama" or "gpt2"
	Path    string // the file or directory it came from ("demo" for Demo)
	Device  string // the backend, e.g. "cpu (2 threads, avx2)"
	Context int    // the most positions a generation may use
	Vocab   int    // vocabulary size
	Params  int64  // number of weights
	Bytes   int64  // bytes of weights in the file
	Demo    bool   // the built-in random-weight demo
	// ChatTemplate is the model's chat template (Jinja source, from GGUF
	// tokenizer.chat_template or tokenizer_config.json), "" if it has none.
	ChatTemplate string
	// Pooling is how the file says to pool token states into an
	// embedding (model.Config.Pooling), "" if it says nothing.
	Pooling string
}

// Info describes the model.
func (m *Model) Info() Info {
	c := m.desc.Config
	info := Info{Name: c.Name, Arch: c.Arch, Path: m.desc.Path, Device: m.be.Name(), Context: m.eng.Context(),
		Vocab: c.VocabSize, Demo: m.demo, ChatTemplate: m.desc.Tokenizer.ChatTemplate, Pooling: c.Pooling}
	for _, t := range m.desc.Tensors {
		info.Params += int64(t.Rows) * int64(t.Cols)
		info.Bytes += int64(len(t.Data))
	}
	return info
}

// Tokenizer is the model's tokenizer, nil for a model whose file has none
// (a synthetic, weights-only model).
func (m *Model) Tokenizer() *tokenizer.Tokenizer { return m.tok }

// Engine is the model's generation engine, for callers that schedule
// their own steps (a server batching requests). Do not use it while a
// Generate call of this Model runs.
func (m *Model) Engine() *generate.Engine { return m.eng }
