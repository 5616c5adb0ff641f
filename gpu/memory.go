//go:build cuda

package gpu

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"unsafe"

	"github.com/loomllm/loom/runtime/backend"
	"gorgonia.org/cu"
)

// buffer is one device allocation.
type buffer struct {
	b    *Backend
	ptr  cu.DevicePtr // 0 once freed
	size int

	// The tensor Alloc made (zero for internal allocations); needed to
	// address block-quantized tensors, which are stored split (repack.go).
	dt         backend.DType
	rows, cols int
}

// Bytes is the allocation's size.
func (buf *buffer) Bytes() int { return buf.size }

// alloc makes a device allocation of n bytes for what (a description used
// in errors). Out of memory gives an error wrapping backend.ErrOutOfMemory
// that names the request and the free memory.
func (b *Backend) alloc(n int64, what string) (*buffer, error) {
	if !b.ok() {
		return nil, b.err
	}
	if b.capturing {
		return nil, fmt.Errorf("gpu: allocating %s inside Graph's step: allocate before recording", what)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := b.l.bind(); err != nil {
		return nil, fmt.Errorf("gpu: allocating %s: %w", what, err)
	}
	free, total, err := cu.MemInfo()
	if err != nil {
		return nil, fmt.Errorf("gpu: allocating %s: reading free memory: %w", what, err)
	}
	oom := func() error {
		return fmt.Errorf("gpu: %s: %w: %s needs %s, %s of %s free (%s allocated by this backend)",
			b.Name(), backend.ErrOutOfMemory, what, human(n), human(free), human(total), human(b.used))
	}
	if n > free {
		return nil, oom()
	}
	ptr, err := cu.MemAlloc(n)
	if isOOM(err) {
		return nil, oom()
	}
	if err != nil {
		return nil, fmt.Errorf("gpu: allocating %s (%s): %w", what, human(n), err)
	}
	buf := &buffer{b: b, ptr: ptr, size: int(n)}
	b.bufs[buf] = struct{}{}
	b.used += n
	return buf, nil
}

// freeBuffer releases buf.
func (b *Backend) freeBuffer(buf *buffer) error {
	if buf.ptr == 0 {
		return nil
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	err := b.l.bind()
	if err == nil {
		err = cu.MemFree(buf.ptr)
	}
	delete(b.bufs, buf)
	b.used -= int64(buf.size)
	buf.ptr = 0
	return err
}

// Alloc returns a new contiguous rows × cols tensor of type dt in device
// memory. Its contents are unspecified.
func (b *Backend) Alloc(dt backend.DType, rows, cols int) (backend.Tensor, error) {
	rb, err := dt.RowBytes(cols)
	if err != nil {
		return backend.Tensor{}, fmt.Errorf("gpu: Alloc: %w", err)
	}
	if rows <= 0 {
		return backend.Tensor{}, fmt.Errorf("gpu: Alloc: %w: %d rows", backend.ErrShape, rows)
	}
	if int64(rows) > math.MaxInt64/int64(rb) {
		return backend.Tensor{}, fmt.Errorf("gpu: Alloc: %w: %d×%d %v overflows", backend.ErrOutOfMemory, rows, cols, dt)
	}
	what := fmt.Sprintf("a %d×%d %v tensor", rows, cols, dt)
	buf, err := b.alloc(int64(rows)*int64(rb), what)
	if err != nil {
		return backend.Tensor{}, err
	}
	buf.dt, buf.rows, buf.cols = dt, rows, cols
	return backend.NewTensor(buf, 0, dt, rows, cols)
}

// Free releases the memory of a tensor returned by Alloc. Views of it
// become invalid. Freeing a foreign or already freed tensor does nothing.
func (b *Backend) Free(t backend.Tensor) {
	buf, ok := t.Buffer().(*buffer)
	if !ok || buf.b != b || b.closed {
		return
	}
	if b.capturing {
		b.fail(errors.New("gpu: Free called inside Graph's step"))
		return
	}
	if err := b.freeBuffer(buf); err != nil {
		b.fail(fmt.Errorf("gpu: Free %v: %w", t, err))
	}
}

// addr returns the device address of t's first element, or an error when
// t is not live memory of this backend.
func (b *Backend) addr(op string, t backend.Tensor) (uint64, error) {
	buf, ok := t.Buffer().(*buffer)
	switch {
	case !ok || buf.b != b:
		return 0, fmt.Errorf("gpu: %s: %w: tensor %v does not belong to %s", op, backend.ErrShape, t, b.Name())
	case buf.ptr == 0:
		return 0, fmt.Errorf("gpu: %s: %w: tensor %v was freed", op, backend.ErrShape, t)
	case t.DType().Quantized() && (buf.dt != t.DType() || buf.cols != t.Cols()):
		// Stored split (repack.go): only row ranges of the allocated
		// tensor can be addressed.
		return 0, fmt.Errorf("gpu: %s: %w: %v is not a row range of a %v tensor made by Alloc", op, backend.ErrShape, t, t.DType())
	}
	return uint64(buf.ptr) + uint64(t.Offset()), nil
}

// weightPtr is devPtr for the weights of MatMul and Embed: a block-quantized
// weight must be a whole tensor made by Alloc, since the kernels find the
// scales after the quants of all its rows.
func (b *Backend) weightPtr(op string, w backend.Tensor) uint64 {
	p := b.devPtr(op, w)
	if p != 0 && w.DType().Quantized() && (w.Offset() != 0 || w.Rows() != w.Buffer().(*buffer).rows) {
		b.fail(fmt.Errorf("gpu: %s: %w: %v is a row slice; block-quantized weights must be whole tensors on the gpu", op, backend.ErrShape, w))
		return 0
	}
	return p
}

// devPtr is addr for operations: a bad tensor becomes the sticky error
// (check b.err after taking every pointer an operation needs).
func (b *Backend) devPtr(op string, t backend.Tensor) uint64 {
	p, err := b.addr(op, t)
	if err != nil {
		b.fail(err)
	}
	return p
}

// Upload copies src into the contiguous tensor dst, after the queued
// operations have finished.
func (b *Backend) Upload(dst backend.Tensor, src []byte) error {
	if b.capturing {
		b.fail(errors.New("gpu: Upload called inside Graph's step"))
	}
	if !b.ok() {
		return b.err
	}
	if dst.IsZero() || !dst.Contiguous() {
		return fmt.Errorf("gpu: Upload: %w: %v is not a contiguous tensor", backend.ErrShape, dst)
	}
	if len(src) != dst.Bytes() {
		return fmt.Errorf("gpu: Upload: %w: %d bytes for %v, want %d", backend.ErrShape, len(src), dst, dst.Bytes())
	}
	ptr, err := b.addr("Upload", dst)
	if err != nil {
		return err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if b.wait("Upload"); b.err != nil {
		return b.err
	}
	if qs, d, r0, ok := b.splitRegions(dst); ok {
		// Block-quantized: store the quants and the scales apart.
		host := make([]byte, len(src))
		hq, hd := host[:dst.Rows()*qs.row], host[dst.Rows()*qs.row:]
		splitBlocks(dst.DType(), hq, hd, src)
		err = cu.MemcpyHtoD(qs.at(r0), unsafe.Pointer(&hq[0]), int64(len(hq)))
		if err == nil {
			err = cu.MemcpyHtoD(d.at(r0), unsafe.Pointer(&hd[0]), int64(len(hd)))
		}
	} else {
		err = cu.MemcpyHtoD(cu.DevicePtr(ptr), unsafe.Pointer(&src[0]), int64(len(src)))
	}
	if err != nil {
		b.fail(fmt.Errorf("gpu: Upload %v: %w", dst, err))
	}
	return b.err
}

// region is one of the two regions of a split block-quantized tensor.
type region struct {
	base cu.DevicePtr
	row  int // bytes per row
}

// at returns the address of row r.
func (g region) at(r int) cu.DevicePtr { return g.base + cu.DevicePtr(r*g.row) }

// splitRegions returns, for a block-quantized tensor (or a row slice of
// one), its quants and scales regions and the index of its first row in
// the allocation; ok is false for the other types.
func (b *Backend) splitRegions(t backend.Tensor) (qs, d region, r0 int, ok bool) {
	buf := t.Buffer().(*buffer)
	qsRow, dRow, ok := splitLayout(t.DType(), t.Cols())
	if !ok {
		return region{}, region{}, 0, false
	}
	qs = region{buf.ptr, qsRow}
	d = region{buf.ptr + cu.DevicePtr(buf.rows*qsRow), dRow}
	return qs, d, t.Offset() / t.RowBytes(), true
}

// Download waits for queued operations and copies src's elements, rows
// packed, into dst. It reports the first error of any earlier operation.
func (b *Backend) Download(dst []byte, src backend.Tensor) error {
	if b.capturing {
		b.fail(errors.New("gpu: Download called inside Graph's step"))
	}
	if !b.ok() {
		return b.err
	}
	if src.IsZero() {
		return fmt.Errorf("gpu: Download: %w: the zero tensor", backend.ErrShape)
	}
	rb := src.RowBytes()
	if len(dst) != src.Rows()*rb {
		return fmt.Errorf("gpu: Download: %w: %d bytes for %v, want %d", backend.ErrShape, len(dst), src, src.Rows()*rb)
	}
	ptr, err := b.addr("Download", src)
	if err != nil {
		return err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if b.wait("Download"); b.err != nil {
		return b.err
	}
	if qs, d, r0, ok := b.splitRegions(src); ok {
		host := make([]byte, len(dst))
		hq, hd := host[:src.Rows()*qs.row], host[src.Rows()*qs.row:]
		err = cu.MemcpyDtoH(unsafe.Pointer(&hq[0]), qs.at(r0), int64(len(hq)))
		if err == nil {
			err = cu.MemcpyDtoH(unsafe.Pointer(&hd[0]), d.at(r0), int64(len(hd)))
		}
		joinBlocks(src.DType(), dst, hq, hd)
	} else if src.Contiguous() || src.Rows() == 1 {
		err = cu.MemcpyDtoH(unsafe.Pointer(&dst[0]), cu.DevicePtr(ptr), int64(len(dst)))
	} else {
		err = copy2DToHost(dst, cu.DevicePtr(ptr), src.StrideBytes(), rb, src.Rows())
	}
	if err != nil {
		b.fail(fmt.Errorf("gpu: Download %v: %w", src, err))
	}
	return b.err
}
