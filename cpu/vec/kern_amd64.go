//go:build amd64 && !purego

package vec

import (
	"math"
	"unsafe"
)

//go:noescape
func dotRows8AVX2(dst *float32, w *float32, stride int, x *float32, n int, rows int)

//go:noescape
func dotTile3x4AVX2(dst *float32, ldd int, x *float32, ldx int, nx int, w *float32, ldw int, nw int, k int)

//go:noescape
func axpyRowsAVX2(acc *float32, v *float32, stride int, p *float32, m int, n int)

//go:noescape
func expSumAVX2(x *float32, n int, scale float32) (m, sum float32)

//go:noescape
func swigluAVX2(dst, gate, up *float32, n int)

//go:noescape
func geluAVX2(dst, x *float32, n int)

//go:noescape
func dotTile4x8AVX512(dst *float32, ldd int, x *float32, ldx int, w *float32, ldw int, k int)

func dotTile(dst []float32, ldd int, x []float32, ldx, rows int, w []float32, ldw, cols, k int) {
	if !useAVX2 {
		DotTileGeneric(dst, ldd, x, ldx, rows, w, ldw, cols, k)
		return
	}
	if rows <= 0 || cols <= 0 {
		return
	}
	checkTile(dst, ldd, x, ldx, rows, w, ldw, cols, k)
	if !useAVX512 || rows < 4 || cols < 8 {
		dotTileAVX2(dst, ldd, x, ldx, rows, w, ldw, cols, k)
		return
	}
	// Whole 4x8 blocks with AVX-512, the rest of the columns and rows with
	// the AVX2 blocks: the same canonical sums, so the seams do not show.
	r4, c8 := rows&^3, cols&^7
	for r := 0; r < r4; r += 4 {
		for c := 0; c < c8; c += 8 {
			dotTile4x8AVX512(&dst[r*ldd+c], ldd, unsafe.SliceData(x[r*ldx:]), ldx, unsafe.SliceData(w[c*ldw:]), ldw, k)
		}
	}
	if c8 < cols {
		dotTileAVX2(dst[c8:], ldd, x, ldx, r4, w[c8*ldw:], ldw, cols-c8, k)
	}
	if r4 < rows {
		dotTileAVX2(dst[r4*ldd:], ldd, x[r4*ldx:], ldx, rows-r4, w, ldw, cols, k)
	}
}

// dotTileAVX2 is dotTile in blocks of three rows by four (rows and cols at
// least 1, slices checked).
func dotTileAVX2(dst []float32, ldd int, x []float32, ldx, rows int, w []float32, ldw, cols, k int) {
	for r := 0; r < rows; r += 3 {
		nx := min(rows-r, 3)
		if nx == 1 {
			// One row left: the eight-row kernel wastes nothing on it (and
			// sums in the same order).
			for c := 0; c < cols; c += 8 {
				dotRows8AVX2(&dst[r*ldd+c], unsafe.SliceData(w[c*ldw:]), ldw, unsafe.SliceData(x[r*ldx:]), k, min(cols-c, 8))
			}
			break
		}
		for c := 0; c < cols; c += 4 {
			dotTile3x4AVX2(&dst[r*ldd+c], ldd, unsafe.SliceData(x[r*ldx:]), ldx, nx, unsafe.SliceData(w[c*ldw:]), ldw, min(cols-c, 4), k)
		}
	}
}

func axpyRows(acc, v []float32, stride int, p []float32) {
	if !useAVX2 {
		AxpyRowsGeneric(acc, v, stride, p)
		return
	}
	if len(p) == 0 || len(acc) == 0 {
		return
	}
	_ = v[(len(p)-1)*stride : (len(p)-1)*stride+len(acc)]
	axpyRowsAVX2(unsafe.SliceData(acc), unsafe.SliceData(v), stride, unsafe.SliceData(p), len(p), len(acc))
}

func expSum(x []float32, scale float32) (m, sum float32) {
	if !useAVX2 || len(x) == 0 {
		return ExpSumGeneric(x, scale)
	}
	return expSumAVX2(unsafe.SliceData(x), len(x), scale)
}

func swiglu(dst, g, u []float32) {
	if !useAVX2 || len(dst) == 0 {
		SwiGLUGeneric(dst, g, u)
		return
	}
	g, u = g[:len(dst)], u[:len(dst)]
	swigluAVX2(unsafe.SliceData(dst), unsafe.SliceData(g), unsafe.SliceData(u), len(dst))
}

func gelu(dst, x []float32) {
	if !useAVX2 || len(dst) == 0 {
		GELUGeneric(dst, x)
		return
	}
	x = x[:len(dst)]
	geluAVX2(unsafe.SliceData(dst), unsafe.SliceData(x), len(dst))
}

//go:noescape
func attnBlocksAVX2(acc *float32, m *float32, l *float32, q *float32, nh int, d int, ks [][]float32, vs [][]float32, n int, scale float32, sbuf *float32)

func attnBlocks(acc, m, l, q []float32, d int, ks, vs [][]float32, scale float32, sbuf []float32) {
	nh := len(m)
	if !useAVX2 || d%8 != 0 || d == 0 || nh == 0 {
		AttnBlocksGeneric(acc, m, l, q, d, ks, vs, scale, sbuf)
		return
	}
	n := attnRows(d, ks, vs)
	if n == 0 {
		AttnBlocksGeneric(acc, m, l, q, d, ks, vs, scale, sbuf)
		return
	}
	_, _, _, _ = acc[nh*d-1], l[nh-1], q[nh*d-1], sbuf[AttnScratch(nh, n)-1]
	attnBlocksAVX2(unsafe.SliceData(acc), unsafe.SliceData(m), unsafe.SliceData(l), unsafe.SliceData(q), nh, d,
		ks, vs, n, scale, unsafe.SliceData(sbuf))
}

//go:noescape
func maxAVX2(x *float32, n int) float32

//go:noescape
func findAVX2(x *float32, n int, v float32) int

func argMax(x []float32) (int, float32) {
	if !useAVX2 || len(x) == 0 {
		return ArgMaxGeneric(x)
	}
	m := maxAVX2(unsafe.SliceData(x), len(x))
	i := findAVX2(unsafe.SliceData(x), len(x), m)
	if i == len(x) { // only NaN
		return -1, float32(math.NaN())
	}
	return i, m
}

//go:noescape
func dotRows8F16AVX2(dst *float32, w *byte, stride int, x *float32, n int, rows int)

//go:noescape
func dotRows8BF16AVX2(dst *float32, w *byte, stride int, x *float32, n int, rows int)

func dotRowsH(dst []float32, w []byte, stride int, x []float32, bf16 bool) {
	if !useAVX2 {
		if bf16 {
			DotRowsBF16Generic(dst, w, stride, x)
		} else {
			DotRowsF16Generic(dst, w, stride, x)
		}
		return
	}
	checkRowsH(dst, w, stride, x)
	if len(dst) == 0 {
		return
	}
	n := len(x)
	for r := 0; r < len(dst); r += 8 {
		f := dotRows8F16AVX2
		if bf16 {
			f = dotRows8BF16AVX2
		}
		f(&dst[r], unsafe.SliceData(w[2*r*stride:]), stride, unsafe.SliceData(x), n, min(len(dst)-r, 8))
	}
}
