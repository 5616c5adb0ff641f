package cpu

import (
	"fmt"
	"math"

	"github.com/loomllm/loom/runtime/backend"
)

// elemChunk is the number of columns in one unit of element-wise work, so
// that a single long row (decode) still spreads across the pool.
const elemChunk = 2048

type elemOp uint8

const (
	opAdd elemOp = iota
	opSwiGLU
	opGELU
	opCopy
)

// elemJob is one element-wise call; its units are chunks of elemChunk
// columns of one row, row-major.
type elemJob struct {
	k         *kernels
	op        elemOp
	dst, a, b mat[float32]
	perRow    int // chunks per row
}

func (j *elemJob) run(_, lo, hi int) {
	for u := lo; u < hi; u++ {
		r, c0 := u/j.perRow, u%j.perRow*elemChunk
		c1 := min(c0+elemChunk, j.dst.cols)
		d, a := j.dst.row(r)[c0:c1], j.a.row(r)[c0:c1]
		switch j.op {
		case opAdd:
			rb := r
			if j.b.rows == 1 {
				rb = 0
			}
			bb := j.b.row(rb)[c0:c1]
			for i := range d {
				d[i] = a[i] + bb[i]
			}
		case opSwiGLU:
			j.k.swiglu(d, a, j.b.row(r)[c0:c1])
		case opGELU:
			// 0.5·x·(1 + tanh(y)) = x·sigmoid(2y): no cancellation near 0.
			j.k.gelu(d, a)
		case opCopy:
			copy(d, a)
		}
	}
}

// elementwise checks shapes and runs an element-wise operation: dst and a
// are n × d; for binary operations (Add, SwiGLU) b is n × d, or 1 × d when
// broadcast is set.
func (b *Backend) elementwise(name string, op elemOp, dst, a, bt backend.Tensor, broadcast bool) {
	binary := op == opAdd || op == opSwiGLU
	if !b.ok() {
		return
	}
	fail := func(err error) {
		if !binary {
			b.fail(fmt.Sprintf("%s(dst %v, x %v)", name, dst, a), err)
		} else {
			b.fail(fmt.Sprintf("%s(dst %v, %v, %v)", name, dst, a, bt), err)
		}
	}
	dm, err := b.f32(dst, true)
	if err != nil {
		fail(err)
		return
	}
	am, err := b.f32(a, false)
	if err != nil {
		fail(err)
		return
	}
	if a.Rows() != dst.Rows() || a.Cols() != dst.Cols() {
		fail(fmt.Errorf("%w: operands differ in shape", backend.ErrShape))
		return
	}
	var bm mat[float32]
	if binary {
		if bm, err = b.f32(bt, false); err != nil {
			fail(err)
			return
		}
		if bt.Cols() != dst.Cols() || (bt.Rows() != dst.Rows() && !(broadcast && bt.Rows() == 1)) {
			fail(fmt.Errorf("%w: operands differ in shape", backend.ErrShape))
			return
		}
	}
	j := &b.ew
	*j = elemJob{k: &b.k, op: op, dst: dm, a: am, b: bm, perRow: (dst.Cols() + elemChunk - 1) / elemChunk}
	units := dst.Rows() * j.perRow
	// Chunks of at least minChunk elements (a quarter of that for the
	// operations with an exponential).
	perChunk := minChunk
	if op == opSwiGLU || op == opGELU {
		perChunk /= 8
	}
	b.pool.run(j, units, max(1, perChunk/min(dst.Cols(), elemChunk)))
	b.ew = elemJob{}
}

// Add sets dst = a + b, broadcasting a one-row b (see backend.Backend).
func (b *Backend) Add(dst, a, bt backend.Tensor) { b.elementwise("Add", opAdd, dst, a, bt, true) }

// SwiGLU sets dst = silu(gate) * up (see backend.Backend).
func (b *Backend) SwiGLU(dst, gate, up backend.Tensor) {
	b.elementwise("SwiGLU", opSwiGLU, dst, gate, up, false)
}

// GELU applies the tanh approximation of GELU (see backend.Backend).
func (b *Backend) GELU(dst, x backend.Tensor) {
	b.elementwise("GELU", opGELU, dst, x, backend.Tensor{}, false)
}

// Copy copies src into dst (see backend.Backend).
func (b *Backend) Copy(dst, src backend.Tensor) {
	b.elementwise("Copy", opCopy, dst, src, backend.Tensor{}, false)
}

// normJob is one RMSNorm or LayerNorm call; its units are rows.
type normJob struct {
	k       *kernels
	layer   bool // LayerNorm (else RMSNorm)
	dst, x  mat[float32]
	w, bias []float32
	eps     float32
}

func (j *normJob) run(_, lo, hi int) {
	d := float32(j.x.cols)
	for r := lo; r < hi; r++ {
		x, y := j.x.row(r), j.dst.row(r)
		if !j.layer {
			s := 1 / float32(math.Sqrt(float64(j.k.dot(x, x)/d+j.eps)))
			for i, v := range x {
				y[i] = v * s * j.w[i]
			}
			continue
		}
		var sum float32
		for _, v := range x {
			sum += v
		}
		mean := sum / d
		var ss float32
		for _, v := range x {
			ss += (v - mean) * (v - mean)
		}
		s := 1 / float32(math.Sqrt(float64(ss/d+j.eps)))
		for i, v := range x {
			y[i] = (v-mean)*s*j.w[i] + j.bias[i]
		}
	}
}

// RMSNorm normalises each row by its root mean square and scales it by w
// (see backend.Backend).
func (b *Backend) RMSNorm(dst, x, w backend.Tensor, eps float32) {
	b.normalize("RMSNorm", false, dst, x, w, backend.Tensor{}, eps)
}

// LayerNorm normalises each row to zero mean and unit variance, then scales
// by w and shifts by bias (see backend.Backend).
func (b *Backend) LayerNorm(dst, x, w, bias backend.Tensor, eps float32) {
	b.normalize("LayerNorm", true, dst, x, w, bias, eps)
}

func (b *Backend) normalize(name string, layer bool, dst, x, w, bias backend.Tensor, eps float32) {
	if !b.ok() {
		return
	}
	fail := func(err error) {
		b.fail(fmt.Sprintf("%s(dst %v, x %v, w %v)", name, dst, x, w), err)
	}
	dm, err := b.f32(dst, true)
	if err != nil {
		fail(err)
		return
	}
	xm, err := b.f32(x, false)
	if err != nil {
		fail(err)
		return
	}
	wm, err := b.f32(w, false)
	if err != nil {
		fail(err)
		return
	}
	d := x.Cols()
	if dst.Rows() != x.Rows() || dst.Cols() != d || w.Rows() != 1 || w.Cols() != d {
		fail(fmt.Errorf("%w: want dst and x n×d and w 1×d", backend.ErrShape))
		return
	}
	var bm mat[float32]
	if layer {
		if bm, err = b.f32(bias, false); err != nil {
			fail(err)
			return
		}
		if bias.Rows() != 1 || bias.Cols() != d {
			fail(fmt.Errorf("%w: bias %v, want 1×%d", backend.ErrShape, bias, d))
			return
		}
	}
	j := &b.norm
	*j = normJob{k: &b.k, layer: layer, dst: dm, x: xm, w: wm.row(0), eps: eps}
	if layer {
		j.bias = bm.row(0)
	}
	b.pool.run(j, x.Rows(), max(1, 16384/d))
	b.norm = normJob{}
}

// ArgMax writes the index of each row's largest element of x into dst
// (backend.ArgMaxer). NaN elements are never the maximum; a row of only
// NaN gives 0.
func (b *Backend) ArgMax(dst, x backend.Tensor) {
	if !b.ok() {
		return
	}
	fail := func(err error) { b.fail(fmt.Sprintf("ArgMax(dst %v, x %v)", dst, x), err) }
	xm, err := b.f32(x, false)
	if err != nil {
		fail(err)
		return
	}
	if dst.DType() != backend.I32 {
		fail(fmt.Errorf("%w: dst must be i32", backend.ErrDType))
		return
	}
	dm, err := view32[int32](b, dst, backend.I32, true)
	if err != nil {
		fail(err)
		return
	}
	if dst.Rows() != x.Rows() || dst.Cols() != 1 {
		fail(fmt.Errorf("%w: want dst n×1", backend.ErrShape))
		return
	}
	j := &b.am
	*j = argmaxJob{k: &b.k, dst: dm, x: xm, chunks: 1}
	if n, cols := x.Rows(), x.Cols(); n < b.threads && cols >= 2*argChunk {
		// Few long rows (a vocabulary): each row's columns in chunks,
		// whose maxima are combined afterwards.
		j.chunks = min((cols+argChunk-1)/argChunk, b.threads)
		j.width = (cols + j.chunks - 1) / j.chunks
		if len(b.amIdx) < n*j.chunks {
			b.amIdx, b.amMax = make([]int, n*j.chunks), make([]float32, n*j.chunks)
		}
		j.idx, j.max = b.amIdx[:n*j.chunks], b.amMax[:n*j.chunks]
		b.pool.run(j, n*j.chunks, 1)
		for r := range n {
			best, bi := float32(math.Inf(-1)), -1
			for c := range j.chunks {
				if i, m := j.idx[r*j.chunks+c], j.max[r*j.chunks+c]; i >= 0 && (m > best || bi < 0) {
					best, bi = m, i
				}
			}
			dm.d[r*dm.stride] = int32(max(bi, 0))
		}
	} else {
		b.pool.run(j, x.Rows(), max(1, 65536/x.Cols()))
	}
	b.am = argmaxJob{}
}

// argChunk is the fewest columns of one row worth a goroutine of their own
// in ArgMax.
const argChunk = 8192

// argmaxJob is one ArgMax call; its units are rows, or with chunks > 1
// chunks of width columns of a row (unit u: row u/chunks, chunk
// u%chunks), whose first maximal index and maximum go to idx and max.
type argmaxJob struct {
	k      *kernels
	dst    mat[int32]
	x      mat[float32]
	chunks int
	width  int
	idx    []int
	max    []float32
}

func (j *argmaxJob) run(_, lo, hi int) {
	for u := lo; u < hi; u++ {
		if j.chunks == 1 {
			i, _ := j.k.argMax(j.x.row(u))
			j.dst.d[u*j.dst.stride] = int32(max(i, 0))
			continue
		}
		r, c := u/j.chunks, u%j.chunks
		c0 := c * j.width
		row := j.x.row(r)
		i, m := j.k.argMax(row[c0:min(c0+j.width, len(row))])
		if i >= 0 {
			i += c0
		}
		j.idx[u], j.max[u] = i, m
	}
}
