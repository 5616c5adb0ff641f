//go:build cuda

package gpu

import (
	"github.com/loomllm/loom/runtime/backend"
)

// The launchers of the element-wise, normalisation, gather and reduction
// kernels. Each checks its arguments, takes the device addresses, and
// queues one kernel; the launch configurations are those stated in the
// kernels' comments (kernels/*.cu).

var ewThreads = dim3{ewBlock, 1, 1}

// Embed gathers rows of table into dst (see backend.Backend).
func (b *Backend) Embed(dst, table, ids backend.Tensor) {
	if !b.ok() {
		return
	}
	if err := checkEmbed(dst, table, ids, b.SupportsWeights); err != nil {
		b.fail(err)
		return
	}
	var k kernelID
	switch table.DType() {
	case backend.F32:
		k = kEmbedF32
	case backend.F16:
		k = kEmbedF16
	case backend.BF16:
		k = kEmbedBF16
	case backend.Q8_0:
		k = kEmbedQ8_0
	case backend.Q4_0:
		k = kEmbedQ4_0
	}
	pd, pt, pid := b.devPtr("Embed", dst), b.weightPtr("Embed", table), b.devPtr("Embed", ids)
	if b.err != nil {
		return
	}
	n, d := dst.Rows(), dst.Cols()
	rowBytes := table.StrideBytes()
	if qsRow, _, split := splitLayout(table.DType(), d); split {
		rowBytes = qsRow
	}
	b.launch(k, rowGrid(n, d, ewBlock), ewThreads,
		pd, pi(dst.Stride()), pt, pi(rowBytes), pid, pi(ids.Stride()), pi(n), pi(d), pi(table.Rows()))
}

// Add adds element-wise, broadcasting a one-row b (see backend.Backend).
func (b *Backend) Add(dst, a, x backend.Tensor) {
	if !b.ok() {
		return
	}
	if err := checkAdd(dst, a, x); err != nil {
		b.fail(err)
		return
	}
	pd, pa, px := b.devPtr("Add", dst), b.devPtr("Add", a), b.devPtr("Add", x)
	if b.err != nil {
		return
	}
	xs := x.Stride()
	if x.Rows() == 1 {
		xs = 0 // broadcast
	}
	n, d := dst.Rows(), dst.Cols()
	b.launch(kAdd, rowGrid(n, d, ewBlock), ewThreads,
		pd, pi(dst.Stride()), pa, pi(a.Stride()), px, pi(xs), pi(n), pi(d))
}

// SwiGLU applies the SiLU-gated linear unit (see backend.Backend).
func (b *Backend) SwiGLU(dst, gate, up backend.Tensor) {
	if !b.ok() {
		return
	}
	if err := sameShape("SwiGLU", dst, []string{"gate", "up"}, gate, up); err != nil {
		b.fail(err)
		return
	}
	pd, pg, pu := b.devPtr("SwiGLU", dst), b.devPtr("SwiGLU", gate), b.devPtr("SwiGLU", up)
	if b.err != nil {
		return
	}
	n, d := dst.Rows(), dst.Cols()
	b.launch(kSwiGLU, rowGrid(n, d, ewBlock), ewThreads,
		pd, pi(dst.Stride()), pg, pi(gate.Stride()), pu, pi(up.Stride()), pi(n), pi(d))
}

// GELU applies the tanh approximation of GELU (see backend.Backend).
func (b *Backend) GELU(dst, x backend.Tensor) { b.unary(kGELU, "GELU", dst, x) }

// Copy copies elements between F32 tensors of one shape (see backend.Backend).
func (b *Backend) Copy(dst, src backend.Tensor) { b.unary(kCopy, "Copy", dst, src) }

// unary launches a kernel of the form k(dst, ds, x, xs, rows, cols).
func (b *Backend) unary(k kernelID, op string, dst, x backend.Tensor) {
	if !b.ok() {
		return
	}
	if err := sameShape(op, dst, []string{"x"}, x); err != nil {
		b.fail(err)
		return
	}
	pd, px := b.devPtr(op, dst), b.devPtr(op, x)
	if b.err != nil {
		return
	}
	n, d := dst.Rows(), dst.Cols()
	b.launch(k, rowGrid(n, d, ewBlock), ewThreads, pd, pi(dst.Stride()), px, pi(x.Stride()), pi(n), pi(d))
}

// RMSNorm normalises each row by its root mean square (see backend.Backend).
func (b *Backend) RMSNorm(dst, x, w backend.Tensor, eps float32) {
	if !b.ok() {
		return
	}
	if err := checkNorm("RMSNorm", dst, x, w); err != nil {
		b.fail(err)
		return
	}
	pd, px, pw := b.devPtr("RMSNorm", dst), b.devPtr("RMSNorm", x), b.devPtr("RMSNorm", w)
	if b.err != nil {
		return
	}
	b.launch(kRMSNorm, dim3{dst.Rows(), 1, 1}, dim3{normBlock, 1, 1},
		pd, pi(dst.Stride()), px, pi(x.Stride()), pw, pi(dst.Cols()), pf(eps))
}

// LayerNorm normalises each row to zero mean and unit variance, then scales
// and shifts it (see backend.Backend).
func (b *Backend) LayerNorm(dst, x, w, bias backend.Tensor, eps float32) {
	if !b.ok() {
		return
	}
	if err := checkNorm("LayerNorm", dst, x, w, bias); err != nil {
		b.fail(err)
		return
	}
	pd, px := b.devPtr("LayerNorm", dst), b.devPtr("LayerNorm", x)
	pw, pbias := b.devPtr("LayerNorm", w), b.devPtr("LayerNorm", bias)
	if b.err != nil {
		return
	}
	b.launch(kLayerNorm, dim3{dst.Rows(), 1, 1}, dim3{normBlock, 1, 1},
		pd, pi(dst.Stride()), px, pi(x.Stride()), pw, pbias, pi(dst.Cols()), pf(eps))
}

// RoPE rotates pairs of elements of every head (see backend.Backend).
func (b *Backend) RoPE(dst, x, pos, freqs backend.Tensor, headDim int, neox bool) {
	if !b.ok() {
		return
	}
	if err := checkRoPE(dst, x, pos, freqs, headDim); err != nil {
		b.fail(err)
		return
	}
	pd, px := b.devPtr("RoPE", dst), b.devPtr("RoPE", x)
	pp, pfr := b.devPtr("RoPE", pos), b.devPtr("RoPE", freqs)
	if b.err != nil {
		return
	}
	n, heads, half := dst.Rows(), dst.Cols()/headDim, freqs.Cols()
	b.launch(kRoPE, rowGrid(n, heads*(headDim-half), ewBlock), ewThreads,
		pd, pi(dst.Stride()), px, pi(x.Stride()), pp, pi(pos.Stride()), pfr,
		pi(n), pi(heads), pi(headDim), pi(half), pb(neox))
}

// ArgMax writes the index of each row's largest element, the lowest on a
// tie (see backend.ArgMaxer).
func (b *Backend) ArgMax(dst, x backend.Tensor) {
	if !b.ok() {
		return
	}
	if err := checkArgMax(dst, x); err != nil {
		b.fail(err)
		return
	}
	pd, px := b.devPtr("ArgMax", dst), b.devPtr("ArgMax", x)
	if b.err != nil {
		return
	}
	b.launch(kArgMax, dim3{x.Rows(), 1, 1}, dim3{argMaxBlock, 1, 1},
		pd, pi(dst.Stride()), px, pi(x.Stride()), pi(x.Cols()))
}
