//go:build amd64 && !purego

package vec

import (
	"os"
	"unsafe"

	"golang.org/x/sys/cpu"
)

// useAVX2 selects the assembly kernels: they need AVX2 (integer widening),
// FMA (fused multiply-add) and F16C (VCVTPH2PS for half-precision scales and
// weights). x/sys/cpu reports AVX2 only when the OS saves the YMM registers.
var useAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpu.X86.HasF16C

// useAVX512 adds DotTile's 4x8 block of 512-bit FMAs (AVX512F for the
// registers and FMAs, AVX512DQ for the 256-bit inserts, broadcasts and
// extracts). x/sys/cpu reports AVX-512 only when the OS saves the ZMM
// state. LOOM_NO_AVX512=1 turns it off (tests compare the two).
var useAVX512 = useAVX2 && cpu.X86.HasAVX512F && cpu.X86.HasAVX512DQ && os.Getenv("LOOM_NO_AVX512") == ""

// useVNNI adds the AVX512-VNNI Q4_K dot (VPDPBUSD on ZMM registers, with
// AVX512VL/BW for the 256-bit halves).
var useVNNI = useAVX512 && cpu.X86.HasAVX512VNNI && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VL

// f16Table maps every binary16 encoding to its float32 value. The
// quantized kernels look up block scales here: one load, where VCVTPH2PS
// and a broadcast would take two more uops on the vector ports they are
// bound by. Filled at init on machines that take the assembly path.
var f16Table [1 << 16]float32

func init() {
	if useAVX2 {
		for h := range f16Table {
			f16Table[h] = f16ToF32(uint16(h))
		}
	}
}

var features = func() string {
	switch {
	case useAVX512:
		return "avx2,fma,f16c,avx512"
	case useAVX2:
		return "avx2,fma,f16c"
	}
	return "generic"
}()

// The assembly routines take raw pointers and element (or block) counts;
// the Go wrappers below check the lengths first, so the assembly never reads
// outside the slices.

//go:noescape
func dotAVX2(a, b *float32, n int) float32

//go:noescape
func dotF16AVX2(w *byte, x *float32, n int) float32

//go:noescape
func dotBF16AVX2(w *byte, x *float32, n int) float32

//go:noescape
func dotQ8_0AVX2(w *byte, x *float32, nb int) float32

//go:noescape
func dotQ4_0AVX2(w *byte, x *float32, nb int) float32

//go:noescape
func dotQ8_0Q8AVX2(w *byte, q *int8, d *float32, nb int) float32

//go:noescape
func dotQ4_0Q8AVX2(w *byte, q *int8, d *float32, nb int) float32

//go:noescape
func quantizeQ8AVX2(q *int8, d *float32, x *float32, nb int)

//go:noescape
func dot4AVX2(dst *float32, w *float32, stride int, x *float32, n int)

//go:noescape
func axpyAVX2(a float32, x, y *float32, n int)

func dot(a, b []float32) float32 {
	if !useAVX2 {
		return DotGeneric(a, b)
	}
	b = b[:len(a)]
	return dotAVX2(unsafe.SliceData(a), unsafe.SliceData(b), len(a))
}

func dotF16(w []byte, x []float32) float32 {
	if !useAVX2 {
		return DotF16Generic(w, x)
	}
	w = w[:2*len(x)]
	return dotF16AVX2(unsafe.SliceData(w), unsafe.SliceData(x), len(x))
}

func dotBF16(w []byte, x []float32) float32 {
	if !useAVX2 {
		return DotBF16Generic(w, x)
	}
	w = w[:2*len(x)]
	return dotBF16AVX2(unsafe.SliceData(w), unsafe.SliceData(x), len(x))
}

func dotQ8_0(w []byte, x []float32) float32 {
	if !useAVX2 {
		return DotQ8_0Generic(w, x)
	}
	nb := len(x) / QK
	w = w[:nb*Q8_0BlockBytes]
	return dotQ8_0AVX2(unsafe.SliceData(w), unsafe.SliceData(x), nb)
}

func dotQ4_0(w []byte, x []float32) float32 {
	if !useAVX2 {
		return DotQ4_0Generic(w, x)
	}
	nb := len(x) / QK
	w = w[:nb*Q4_0BlockBytes]
	return dotQ4_0AVX2(unsafe.SliceData(w), unsafe.SliceData(x), nb)
}

func axpy(a float32, x, y []float32) {
	if !useAVX2 {
		AxpyGeneric(a, x, y)
		return
	}
	y = y[:len(x)]
	axpyAVX2(a, unsafe.SliceData(x), unsafe.SliceData(y), len(x))
}

func dotQ8_0Q8(w []byte, q []int8, d []float32) float32 {
	if !useAVX2 {
		return DotQ8_0Q8Generic(w, q, d)
	}
	nb := len(d)
	w, q = w[:nb*Q8_0BlockBytes], q[:nb*QK]
	return dotQ8_0Q8AVX2(unsafe.SliceData(w), unsafe.SliceData(q), unsafe.SliceData(d), nb)
}

func dotQ4_0Q8(w []byte, q []int8, d []float32) float32 {
	if !useAVX2 {
		return DotQ4_0Q8Generic(w, q, d)
	}
	nb := len(d)
	w, q = w[:nb*Q4_0BlockBytes], q[:nb*QK]
	return dotQ4_0Q8AVX2(unsafe.SliceData(w), unsafe.SliceData(q), unsafe.SliceData(d), nb)
}

func quantizeQ8(q []int8, d []float32, x []float32) {
	if !useAVX2 {
		QuantizeQ8Generic(q, d, x)
		return
	}
	nb := len(x) / QK
	q, d = q[:nb*QK], d[:nb]
	quantizeQ8AVX2(unsafe.SliceData(q), unsafe.SliceData(d), unsafe.SliceData(x), nb)
}

func dotRows(dst, w []float32, stride int, x []float32) {
	if !useAVX2 || len(dst) == 0 {
		DotRowsGeneric(dst, w, stride, x)
		return
	}
	n := len(x)
	_ = w[(len(dst)-1)*stride : (len(dst)-1)*stride+n] // bounds check once
	for r := 0; r < len(dst); r += 8 {
		dotRows8AVX2(&dst[r], unsafe.SliceData(w[r*stride:]), stride, unsafe.SliceData(x), n, min(len(dst)-r, 8))
	}
}

//go:noescape
func widenF16AVX2(dst *float32, src *byte, n int)

//go:noescape
func widenBF16AVX2(dst *float32, src *byte, n int)

//go:noescape
func widenQ8_0AVX2(dst *float32, src *byte, nb int)

//go:noescape
func widenQ4_0AVX2(dst *float32, src *byte, nb int)

func widenF16(dst []float32, src []byte) {
	if !useAVX2 {
		WidenF16Generic(dst, src)
		return
	}
	src = src[:2*len(dst)]
	widenF16AVX2(unsafe.SliceData(dst), unsafe.SliceData(src), len(dst))
}

func widenBF16(dst []float32, src []byte) {
	if !useAVX2 {
		WidenBF16Generic(dst, src)
		return
	}
	src = src[:2*len(dst)]
	widenBF16AVX2(unsafe.SliceData(dst), unsafe.SliceData(src), len(dst))
}

func widenQ8_0(dst []float32, src []byte) {
	if !useAVX2 {
		WidenQ8_0Generic(dst, src)
		return
	}
	nb := len(dst) / QK
	src = src[:nb*Q8_0BlockBytes]
	widenQ8_0AVX2(unsafe.SliceData(dst), unsafe.SliceData(src), nb)
}

func widenQ4_0(dst []float32, src []byte) {
	if !useAVX2 {
		WidenQ4_0Generic(dst, src)
		return
	}
	nb := len(dst) / QK
	src = src[:nb*Q4_0BlockBytes]
	widenQ4_0AVX2(unsafe.SliceData(dst), unsafe.SliceData(src), nb)
}

//go:noescape
func dotQ4_KQ8AVX2(w *byte, q *int8, d *float32, s *float32, nb int) float32

//go:noescape
func dotQ4_KQ8AVX512(w *byte, q *int8, d *float32, s *float32, nb int) float32

func dotQ4_KQ8(w []byte, q []int8, d, s []float32) float32 {
	nb := len(d) / 8
	if !useAVX2 || nb == 0 {
		return DotQ4_KQ8Generic(w, q, d, s)
	}
	w, q, s = w[:nb*Q4_KBlockBytes], q[:nb*QKK], s[:nb*8]
	if useVNNI {
		return dotQ4_KQ8AVX512(unsafe.SliceData(w), unsafe.SliceData(q), unsafe.SliceData(d), unsafe.SliceData(s), nb)
	}
	return dotQ4_KQ8AVX2(unsafe.SliceData(w), unsafe.SliceData(q), unsafe.SliceData(d), unsafe.SliceData(s), nb)
}

//go:noescape
func dotTileQ8_0Q8AVX512(dst *float32, ldd int, w *byte, ldw int, q *int8, ldq int, d *float32, ldx int, nb int)

func dotTileQ8_0Q8(dst []float32, ldd int, w []byte, ldw, cols int, q []int8, d []float32, ldq, rows int) {
	quantTile(dst, ldd, w, ldw, cols, q, d, ldq, rows, Q8_0BlockBytes, dotTileQ8_0Q8AVX512, dotQ8_0Q8)
}

// quantTile runs a VNNI tile kernel over the whole 4×3 blocks of a
// quantized product and the one-row kernel over the rest (the same sums).
func quantTile(dst []float32, ldd int, w []byte, ldw, cols int, q []int8, d []float32, ldq, rows, blockBytes int,
	tile func(dst *float32, ldd int, w *byte, ldw int, q *int8, ldq int, d *float32, ldx int, nb int),
	pair func(w []byte, q []int8, d []float32) float32) {
	nb := ldq / QK
	checkTileQ(dst, ldd, w, ldw, cols, q, d, ldq, rows, blockBytes)
	r4, c3 := 0, 0
	if useVNNI && nb > 0 {
		r4, c3 = rows&^3, cols/3*3
		for r := 0; r < r4; r += 4 {
			for c := 0; c < c3; c += 3 {
				tile(&dst[r*ldd+c], ldd, &w[c*ldw], ldw, &q[r*ldq], ldq, &d[r*nb], nb, nb)
			}
		}
	}
	for r := range rows {
		c0 := 0
		if r < r4 {
			c0 = c3
		}
		for c := c0; c < cols; c++ {
			dst[r*ldd+c] = pair(w[c*ldw:c*ldw+nb*blockBytes], q[r*ldq:(r+1)*ldq], d[r*nb:(r+1)*nb])
		}
	}
}

//go:noescape
func dotQ6_KQ8AVX2(w *byte, q *int8, d *float32, s *float32, nb int) float32

func dotQ6_KQ8(w []byte, q []int8, d, s []float32) float32 {
	nb := len(d) / 8
	if !useAVX2 || nb == 0 {
		return DotQ6_KQ8Generic(w, q, d, s)
	}
	w, q, s = w[:nb*Q6_KBlockBytes], q[:nb*QKK], s[:nb*16]
	return dotQ6_KQ8AVX2(unsafe.SliceData(w), unsafe.SliceData(q), unsafe.SliceData(d), unsafe.SliceData(s), nb)
}

//go:noescape
func dotTileQ4_0Q8AVX512(dst *float32, ldd int, w *byte, ldw int, q *int8, ldq int, d *float32, ldx int, nb int)

func dotTileQ4_0Q8(dst []float32, ldd int, w []byte, ldw, cols int, q []int8, d []float32, ldq, rows int) {
	quantTile(dst, ldd, w, ldw, cols, q, d, ldq, rows, Q4_0BlockBytes, dotTileQ4_0Q8AVX512, dotQ4_0Q8)
}

//go:noescape
func dotQ5_KQ8AVX2(w *byte, q *int8, d *float32, s *float32, nb int) float32

//go:noescape
func dotQ5_KQ8AVX512(w *byte, q *int8, d *float32, s *float32, nb int) float32

func dotQ5_KQ8(w []byte, q []int8, d, s []float32) float32 {
	nb := len(d) / 8
	if !useAVX2 || nb == 0 {
		return DotQ5_KQ8Generic(w, q, d, s)
	}
	w, q, s = w[:nb*Q5_KBlockBytes], q[:nb*QKK], s[:nb*8]
	if useVNNI {
		return dotQ5_KQ8AVX512(unsafe.SliceData(w), unsafe.SliceData(q), unsafe.SliceData(d), unsafe.SliceData(s), nb)
	}
	return dotQ5_KQ8AVX2(unsafe.SliceData(w), unsafe.SliceData(q), unsafe.SliceData(d), unsafe.SliceData(s), nb)
}

//go:noescape
func dotIQ4_NLQ8AVX2(w *byte, q *int8, d *float32, nb int) float32

func dotIQ4_NLQ8(w []byte, q []int8, d []float32) float32 {
	nb := len(d)
	if !useAVX2 || nb == 0 {
		return DotIQ4_NLQ8Generic(w, q, d)
	}
	w, q = w[:nb*IQ4_NLBlockBytes], q[:nb*QK]
	return dotIQ4_NLQ8AVX2(unsafe.SliceData(w), unsafe.SliceData(q), unsafe.SliceData(d), nb)
}

//go:noescape
func dotIQ4_XSQ8AVX2(w *byte, q *int8, d *float32, nb int) float32

func dotIQ4_XSQ8(w []byte, q []int8, d []float32) float32 {
	nb := len(d) / 8
	if !useAVX2 || nb == 0 {
		return DotIQ4_XSQ8Generic(w, q, d)
	}
	w, q = w[:nb*IQ4_XSBlockBytes], q[:nb*QKK]
	return dotIQ4_XSQ8AVX2(unsafe.SliceData(w), unsafe.SliceData(q), unsafe.SliceData(d), nb)
}

//go:noescape
func dotQ2_KQ8AVX2(w *byte, q *int8, d *float32, s *float32, nb int) float32

func dotQ2_KQ8(w []byte, q []int8, d, s []float32) float32 {
	nb := len(d) / 8
	if !useAVX2 || nb == 0 {
		return DotQ2_KQ8Generic(w, q, d, s)
	}
	w, q, s = w[:nb*Q2_KBlockBytes], q[:nb*QKK], s[:nb*16]
	return dotQ2_KQ8AVX2(unsafe.SliceData(w), unsafe.SliceData(q), unsafe.SliceData(d), unsafe.SliceData(s), nb)
}

//go:noescape
func dotQ3_KQ8AVX2(w *byte, q *int8, d *float32, s *float32, nb int) float32

func dotQ3_KQ8(w []byte, q []int8, d, s []float32) float32 {
	nb := len(d) / 8
	if !useAVX2 || nb == 0 {
		return DotQ3_KQ8Generic(w, q, d, s)
	}
	w, q, s = w[:nb*Q3_KBlockBytes], q[:nb*QKK], s[:nb*16]
	return dotQ3_KQ8AVX2(unsafe.SliceData(w), unsafe.SliceData(q), unsafe.SliceData(d), unsafe.SliceData(s), nb)
}
