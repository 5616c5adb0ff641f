// Package model describes a model independently of the file it came from:
// architecture and hyperparameters (Config), the weight tensors by their
// canonical GGUF names (Tensor), and the tokenizer's data (TokenizerSpec).
//
// Loaders for each file format (package gguf for GGUF files, package hf for
// Hugging Face directories) produce a *Model; the architectures (package
// llama and friends) consume one. Tensor names are always GGUF's
// ("blk.3.attn_q.weight"), whatever the file used, and Q/K weights are
// stored in the row order RopeNeoX describes, so the model code is written
// once for both sources.
package model

import (
	"errors"
	"fmt"

	"github.com/loomllm/loom/runtime/backend"
)

// Sentinel errors for model descriptions.
var (
	// ErrFormat reports a malformed or unsupported model file.
	ErrFormat = errors.New("malformed model file")
	// ErrMissing reports a tensor or hyperparameter the architecture needs but the file lacks.
	ErrMissing = errors.New("missing from model")
	// ErrUnsupported reports an architecture, type or feature loom does not implement.
	ErrUnsupported = errors.New("unsupported")
)

// Architecture names.
const (
	ArchLlama = "llama" // Llama 1/2/3, Mistral, TinyLlama, Qwen2, Qwen3, SmolLM
	ArchGPT2  = "gpt2"
)

// RopeScaling describes frequency scaling applied to RoPE's inverse
// frequencies. Type is "" (none), "linear" or "llama3".
type RopeScaling struct {
	Type            string
	Factor          float64 // linear and llama3
	LowFreqFactor   float64 // llama3
	HighFreqFactor  float64 // llama3
	OriginalContext int     // llama3: original_max_position_embeddings
}

// Config holds an architecture's hyperparameters.
type Config struct {
	Arch      string // ArchLlama or ArchGPT2
	Name      string // general.name, or the directory name
	VocabSize int
	Dim       int // embedding (residual stream) width
	Hidden    int // feed-forward width
	Layers    int
	Heads     int // query heads
	KVHeads   int // key/value heads (== Heads without grouped-query attention)
	HeadDim   int // usually Dim / Heads
	Context   int // trained context length
	NormEps   float32
	// RopeTheta is the RoPE base; RopeDims the rotated elements per head
	// (== HeadDim unless the model uses partial rotary embeddings).
	RopeTheta   float64
	RopeDims    int
	RopeScaling RopeScaling
	// RopeNeoX selects the rotate-half pairing (i, i+RopeDims/2) instead of
	// the interleaved pairs (2i, 2i+1). GGUF llama files hold Q/K rows
	// permuted for the interleaved layout; Hugging Face files do not.
	RopeNeoX bool
	// TiedEmbeddings: the output projection reuses token_embd.weight.
	TiedEmbeddings bool
	// QKNorm: each head of the queries and keys is RMS-normalised (with
	// NormEps) before RoPE, by blk.N.attn_q_norm.weight and
	// attn_k_norm.weight (HeadDim wide, shared by the heads): Qwen3.
	QKNorm bool
	// FusedWeights: blk.N.attn_qkv.weight holds Q, K and V (rows in that
	// order) and blk.N.ffn_up.weight the gate then the up projection
	// (2·Hidden rows), instead of separate tensors: Phi-3.
	FusedWeights bool
	// SlidingWindow, when above 0, is how many positions each one attends
	// to (itself and those before it; Mistral v0.1, Phi-3). loom attends
	// to all, so it runs such a model with at most this many positions,
	// where the two agree.
	SlidingWindow int
	// Pooling is how the file says to make one embedding of a text from
	// its tokens' final hidden states: "mean", "last" or "cls" (the
	// first token's), another method's name where the file names one
	// loom does not do ("rank", "max", ...), or "" when it says nothing
	// (GGUF {arch}.pooling_type, sentence-transformers 1_Pooling/config.json).
	Pooling string
}

// Tensor is one weight tensor: rows × cols elements (GGUF's ne[1] × ne[0];
// a vector is 1 × n) of type DType, with its bytes in the layout that
// backend.Backend.Upload takes. Data usually points into a memory-mapped
// file: it is valid until the Model is closed.
type Tensor struct {
	Name  string
	DType backend.DType
	Rows  int
	Cols  int
	Data  []byte
}

// TokenizerSpec is the tokenizer data a model file carries.
type TokenizerSpec struct {
	// Model is "llama" (SentencePiece-style BPE with scores), "gpt2"
	// (byte-level BPE with merges) or "" when the file has no tokenizer.
	Model string
	// Pre names the pre-tokenizer (GGUF tokenizer.ggml.pre: "default",
	// "llama-bpe", "gpt-2", "qwen2", ...).
	Pre    string
	Tokens []string
	Scores []float32
	Types  []int32 // 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte
	Merges []string
	// Special token ids, -1 when absent.
	BOS, EOS, EOT, PAD, UNK int
	AddBOS, AddEOS          bool
	// AddSpacePrefix: SentencePiece's rule of prefixing the text with a space.
	AddSpacePrefix bool
	ChatTemplate   string
	// HFJSON is the raw tokenizer.json of a Hugging Face directory (nil
	// for GGUF files); the tokenizer package parses it.
	HFJSON []byte
}

// Model is a loaded model description.
type Model struct {
	Config    Config
	Tensors   map[string]*Tensor
	Tokenizer TokenizerSpec
	// Meta holds the file's other metadata, for display (loom info).
	Meta map[string]any
	// Path is the file or directory the model came from.
	Path   string
	closer func() error
}

// SetCloser registers the function Close calls (unmapping the file).
func (m *Model) SetCloser(f func() error) { m.closer = f }

// Close releases the model's file mappings. Tensor data is invalid afterwards.
func (m *Model) Close() error {
	if m.closer == nil {
		return nil
	}
	f := m.closer
	m.closer = nil
	return f()
}

// Tensor returns the named tensor, checking its shape (rows, cols) when
// they are positive. The error names the model file and the tensor.
func (m *Model) Tensor(name string, rows, cols int) (*Tensor, error) {
	t, ok := m.Tensors[name]
	if !ok {
		return nil, fmt.Errorf("%s: tensor %q: %w", m.Path, name, ErrMissing)
	}
	if (rows > 0 && t.Rows != rows) || (cols > 0 && t.Cols != cols) {
		return nil, fmt.Errorf("%s: tensor %q is %d×%d, want %d×%d: %w", m.Path, name, t.Rows, t.Cols, rows, cols, ErrFormat)
	}
	return t, nil
}
