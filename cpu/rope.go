package cpu

import (
	"fmt"
	"math"

	"github.com/loomllm/loom/runtime/backend"
)

// RoPE rotates pairs of elements of every head by position-dependent angles
// (see backend.Backend). The cosine and sine of each angle are computed once
// per row (in float64, then rounded) and shared by all heads.
func (b *Backend) RoPE(dst, x, pos, freqs backend.Tensor, headDim int, neox bool) {
	if !b.ok() {
		return
	}
	fail := func(err error) {
		b.fail(fmt.Sprintf("RoPE(dst %v, x %v, pos %v, freqs %v, headDim %d)", dst, x, pos, freqs, headDim), err)
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
	pm, err := b.i32(pos)
	if err != nil {
		fail(err)
		return
	}
	fm, err := b.f32(freqs, false)
	if err != nil {
		fail(err)
		return
	}
	n, d, half := x.Rows(), x.Cols(), freqs.Cols()
	switch {
	case dst.Rows() != n || dst.Cols() != d:
		err = fmt.Errorf("%w: dst and x differ in shape", backend.ErrShape)
	case headDim <= 0 || d%headDim != 0:
		err = fmt.Errorf("%w: %d columns are not whole heads of %d", backend.ErrShape, d, headDim)
	case freqs.Rows() != 1 || 2*half > headDim:
		err = fmt.Errorf("%w: want freqs 1×half with 2·half ≤ %d", backend.ErrShape, headDim)
	case pos.Rows() != n || pos.Cols() != 1:
		err = fmt.Errorf("%w: want pos %d×1", backend.ErrShape, n)
	}
	if err != nil {
		fail(err)
		return
	}
	j := &b.rope
	*j = ropeJob{b: b, dst: dm, x: xm, pos: pm, freqs: fm.row(0), headDim: headDim, neox: neox}
	b.pool.run(j, n, max(1, minChunk/16/d))
	b.rope = ropeJob{}
}

// ropeJob is one RoPE call; its units are rows.
type ropeJob struct {
	b       *Backend
	dst, x  mat[float32]
	pos     mat[int32]
	freqs   []float32
	headDim int
	neox    bool
}

func (j *ropeJob) run(wk, lo, hi int) {
	half := len(j.freqs)
	cs := j.b.scratchFor(wk, 2*half)
	cos, sin := cs[:half], cs[half:]
	for r := lo; r < hi; r++ {
		p := float32(j.pos.d[r*j.pos.stride])
		for i, f := range j.freqs {
			s, c := math.Sincos(float64(p * f))
			cos[i], sin[i] = float32(c), float32(s)
		}
		x, y := j.x.row(r), j.dst.row(r)
		for h := 0; h+j.headDim <= len(x); h += j.headDim {
			xh, yh := x[h:h+j.headDim], y[h:h+j.headDim]
			for i := range half {
				a, b := 2*i, 2*i+1
				if j.neox {
					a, b = i, i+half
				}
				xa, xb := xh[a], xh[b]
				yh[a] = xa*cos[i] - xb*sin[i]
				yh[b] = xa*sin[i] + xb*cos[i]
			}
			copy(yh[2*half:], xh[2*half:])
		}
	}
}
