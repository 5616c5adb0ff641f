//go:build amd64 && !purego

package vec

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// useAVX2 selects the assembly kernels: they need AVX2 (integer widening),
// FMA (fused multiply-add) and F16C (VCVTPH2PS for half-precision scales and
// weights). x/sys/cpu reports AVX2 only when the OS saves the YMM registers.
var useAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpu.X86.HasF16C

var features = func() string {
	if useAVX2 {
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
