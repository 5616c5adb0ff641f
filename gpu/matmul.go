//go:build cuda

package gpu

import (
	"github.com/loomllm/loom/runtime/backend"
)

// MatMul launches engineer B's matrix kernels as kernels/ABI.md §2 says:
// a GEMV for up to gemvMaxRows rows (decode), except that F16/BF16 weights
// usable in place by the tensor cores take the GEMM from gemmMinRows rows
// on; F32 FFMA for F32 weights; and otherwise tensor cores on 16-bit copies
// of x (and of the weights, when they are quantized or not 16-byte
// aligned), with split-K on small grids.
//
// Why rows 5..8 of F16/BF16 go to the GEMM (H200, 2026-11-27, BF16): the
// GEMV's cost grows with the rows (every weight feeds rows FMAs and rows
// shared-memory reads of x), to 2.1-2.4x its rows = 1 time at rows = 8
// (14336x4096: 74 µs vs 34; 4096x4096: 29.5 vs 13.8), while the 64x64
// tensor-core tile costs the same for any rows ≤ 64 (45 µs and 20 µs at
// rows = 32). Rows 2..4 stay on the GEMV: interpolating, rows = 4 costs
// about 1.5x rows = 1 (~50 µs and ~20 µs), a tie with the GEMM, and rows
// 2..3 are clearly cheaper. Quantized weights stay on the GEMV up to 8
// rows: their GEMM path first expands the weights to 16 bits (5 bytes of
// traffic per weight instead of ~1).

const (
	gemvMaxRows = 8
	gemmMinRows = 5 // F16/BF16 weights used in place: GEMM from this many rows
	// whBudget bounds the converted-weights workspace: weights are
	// converted and multiplied in chunks of rows that fit it.
	whBudget = 64 << 20
)

// MatMul multiplies activations by the transpose of a weight matrix (see
// backend.Backend).
func (b *Backend) MatMul(dst, x, w backend.Tensor) {
	if !b.ok() {
		return
	}
	if err := checkMatMul(dst, x, w, b.SupportsWeights); err != nil {
		b.fail(err)
		return
	}
	pd, px, pw := b.devPtr("MatMul", dst), b.devPtr("MatMul", x), b.weightPtr("MatMul", w)
	if b.err != nil {
		return
	}
	n, in, out := x.Rows(), x.Cols(), w.Rows()
	ldd, ldx := pi(dst.Stride()), pi(x.Stride())
	switch wt := w.DType(); {
	case n <= gemvMaxRows && !(n >= gemmMinRows && gemmInPlace(wt, in, pw)):
		k, r := gemvKernel(wt, n)
		b.launch(k, dim3{ceilDiv(out, 8*r), 1, 1}, dim3{gemvBlock, 1, 1},
			pd, ldd, px, ldx, pw, pi(n), pi(out), pi(in))
	case wt == backend.F32:
		b.launch(kSgemm, dim3{ceilDiv(n, 64), ceilDiv(out, 64), 1}, dim3{sgemmBlock, 1, 1},
			pd, ldd, px, ldx, pw, pi(n), pi(out), pi(in))
	default:
		b.gemm(pd, dst.Stride(), px, x.Stride(), pw, wt, n, out, in)
	}
}

// gemmInPlace reports whether the tensor-core GEMM reads weights of type wt
// with in columns at device address pw in place (ABI.md §2.1: 16-bit,
// rows a multiple of 8 elements, 16-byte aligned).
func gemmInPlace(wt backend.DType, in int, pw uint64) bool {
	return (wt == backend.F16 || wt == backend.BF16) && in%8 == 0 && pw%16 == 0
}

// gemvKernel returns the GEMV kernel for n ≤ 8 rows of weights of type dt
// (ABI.md §2.2: the variant _1, _4 or _8 for 1, 2..4 or 5..8 rows) and the
// output rows each of its warps computes.
func gemvKernel(dt backend.DType, n int) (k kernelID, rowsPerWarp int) {
	k = kGemvF32
	switch dt {
	case backend.F16:
		k = kGemvF16
	case backend.BF16:
		k = kGemvBF16
	case backend.Q8_0:
		k = kGemvQ8_0
	case backend.Q4_0:
		k = kGemvQ4_0
	}
	switch {
	case n == 1:
		return k, 1
	case n <= 4:
		return k + 1, 2
	}
	return k + 2, 4
}

// gemm runs a tensor-core product (ABI.md §2.1): x is rounded to 16 bits
// (BF16 for BF16 weights, F16 otherwise) into a zero-padded workspace, the
// weights are used in place when they are 16-bit, 16-byte aligned and
// their rows a multiple of 8 elements, and are otherwise converted chunk
// by chunk.
func (b *Backend) gemm(pd uint64, ldd int, px uint64, ldx int, pw uint64, wt backend.DType, n, out, in int) {
	kp := (in + 7) / 8 * 8
	mmx, bf16 := kMMXF16, wt == backend.BF16
	if bf16 {
		mmx = kMMXBF16
	}
	xh := b.scratch(wsXH, int64(n)*int64(kp)*2)
	if xh == 0 {
		return
	}
	b.launch(mmx, dim3{n, ceilDiv(kp, 1024), 1}, dim3{convBlock, 1, 1},
		xh, pi(kp), px, pi(ldx), pi(n), pi(in), pi(kp))
	if gemmInPlace(wt, in, pw) {
		b.gemmTiles(bf16, pd, ldd, xh, kp, pw, in, n, out, kp)
		return
	}
	cnt := max(256, whBudget/(2*kp)/256*256)
	cnt = min(cnt, out)
	wh := b.scratch(wsWH, int64(cnt)*int64(kp)*2)
	if wh == 0 {
		return
	}
	for o0 := 0; o0 < out; o0 += cnt {
		c := min(cnt, out-o0)
		b.launch(kMMWHalf, dim3{c, ceilDiv(kp, 1024), 1}, dim3{convBlock, 1, 1},
			wh, pi(kp), pw, uint64(wt), pi(out), pi(in), pi(kp), pi(o0), pi(c))
		b.gemmTiles(bf16, pd+uint64(4*o0), ldd, xh, kp, wh, kp, n, c, kp)
	}
}

// gemmTiles picks the tile and split-K factor for an n × out × k product
// (ABI.md §2.4) and launches it, then the split-K reduction if any.
func (b *Backend) gemmTiles(bf16 bool, pd uint64, ldd int, pa uint64, lda int, pb uint64, ldb int, n, out, k int) {
	sms := b.info.SMs
	large, small := kGemmF16Large, kGemmF16Small
	if bf16 {
		large, small = kGemmBF16Large, kGemmBF16Small
	}
	kern, grid, block := large, dim3{ceilDiv(n, 128), ceilDiv(out, 256), 1}, dim3{gemmLBlock, 1, 1}
	if grid.x*grid.y < sms {
		kern, grid, block = small, dim3{ceilDiv(n, 64), ceilDiv(out, 64), 1}, dim3{gemmSBlock, 1, 1}
		if ctas := grid.x * grid.y; ctas < sms {
			grid.z = max(1, min(ceilDiv(2*sms, ctas), ceilDiv(ceilDiv(k, 64), 4), 8))
		}
	}
	var ws uint64
	if grid.z > 1 {
		if ws = b.scratch(wsSplitK, int64(grid.z)*int64(n)*int64(out)*4); ws == 0 {
			return
		}
	}
	b.launch(kern, grid, block, pd, pi(ldd), pa, pi(lda), pb, pi(ldb), pi(n), pi(out), pi(k), ws)
	if grid.z > 1 {
		b.launch(kSplitKReduce, dim3{ceilDiv(n*out, 256), 1, 1}, dim3{reduceBlock, 1, 1},
			pd, pi(ldd), ws, pi(n), pi(out), pi(grid.z))
	}
}
