// Package cpu is loom's pure-Go compute backend: every operation of the
// backend contract (runtime/backend) on tensors in host memory, row-parallel
// across a fixed pool of goroutines.
//
// Weights may be F32, F16, BF16, Q8_0, Q4_0, any K-quant (Q2_K to Q6_K),
// IQ4_NL or IQ4_XS (so llama.cpp's K-quant and IQ4_XS files run as
// stored); MatMul and Embed use them natively, in the
// byte layout GGUF stores them (MapHost uses a mapped file in place),
// without widening them in memory. Activations are F32. The key/value cache stores F32, F16 or BF16
// in host memory, in fixed-size blocks (see kvCache for the layout).
//
// The innermost loops (dot products, multi-row dots, widening to F32,
// 8-bit activation quantization and integer dots, axpy) come from package
// cpu/vec, which runs AVX2/FMA/F16C assembly where the CPU has it;
// Options.Generic forces vec's plain-Go twins instead, and the tests run
// the conformance suite on both.
//
// Work split: an operation cuts its work into chunks that the calling
// goroutine and Threads-1 pool goroutines claim in turn (an atomic
// counter, so a descheduled goroutine delays only its own chunk). Pool
// goroutines spin briefly on a generation counter between jobs, as OpenMP
// runtimes do, so a decode step's many small operations reach them in a
// fraction of a microsecond (see pool). A matrix-vector product is split
// by weight rows (one share per goroutine when the product is small); a
// product with several activation rows by tiles of weight rows that fit in
// the core's cache, each multiplied with every activation row, so weights
// stream from memory once per call; attention by (row, KV head), then by
// subgroups of a KV head's query heads, and for a long history with few
// rows also by parts of 256 positions, combined afterwards
// (flash-decoding); ArgMax of a few long rows by column ranges.
// Operations smaller than a few microseconds of work run on the caller
// alone. Once the per-worker scratch buffers have grown to the largest
// shapes seen, an operation allocates nothing, so a decode step allocates
// nothing.
//
// Numerics: sums accumulate in float32 (vec's several partial sums and
// fused multiply-adds); exponentials use a float32 polynomial within 2 ulp
// of math.Exp, vectorised in the softmax and the gated activations; by
// default quantized matrix products quantize the activations to 8
// bits, as llama.cpp does (see Options.ExactQuant).
//
// Batch invariance: a row's results do not depend on the other rows of
// the call or on the thread count. F32 matrix products add every dot
// product in one canonical order whether the row is alone (vec.DotRows)
// or in a tile (vec.DotTile); quantized products quantize each row on its
// own; attention cuts every row's history at fixed multiples of 256
// positions whatever the batch, and combines the parts in order; how work
// is spread over goroutines never changes the arithmetic. F16 and BF16
// rows are widened exactly (in registers for one activation row, into a
// tile for several) and then take the F32 order.
//
// A Backend is not safe for concurrent use: issue operations from one
// goroutine, as with a GPU stream. Operations run synchronously, so Sync
// only reports. Errors are sticky (see package backend): the first bad
// call is recorded, with the operation and shapes, and every later
// operation is skipped; Sync and Err report it.
package cpu

import (
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"unsafe"

	"github.com/loomllm/loom/cpu/vec"
	"github.com/loomllm/loom/runtime/backend"
)

// ErrReadOnly reports an attempt to write into a tensor made by MapHost,
// whose memory belongs to the caller (often a read-only file mapping).
var ErrReadOnly = errors.New("tensor maps caller memory and is read-only")

// Options configures a Backend.
type Options struct {
	// Threads is the number of goroutines an operation may use, the
	// caller's included; 0 means runtime.GOMAXPROCS(0).
	Threads int
	// Generic forces the plain-Go inner loops even where SIMD ones exist.
	Generic bool
	// ExactQuant multiplies quantized weights with the float32
	// activations themselves. By default MatMul quantizes the activations
	// to 8 bits per 32-element block first, as llama.cpp does: integer dot
	// products, 1.1 to 2 times faster, at a relative error of about 5e-3
	// (within the conformance tolerance for quantized weights). Set it to
	// compare with another backend more tightly.
	ExactQuant bool
	// MemoryLimit caps the bytes Alloc and NewKVCache may hand out, so a
	// corrupt size fails with backend.ErrOutOfMemory instead of exhausting
	// the machine. 0 means the physical memory where it is known, else no
	// limit; a negative value means no limit.
	MemoryLimit int64
}

// Backend is the CPU implementation of backend.Backend. It also implements
// backend.ArgMaxer, backend.HostMapper and backend.MemoryReporter.
type Backend struct {
	threads    int
	generic    bool
	exactQuant bool
	k          kernels
	pool       *pool
	limit      int64 // -1: none
	used       atomic.Int64
	err        error
	closed     bool

	// Per-worker scratch, grown on demand and then reused.
	scratch [][]float32
	// Per-worker lists of the key and value blocks of an attention part.
	kvLists [][2][][]float32
	// MatMul's activations quantized to 8 bits, and their scales.
	xq []int8
	xd []float32
	xs []float32
	// Attention's partial results when it splits positions (see attnJob).
	part []float32
	// ArgMax's per-chunk results when it splits long rows.
	amIdx []int
	amMax []float32

	// Preallocated operation descriptors, filled by each call and handed
	// to the pool as interfaces, so dispatch allocates nothing.
	mm   matmulJob
	ew   elemJob
	norm normJob
	rope ropeJob
	attn attnJob
	emb  embedJob
	am   argmaxJob
}

var (
	_ backend.Backend        = (*Backend)(nil)
	_ backend.ArgMaxer       = (*Backend)(nil)
	_ backend.HostMapper     = (*Backend)(nil)
	_ backend.MemoryReporter = (*Backend)(nil)
)

// New returns a CPU backend. Its pool goroutines run until Close.
func New(opt Options) *Backend {
	n := opt.Threads
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	b := &Backend{threads: n, generic: opt.Generic, exactQuant: opt.ExactQuant, k: selectKernels(opt.Generic)}
	switch {
	case opt.MemoryLimit > 0:
		b.limit = opt.MemoryLimit
	case opt.MemoryLimit == 0:
		b.limit = physicalMemory()
	default:
		b.limit = -1
	}
	b.scratch = make([][]float32, n)
	b.kvLists = make([][2][][]float32, n)
	b.pool = newPool(n)
	return b
}

// Name describes the backend, e.g. "cpu (2 threads, avx2,fma,f16c)".
func (b *Backend) Name() string {
	f := vec.Features()
	if b.generic {
		f = "generic"
	}
	return fmt.Sprintf("cpu (%d threads, %s)", b.threads, f)
}

// Threads is the number of goroutines an operation may use.
func (b *Backend) Threads() int { return b.threads }

// SupportsWeights reports whether MatMul and Embed accept weights of type
// dt: F32, F16, BF16, Q8_0, Q4_0, Q2_K to Q6_K, IQ4_NL and IQ4_XS.
func (b *Backend) SupportsWeights(dt backend.DType) bool {
	switch dt {
	case backend.F32, backend.F16, backend.BF16, backend.Q8_0, backend.Q4_0, backend.Q2_K, backend.Q3_K, backend.Q4_K, backend.Q5_K, backend.Q6_K,
		backend.IQ4_NL, backend.IQ4_XS:
		return true
	}
	return false
}

// buffer is host memory owned by one Backend.
type buffer struct {
	owner  *Backend
	data   []byte // nil once freed
	mapped bool   // caller's memory (MapHost): never written, never counted
}

// Bytes is the buffer's size (0 once freed).
func (m *buffer) Bytes() int { return len(m.data) }

// reserve accounts n more bytes against the memory limit.
func (b *Backend) reserve(n int64) error {
	if u := b.used.Add(n); b.limit >= 0 && u > b.limit {
		b.used.Add(-n)
		return fmt.Errorf("%w: %d bytes requested, %d of the %d-byte limit in use", backend.ErrOutOfMemory, n, u-n, b.limit)
	}
	return nil
}

// alignedBytes returns n zeroed bytes starting on a 64-byte boundary.
func alignedBytes(n int) []byte {
	raw := make([]uint64, (n+64+7)/8)
	p := uintptr(unsafe.Pointer(&raw[0]))
	skip := int((64 - p%64) % 64)
	return unsafe.Slice((*byte)(unsafe.Pointer(&raw[0])), len(raw)*8)[skip : skip+n : skip+n]
}

// allocBytes reserves and allocates n bytes, rejecting sizes that overflow
// or exceed the memory limit before allocating anything.
func (b *Backend) allocBytes(n int) ([]byte, error) {
	if b.closed {
		return nil, backend.ErrClosed
	}
	if err := b.reserve(int64(n)); err != nil {
		return nil, err
	}
	return alignedBytes(n), nil
}

// tensorBytes returns the bytes of a rows × cols tensor of type dt, or an
// error when the shape is invalid or the size overflows.
func tensorBytes(dt backend.DType, rows, cols int) (int, error) {
	rb, err := dt.RowBytes(cols)
	if err != nil {
		return 0, err
	}
	if rows <= 0 {
		return 0, fmt.Errorf("%w: %d rows", backend.ErrShape, rows)
	}
	if rows > (1<<62)/rb {
		return 0, fmt.Errorf("%w: %d×%d %v overflows", backend.ErrOutOfMemory, rows, cols, dt)
	}
	return rows * rb, nil
}

// Alloc returns a new zeroed contiguous rows × cols tensor of type dt.
func (b *Backend) Alloc(dt backend.DType, rows, cols int) (backend.Tensor, error) {
	n, err := tensorBytes(dt, rows, cols)
	if err != nil {
		return backend.Tensor{}, fmt.Errorf("cpu: alloc %d×%d %v: %w", rows, cols, dt, err)
	}
	data, err := b.allocBytes(n)
	if err != nil {
		return backend.Tensor{}, fmt.Errorf("cpu: alloc %d×%d %v: %w", rows, cols, dt, err)
	}
	return backend.NewTensor(&buffer{owner: b, data: data}, 0, dt, rows, cols)
}

// MapHost returns a rows × cols tensor of type dt whose elements are data,
// used in place. F32 data that is not 4-byte aligned (which a GGUF file's
// alignment rules exclude) is copied instead, since Go may not view it as
// float32 values. The tensor is read-only: Upload and operations refuse to
// write into it.
func (b *Backend) MapHost(dt backend.DType, rows, cols int, data []byte) (backend.Tensor, error) {
	if b.closed {
		return backend.Tensor{}, backend.ErrClosed
	}
	n, err := tensorBytes(dt, rows, cols)
	if err != nil {
		return backend.Tensor{}, fmt.Errorf("cpu: map %d×%d %v: %w", rows, cols, dt, err)
	}
	if len(data) != n {
		return backend.Tensor{}, fmt.Errorf("cpu: map %d×%d %v: %w: %d bytes given, %d needed", rows, cols, dt, backend.ErrShape, len(data), n)
	}
	if (dt == backend.F32 || dt == backend.I32) && uintptr(unsafe.Pointer(&data[0]))%4 != 0 {
		t, err := b.Alloc(dt, rows, cols)
		if err != nil {
			return backend.Tensor{}, err
		}
		copy(t.Buffer().(*buffer).data, data)
		return t, nil
	}
	return backend.NewTensor(&buffer{owner: b, data: data[:n:n], mapped: true}, 0, dt, rows, cols)
}

// Free releases a tensor's memory; views of it become invalid, and
// operations on them fail with backend.ErrShape. Freeing a mapped tensor
// only forgets the caller's memory.
func (b *Backend) Free(t backend.Tensor) {
	m, ok := t.Buffer().(*buffer)
	if !ok || m.owner != b || m.data == nil {
		return
	}
	if !m.mapped {
		b.used.Add(-int64(len(m.data)))
	}
	m.data = nil
}

// Upload copies src into the contiguous tensor dst.
func (b *Backend) Upload(dst backend.Tensor, src []byte) error {
	if b.closed {
		return backend.ErrClosed
	}
	if !dst.Contiguous() {
		return fmt.Errorf("cpu: upload to %v: %w: destination is strided", dst, backend.ErrShape)
	}
	d, err := b.bytesOf(dst, true)
	if err != nil {
		return fmt.Errorf("cpu: upload to %v: %w", dst, err)
	}
	if len(src) != len(d) {
		return fmt.Errorf("cpu: upload to %v: %w: %d bytes given, %d needed", dst, backend.ErrShape, len(src), len(d))
	}
	copy(d, src)
	return nil
}

// Download copies src's elements, rows packed, into dst. It reports the
// first error of any earlier operation.
func (b *Backend) Download(dst []byte, src backend.Tensor) error {
	if b.err != nil {
		return b.err
	}
	if b.closed {
		return backend.ErrClosed
	}
	rb := src.RowBytes()
	if len(dst) != src.Rows()*rb {
		return fmt.Errorf("cpu: download from %v: %w: %d bytes given, %d needed", src, backend.ErrShape, len(dst), src.Rows()*rb)
	}
	s, err := b.span(src, false)
	if err != nil {
		return fmt.Errorf("cpu: download from %v: %w", src, err)
	}
	sb := src.StrideBytes()
	for r := 0; r < src.Rows(); r++ {
		copy(dst[r*rb:(r+1)*rb], s[r*sb:r*sb+rb])
	}
	return nil
}

// Sync returns the first error any operation met. Operations run
// synchronously, so there is nothing to wait for.
func (b *Backend) Sync() error { return b.err }

// Err returns the first error any operation met.
func (b *Backend) Err() error { return b.err }

// Close stops the pool goroutines. The backend is unusable afterwards;
// tensors it allocated are left to the garbage collector.
func (b *Backend) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	b.pool.close()
	if b.err == nil {
		b.err = fmt.Errorf("cpu: %w", backend.ErrClosed)
	}
	return nil
}

// Memory returns the bytes allocated by Alloc and NewKVCache (mapped
// tensors excluded) and the bytes still allowed under the memory limit (-1
// when there is none).
func (b *Backend) Memory() (used, free int64) {
	u := b.used.Load()
	if b.limit < 0 {
		return u, -1
	}
	return u, max(b.limit-u, 0)
}

// fail records the first error of an operation.
func (b *Backend) fail(op string, err error) {
	if b.err == nil {
		b.err = fmt.Errorf("cpu: %s: %w", op, err)
	}
}

// ok reports whether an operation may run: no earlier error.
func (b *Backend) ok() bool { return b.err == nil }

// span returns the bytes from t's first element to the end of its last
// row, after checking t belongs to this backend and fits its buffer. write
// marks an output, which must not be caller memory.
func (b *Backend) span(t backend.Tensor, write bool) ([]byte, error) {
	m, ok := t.Buffer().(*buffer)
	if !ok || m == nil || m.owner != b {
		return nil, fmt.Errorf("%w: %v does not belong to this backend", backend.ErrShape, t)
	}
	if m.data == nil {
		return nil, fmt.Errorf("%w: %v was freed", backend.ErrShape, t)
	}
	if write && m.mapped {
		return nil, fmt.Errorf("%v: %w", t, ErrReadOnly)
	}
	rb := t.RowBytes()
	if t.Rows() <= 0 || rb <= 0 || t.Stride() < t.Cols() {
		return nil, fmt.Errorf("%w: invalid tensor %v", backend.ErrShape, t)
	}
	n := (t.Rows()-1)*t.StrideBytes() + rb
	off := t.Offset()
	if off < 0 || off > len(m.data) || n > len(m.data)-off {
		return nil, fmt.Errorf("%w: %v at offset %d exceeds its %d-byte buffer", backend.ErrShape, t, off, len(m.data))
	}
	return m.data[off : off+n : off+n], nil
}

// bytesOf returns the bytes of a contiguous tensor.
func (b *Backend) bytesOf(t backend.Tensor, write bool) ([]byte, error) {
	if !t.Contiguous() {
		return nil, fmt.Errorf("%w: %v is strided", backend.ErrShape, t)
	}
	return b.span(t, write)
}

// mat is a strided rows × cols view of 32-bit elements.
type mat[T float32 | int32] struct {
	d                  []T
	rows, cols, stride int
}

// row returns row r.
func (m mat[T]) row(r int) []T { return m.d[r*m.stride : r*m.stride+m.cols : r*m.stride+m.cols] }

// view32 returns the 32-bit elements of an F32 or I32 tensor of type dt.
func view32[T float32 | int32](b *Backend, t backend.Tensor, dt backend.DType, write bool) (mat[T], error) {
	if t.DType() != dt {
		return mat[T]{}, fmt.Errorf("%w: %v must be %v", backend.ErrDType, t, dt)
	}
	s, err := b.span(t, write)
	if err != nil {
		return mat[T]{}, err
	}
	if uintptr(unsafe.Pointer(&s[0]))%4 != 0 {
		return mat[T]{}, fmt.Errorf("%w: %v is not 4-byte aligned", backend.ErrShape, t)
	}
	d := unsafe.Slice((*T)(unsafe.Pointer(&s[0])), len(s)/4)
	return mat[T]{d: d, rows: t.Rows(), cols: t.Cols(), stride: t.Stride()}, nil
}

// f32 returns an F32 tensor's elements.
func (b *Backend) f32(t backend.Tensor, write bool) (mat[float32], error) {
	return view32[float32](b, t, backend.F32, write)
}

// i32 returns an I32 tensor's elements.
func (b *Backend) i32(t backend.Tensor) (mat[int32], error) {
	return view32[int32](b, t, backend.I32, false)
}

// scratchFor returns worker w's scratch buffer with at least n elements.
func (b *Backend) scratchFor(w, n int) []float32 {
	if len(b.scratch[w]) < n {
		b.scratch[w] = make([]float32, n)
	}
	return b.scratch[w][:n]
}

// uintptrOf returns the address of s's first byte (s is not empty).
func uintptrOf(s []byte) uintptr { return uintptr(unsafe.Pointer(&s[0])) }
