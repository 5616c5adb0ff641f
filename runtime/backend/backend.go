// Package backend is loom's compute contract: the tensor type, the element
// types, and the small set of operations every model is written against.
//
// A Backend owns memory (host memory for the cpu backend, device memory for
// gpu) and runs operations on tensors in that memory. Models upload their
// weights once at load, allocate their activations once for the largest
// batch they will run, and then issue operations on views of those tensors;
// a decode step allocates nothing.
//
// Operations are asynchronous and ordered: a backend may queue them (the gpu
// backend queues them on one CUDA stream) and only Download and Sync wait.
// Operations do not return errors; the first failure (a shape mismatch, a
// launch failure) is kept and every later operation is skipped, in the style
// of bufio.Writer. Sync, Download and Err report it, so a forward pass is
// written as a plain sequence of calls followed by one check.
//
// Every operation states its meaning as a plain loop in its doc comment; the
// conformance suite (package conformance) checks each backend against those
// loops on fresh random inputs.
//
// Optional capabilities (on-device argmax, zero-copy host mapping, recorded
// step graphs) are small separate interfaces discovered by type assertion.
package backend

import "errors"

// Sentinel errors. Backends wrap them with the context a user needs
// (tensor shapes, the operation, the device).
var (
	// ErrShape reports tensors whose shapes or strides do not fit the operation.
	ErrShape = errors.New("shape mismatch")
	// ErrDType reports an element type the operation or backend does not support.
	ErrDType = errors.New("unsupported element type")
	// ErrOutOfMemory reports that an allocation does not fit in the backend's memory.
	ErrOutOfMemory = errors.New("out of memory")
	// ErrIndex reports a token id, position or block index out of range.
	ErrIndex = errors.New("index out of range")
	// ErrClosed reports use of a backend after Close.
	ErrClosed = errors.New("backend closed")
	// ErrNoDevice reports that a requested device is not present.
	ErrNoDevice = errors.New("no such device")
)

// Backend is a compute device: memory plus the operations models need.
//
// Unless stated otherwise an operation's activations (dst, x, a, b, q, k, v,
// out) are F32 tensors with the same number of rows n, may be strided (see
// Tensor.ColSlice), and dst may be the same tensor as an input of the same
// shape (in-place operation). Weights (w, table) are contiguous and may have
// any type SupportsWeights accepts.
type Backend interface {
	// Name identifies the backend and device, e.g. "cpu (2 threads, avx2)"
	// or "cuda:0 (NVIDIA H100 80GB HBM3)".
	Name() string

	// SupportsWeights reports whether MatMul and Embed accept weights of type dt.
	SupportsWeights(dt DType) bool

	// Alloc returns a new contiguous rows × cols tensor of type dt. Its
	// contents are unspecified until written.
	Alloc(dt DType, rows, cols int) (Tensor, error)
	// Free releases the memory of a tensor returned by Alloc. Views of it
	// become invalid.
	Free(t Tensor)
	// Upload copies src into the contiguous tensor dst. src holds dst's
	// elements in row order, in the byte layout of dst.DType (GGUF's layout
	// for quantized types, little-endian for the others); len(src) must be
	// dst.Bytes(). Upload waits for queued operations that use dst.
	Upload(dst Tensor, src []byte) error
	// Download waits for queued operations and copies src's elements, rows
	// packed one after another, into dst (len(dst) must be src.Rows() *
	// src.RowBytes()). It reports the first error of any earlier operation.
	Download(dst []byte, src Tensor) error

	// NewKVCache allocates a paged key/value cache (see KVCache).
	NewKVCache(spec KVSpec) (KVCache, error)

	// Embed gathers rows of a table:
	//
	//	for r := 0; r < n; r++ {
	//		for c := 0; c < d; c++ {
	//			dst[r][c] = float32(table[ids[r]][c]) // dequantized
	//		}
	//	}
	//
	// dst is F32 n × d, table is V × d of any supported weight type (or an
	// F32 activation, which makes Embed a row gather), ids is I32 n × 1 with
	// every id in [0, V).
	Embed(dst, table, ids Tensor)

	// MatMul multiplies activations by the transpose of a weight matrix:
	//
	//	for r := 0; r < n; r++ {
	//		for o := 0; o < out; o++ {
	//			var s float32 // accumulated in at least F32 precision
	//			for i := 0; i < in; i++ {
	//				s += x[r][i] * float32(w[o][i])
	//			}
	//			dst[r][o] = s
	//		}
	//	}
	//
	// x is n × in, w is out × in (the GGUF and PyTorch layout), dst is
	// n × out and must not overlap x.
	MatMul(dst, x, w Tensor)

	// Add adds element-wise, broadcasting a one-row b over the rows of a:
	//
	//	for r := 0; r < n; r++ {
	//		for c := 0; c < d; c++ {
	//			dst[r][c] = a[r][c] + b[rb][c] // rb = r, or 0 when b has one row
	//		}
	//	}
	Add(dst, a, b Tensor)

	// RMSNorm normalises each row by its root mean square and scales it:
	//
	//	for r := 0; r < n; r++ {
	//		ss := sum(x[r][c]*x[r][c] for c < d) / d
	//		for c := 0; c < d; c++ {
	//			dst[r][c] = x[r][c] / sqrt(ss+eps) * w[0][c]
	//		}
	//	}
	//
	// w is F32 1 × d.
	RMSNorm(dst, x, w Tensor, eps float32)

	// LayerNorm normalises each row to zero mean and unit variance, then
	// scales and shifts it:
	//
	//	for r := 0; r < n; r++ {
	//		mean := sum(x[r][c]) / d
	//		variance := sum((x[r][c]-mean)^2) / d
	//		for c := 0; c < d; c++ {
	//			dst[r][c] = (x[r][c]-mean) / sqrt(variance+eps) * w[0][c] + b[0][c]
	//		}
	//	}
	//
	// w and b are F32 1 × d.
	LayerNorm(dst, x, w, b Tensor, eps float32)

	// RoPE rotates pairs of elements of every head by position-dependent
	// angles (rotary position embedding):
	//
	//	half := freqs.Cols()           // rotated pairs per head
	//	for r := 0; r < n; r++ {
	//		for h := 0; h < d/headDim; h++ {
	//			for i := 0; i < half; i++ {
	//				theta := float32(pos[r]) * freqs[0][i] // rounded to F32
	//				a, b := h*headDim+2*i, h*headDim+2*i+1  // interleaved layout
	//				if neox {
	//					a, b = h*headDim+i, h*headDim+i+half // NeoX (rotate-half) layout
	//				}
	//				dst[r][a] = x[r][a]*cos(theta) - x[r][b]*sin(theta)
	//				dst[r][b] = x[r][a]*sin(theta) + x[r][b]*cos(theta)
	//			}
	//			// elements of the head beyond the 2*half rotated ones are copied
	//		}
	//	}
	//
	// x is n × (heads·headDim), pos is I32 n × 1, freqs is F32 1 × half with
	// 2·half ≤ headDim. The caller computes freqs (theta^(-2i/rotDims) with
	// any frequency scaling already applied), so every scaling scheme is
	// the same operation.
	RoPE(dst, x, pos, freqs Tensor, headDim int, neox bool)

	// Attention stores this batch's keys and values in the cache, then runs
	// causal grouped-query attention of each row against its sequence's
	// cached positions:
	//
	//	for r := 0; r < n; r++ { // first every store ...
	//		s, p := seq[r], pos[r]
	//		cache.K[layer][blocks[s][p/B]][p%B] = k[r] // all KV heads
	//		cache.V[layer][blocks[s][p/B]][p%B] = v[r]
	//	}
	//	for r := 0; r < n; r++ { // ... then every read
	//		s, p := seq[r], pos[r]
	//		for h := 0; h < Hq; h++ {
	//			g := h / (Hq / Hkv)
	//			for j := 0; j <= p; j++ {
	//				score[j] = scale * dot(q[r][h], K(s, j)[g])
	//			}
	//			w := softmax(score[0..p])
	//			out[r][h] = sum(w[j] * V(s, j)[g] for j <= p)
	//		}
	//	}
	//
	// q and out are n × (Hq·D), k and v are n × (Hkv·D) with D the cache's
	// head size; pos and seq are I32 n × 1; blocks is the I32 block table,
	// one row per sequence, with B = the cache's block size. Every position
	// 0..pos[r] of a row's sequence must have been stored by this or an
	// earlier call, and no (seq, pos) pair may repeat within one call.
	// Stored keys and values are rounded to the cache's element type.
	Attention(out, q, k, v Tensor, cache KVCache, a Attn)

	// SwiGLU applies the SiLU-gated linear unit:
	//
	//	dst[r][c] = gate[r][c] / (1 + exp(-gate[r][c])) * up[r][c]
	SwiGLU(dst, gate, up Tensor)

	// GELU applies the tanh approximation of the Gaussian error linear unit
	// (GPT-2's "gelu_new"):
	//
	//	dst[r][c] = 0.5 * x * (1 + tanh(sqrt(2/π) * (x + 0.044715*x*x*x)))
	GELU(dst, x Tensor)

	// Copy copies elements: dst[r][c] = src[r][c]. dst and src are F32 of
	// the same shape; either may be strided.
	Copy(dst, src Tensor)

	// CopyKVBlock copies block src of every layer of the cache onto block
	// dst (for forking a sequence: beam search, shared prompt prefixes).
	CopyKVBlock(cache KVCache, dst, src int)

	// Sync waits for every queued operation and returns the first error
	// any operation met since the backend was created.
	Sync() error
	// Err returns the first error an operation met, without waiting.
	Err() error
	// Close releases everything the backend allocated. The backend is
	// unusable afterwards.
	Close() error
}

// Attn holds the per-call arguments of Backend.Attention.
type Attn struct {
	// Layer selects the cache layer.
	Layer int
	// Pos is I32 n × 1: the position of each row within its sequence.
	Pos Tensor
	// Seq is I32 n × 1: for each row, its sequence's row in Blocks.
	Seq Tensor
	// Blocks is I32 S × M: Blocks[s][i] is the cache block holding
	// positions [i·B, (i+1)·B) of sequence s.
	Blocks Tensor
	// Scale multiplies every score, usually 1/sqrt(head size).
	Scale float32
}

// KVSpec describes a paged key/value cache.
type KVSpec struct {
	Layers    int   // decoder layers
	KVHeads   int   // key/value heads per layer
	HeadDim   int   // elements per head
	BlockSize int   // positions per block
	Blocks    int   // blocks in the pool
	DType     DType // element type of stored keys and values: F32, F16 or BF16
}

// BytesPerBlock is the memory one block takes across all layers, keys and values.
func (s KVSpec) BytesPerBlock() int {
	eb := s.DType.BlockBytes()
	return 2 * s.Layers * s.KVHeads * s.HeadDim * s.BlockSize * eb
}

// KVCache is a pool of fixed-size blocks of cached keys and values, living
// in one backend's memory. Which blocks belong to which sequence is decided
// by the caller (package kvcache keeps the block tables); the cache itself
// only stores.
type KVCache interface {
	// Spec returns the cache's dimensions.
	Spec() KVSpec
	// Free releases the cache's memory.
	Free()
}

// ArgMaxer is implemented by backends that can reduce logits to the index
// of the largest value without copying the logits back.
type ArgMaxer interface {
	// ArgMax writes, for each row r of x, the smallest index c with
	// x[r][c] maximal: dst[r][0] = argmax_c x[r][c]. dst is I32 n × 1.
	ArgMax(dst, x Tensor)
}

// HostMapper is implemented by backends that compute on host memory and
// can use bytes already in memory (a mapped model file) as a weight tensor
// without copying them.
type HostMapper interface {
	// MapHost returns a rows × cols tensor of type dt whose elements are
	// data (in the layout Upload takes). data must stay valid and unchanged
	// while the tensor is in use.
	MapHost(dt DType, rows, cols int, data []byte) (Tensor, error)
}

// Grapher is implemented by backends that can record the operations of a
// step once and replay the recording (CUDA graphs), taking the host off the
// critical path between operations.
type Grapher interface {
	// Graph runs the operations step issues. The backend may record them
	// the first time it sees key and, on later calls with the same key,
	// replay the recording instead of calling step. step must issue the
	// same operations on the same tensors each time for a key; only tensor
	// contents (uploaded before the call) may differ.
	Graph(key string, step func()) error
}

// MemoryReporter is implemented by backends that can say how much memory
// they use.
type MemoryReporter interface {
	// Memory returns the bytes this backend has allocated and the bytes
	// of its device still free (free is -1 where unknown).
	Memory() (used, free int64)
}

// HostAllocator is implemented by backends that download faster into host
// memory they allocate themselves (page-locked memory for a GPU's DMA
// engine). generate.Engine keeps the logits it downloads every step there.
type HostAllocator interface {
	// AllocHost returns n zeroed bytes of such memory, 64-byte aligned,
	// valid until FreeHost or the backend's Close.
	AllocHost(n int) ([]byte, error)
	// FreeHost releases memory AllocHost returned; other slices are
	// ignored.
	FreeHost(b []byte)
}
