package backend

import "fmt"

// Buffer is a block of memory owned by one backend (host memory for the cpu
// backend, device memory for gpu). Only the backend that allocated a buffer
// interprets it; everyone else passes it around inside a Tensor.
type Buffer interface {
	// Bytes is the buffer's size in bytes.
	Bytes() int
}

// Tensor is a two-dimensional view of backend memory: rows × cols elements
// of one DType. It is a small value: copying it or taking a view allocates
// nothing, so views can be made freely inside a decode step.
//
// Rows are Stride elements apart (Stride == Cols for a contiguous tensor).
// Only float types may be strided, and only by ColSlice; weights are always
// contiguous. Vectors (norm weights, biases) are 1 × n tensors.
type Tensor struct {
	buf    Buffer
	off    int // byte offset of element [0,0] in buf
	dtype  DType
	rows   int
	cols   int
	stride int // elements between the starts of consecutive rows
}

// NewTensor describes rows × cols contiguous elements of type dt starting at
// byte offset off of buf. Backends call it; it checks that the tensor fits.
func NewTensor(buf Buffer, off int, dt DType, rows, cols int) (Tensor, error) {
	rb, err := dt.RowBytes(cols)
	if err != nil {
		return Tensor{}, err
	}
	if rows <= 0 {
		return Tensor{}, fmt.Errorf("%w: %d rows", ErrShape, rows)
	}
	if buf == nil {
		return Tensor{}, fmt.Errorf("%w: nil buffer", ErrShape)
	}
	if off < 0 || rows > (buf.Bytes()-off)/rb {
		return Tensor{}, fmt.Errorf("%w: %d×%d %v at offset %d does not fit a %d-byte buffer", ErrShape, rows, cols, dt, off, buf.Bytes())
	}
	return Tensor{buf: buf, off: off, dtype: dt, rows: rows, cols: cols, stride: cols}, nil
}

// DType is the element type.
func (t Tensor) DType() DType { return t.dtype }

// Rows is the number of rows.
func (t Tensor) Rows() int { return t.rows }

// Cols is the number of columns (elements per row).
func (t Tensor) Cols() int { return t.cols }

// Stride is the distance between the starts of consecutive rows, in
// elements; it equals Cols for a contiguous tensor.
func (t Tensor) Stride() int { return t.stride }

// Buffer is the memory the tensor views.
func (t Tensor) Buffer() Buffer { return t.buf }

// Offset is the byte offset of the first element within Buffer.
func (t Tensor) Offset() int { return t.off }

// IsZero reports whether t is the zero Tensor (no memory).
func (t Tensor) IsZero() bool { return t.buf == nil }

// Contiguous reports whether the rows follow each other without gaps.
func (t Tensor) Contiguous() bool { return t.stride == t.cols }

// Elems is rows × cols.
func (t Tensor) Elems() int { return t.rows * t.cols }

// RowBytes is the size of one row's elements in bytes.
func (t Tensor) RowBytes() int {
	n, _ := t.dtype.RowBytes(t.cols)
	return n
}

// Bytes is the size of a contiguous tensor's data in bytes.
func (t Tensor) Bytes() int { return t.rows * t.RowBytes() }

// StrideBytes is the distance between row starts in bytes.
func (t Tensor) StrideBytes() int {
	n, _ := t.dtype.RowBytes(t.stride)
	return n
}

// Slice returns rows [r0, r1) as a tensor. It panics if the range is out of
// bounds, like slicing a Go slice.
func (t Tensor) Slice(r0, r1 int) Tensor {
	if r0 < 0 || r1 > t.rows || r0 >= r1 {
		panic(fmt.Sprintf("backend: row slice [%d:%d] of a %d-row tensor", r0, r1, t.rows))
	}
	t.off += r0 * t.StrideBytes()
	t.rows = r1 - r0
	return t
}

// ColSlice returns columns [c0, c1) of every row as a strided tensor. Only
// F32 tensors can be column-sliced. It panics on a bad range or type, like
// slicing a Go slice.
func (t Tensor) ColSlice(c0, c1 int) Tensor {
	if t.dtype != F32 && t.dtype != I32 {
		panic(fmt.Sprintf("backend: column slice of a %v tensor", t.dtype))
	}
	if c0 < 0 || c1 > t.cols || c0 >= c1 {
		panic(fmt.Sprintf("backend: column slice [%d:%d] of a %d-column tensor", c0, c1, t.cols))
	}
	t.off += c0 * 4
	t.cols = c1 - c0
	return t
}

// Reshape views a contiguous tensor as rows × cols with the same element
// count. It panics when t is strided or the counts differ.
func (t Tensor) Reshape(rows, cols int) Tensor {
	if !t.Contiguous() || rows*cols != t.rows*t.cols || cols%t.dtype.BlockElems() != 0 {
		panic(fmt.Sprintf("backend: reshape %d×%d (stride %d) to %d×%d", t.rows, t.cols, t.stride, rows, cols))
	}
	t.rows, t.cols, t.stride = rows, cols, cols
	return t
}

// String describes the tensor's type and shape, e.g. "f32[8×4096]".
func (t Tensor) String() string {
	if t.stride != t.cols {
		return fmt.Sprintf("%v[%d×%d/%d]", t.dtype, t.rows, t.cols, t.stride)
	}
	return fmt.Sprintf("%v[%d×%d]", t.dtype, t.rows, t.cols)
}
