// Package arch holds the forward passes of the transformer architectures
// loom runs, each written once against the backend contract
// (runtime/backend) so it runs on every backend:
//
//   - llama.go: Llama 1/2/3, Mistral, TinyLlama, Qwen2 and SmolLM (RMSNorm,
//     rotary embeddings with optional Llama-3 or linear frequency scaling,
//     grouped-query attention, SwiGLU, optional Q/K/V biases, tied or
//     untied output).
//   - gpt2.go: GPT-2 (learned position embeddings, LayerNorm, GELU, fused
//     QKV with biases, tied output).
//
// The two share everything around the blocks: how a batch of rows is
// described (Batch), how weights get onto the backend (weights.go: zero-copy
// mapping where the backend computes on host memory, row-concatenation of
// Q/K/V and gate/up into one matrix, optional Q8_0 quantization), and the
// final gather of the rows that need logits. That shared part is why both
// live in one package rather than in a package each: it stays unexported
// in one place, and each architecture is still one file that reads in one
// sitting, in the style of llama2.c's run.c.
//
// A Model allocates its activations once, for Options.MaxRows rows, and a
// forward pass only issues operations on views of them, so it allocates
// nothing. Forward queues the operations and returns the logits tensor; the
// caller reads it back (or reduces it with backend.ArgMaxer), which is
// where any error of the pass surfaces.
package arch

import (
	"errors"
	"fmt"

	"github.com/loomllm/loom/model"
	"github.com/loomllm/loom/runtime/backend"
)

// ErrConfig reports hyperparameters that do not describe a runnable model.
var ErrConfig = errors.New("invalid model configuration")

// Batch is the input of one forward pass: n rows, each one token at one
// position of one sequence. The tensors live on the model's backend and
// are filled by the caller (package generate builds them each step).
type Batch struct {
	// Tokens, Pos and Seq are I32 n × 1: each row's token id, its position
	// in its sequence, and its sequence's row in Blocks.
	Tokens, Pos, Seq backend.Tensor
	// Blocks is the I32 block table, one row per sequence (see
	// backend.Attn).
	Blocks backend.Tensor
	// Out is I32 k × 1: the rows (indices into the n rows) whose logits
	// are wanted, in the order the logits come back.
	Out backend.Tensor
	// Hidden is how many of Out's rows, the last ones, want their final
	// hidden state (the output norm's, Model.Hidden) instead of logits:
	// embeddings. The logits come back for the k - Hidden others (a zero
	// Tensor when there are none).
	Hidden int
	// Cache is the key/value cache the rows' keys and values go to.
	Cache backend.KVCache
}

// Model is a loaded architecture with its weights on a backend.
type Model interface {
	// Config is the model's hyperparameters (with defaults filled in).
	Config() model.Config
	// MaxRows is the most rows one Forward may take.
	MaxRows() int
	// MaxOut is the most logit rows one Forward may return.
	MaxOut() int
	// MaxContext is the most positions a sequence may hold: the size of
	// GPT-2's learned position table, a sliding window (which loom runs
	// as full attention within it), or 0 where positions are unbounded
	// (rotary embeddings).
	MaxContext() int
	// KVSpec describes the key/value cache the model needs, for the given
	// block size, block count and element type.
	KVSpec(blockSize, blocks int, dt backend.DType) backend.KVSpec
	// Forward queues the forward pass of b and returns the logits of
	// b.Out's rows: an F32 k × VocabSize view of the model's memory, valid
	// until the next Forward. It fails (wrapping backend.ErrShape) only
	// for a batch the model was not sized for; errors of the operations
	// surface when the logits are read back.
	Forward(b Batch) (backend.Tensor, error)
	// Hidden is, after Forward, the final hidden state (the output norm
	// applied) of each of b.Out's rows: F32 k × Dim, valid until the next
	// Forward.
	Hidden() backend.Tensor
	// Close frees the model's tensors on the backend.
	Close()
}

// Options configures New.
type Options struct {
	// MaxRows is the most rows one forward pass takes (the prefill chunk);
	// 0 means 512.
	MaxRows int
	// MaxOut is the most rows a pass returns logits for; 0 means 16.
	MaxOut int
	// Convert, unless it is F32 (the zero value), is the type float weight
	// matrices (F32, F16, BF16) are converted to while loading: F16, BF16
	// or Q8_0. Quantized weights of a type the backend cannot multiply by
	// (the K-quants on the GPU; Q4_1, Q5_0, Q2_K, IQ4_NL, ... on every
	// backend) are requantized to Q8_0 (exactly for Q5_0 and IQ4_NL), Q3_K
	// to Q6_K where the backend has it (exactly), other such weights
	// converted to F32.
	Convert backend.DType
	// Progress, if set, is called as weights reach the backend with the
	// bytes done so far and the total.
	Progress func(done, total int64)
	// Trace, if set, is called after each layer of every forward pass with
	// the layer's index and its output (the residual stream, n × Dim); the
	// tensor is valid only during the call. Layer Config().Layers is the
	// final normalised rows that the logits are computed from. A traced
	// pass cannot be recorded as a graph (backend.Grapher).
	Trace func(layer int, x backend.Tensor)
}

func (o Options) withDefaults() Options {
	if o.MaxRows <= 0 {
		o.MaxRows = 512
	}
	if o.MaxOut <= 0 {
		o.MaxOut = 16
	}
	o.MaxOut = min(o.MaxOut, o.MaxRows)
	return o
}

// New loads m's weights onto be and returns its architecture.
func New(be backend.Backend, m *model.Model, opt Options) (Model, error) {
	cfg, err := checkConfig(m.Config)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.Path, err)
	}
	opt = opt.withDefaults()
	switch cfg.Arch {
	case model.ArchLlama:
		return newLlama(be, m, cfg, opt)
	case model.ArchGPT2:
		return newGPT2(be, m, cfg, opt)
	}
	return nil, fmt.Errorf("%s: architecture %q: %w", m.Path, cfg.Arch, model.ErrUnsupported)
}

// checkConfig fills defaults and rejects sizes no model has, before any
// of them is used to size an allocation.
func checkConfig(c model.Config) (model.Config, error) {
	if c.KVHeads == 0 {
		c.KVHeads = c.Heads
	}
	if c.HeadDim == 0 && c.Heads > 0 {
		c.HeadDim = c.Dim / c.Heads
	}
	if c.RopeDims == 0 {
		c.RopeDims = c.HeadDim
	}
	if c.RopeTheta == 0 {
		c.RopeTheta = 10000
	}
	if c.NormEps == 0 {
		c.NormEps = 1e-5
	}
	const big = 1 << 20
	bad := func(format string, a ...any) (model.Config, error) {
		return c, fmt.Errorf("%w: "+format, append([]any{ErrConfig}, a...)...)
	}
	for _, d := range []struct {
		name string
		v    int
	}{{"vocabulary", c.VocabSize}, {"dim", c.Dim}, {"hidden", c.Hidden}, {"layers", c.Layers},
		{"heads", c.Heads}, {"kv heads", c.KVHeads}, {"head dim", c.HeadDim}} {
		if d.v <= 0 || d.v > 16*big {
			return bad("%s is %d", d.name, d.v)
		}
	}
	switch {
	case c.Heads%c.KVHeads != 0:
		return bad("%d heads are not a multiple of %d kv heads", c.Heads, c.KVHeads)
	case c.Layers > 4096 || c.Heads > 4096:
		return bad("%d layers, %d heads", c.Layers, c.Heads)
	case c.RopeDims < 0 || c.RopeDims > c.HeadDim || c.RopeDims%2 != 0:
		return bad("rotary dims %d for head dim %d", c.RopeDims, c.HeadDim)
	case c.Context < 0 || c.SlidingWindow < 0:
		return bad("context %d, sliding window %d", c.Context, c.SlidingWindow)
	case !(c.NormEps > 0 && c.NormEps < 1):
		return bad("norm epsilon %v", c.NormEps)
	case !(c.RopeTheta > 0):
		return bad("rope theta %v", c.RopeTheta)
	}
	return c, nil
}
