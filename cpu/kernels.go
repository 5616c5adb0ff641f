package cpu

import (
	"math"
	"unsafe"

	"github.com/loomllm/loom/cpu/vec"
	"github.com/loomllm/loom/runtime/backend"
	"github.com/loomllm/loom/runtime/quant"
)

// kernels are the inner loops an operation calls: vec's fast routines, or
// their plain-Go twins when Options.Generic is set.
type kernels struct {
	dot        func(a, b []float32) float32
	dotRows    func(dst, w []float32, stride int, x []float32)
	dotF16     func(w []byte, x []float32) float32
	dotBF16    func(w []byte, x []float32) float32
	dotQ8_0    func(w []byte, x []float32) float32
	dotQ4_0    func(w []byte, x []float32) float32
	dotQ4_K    func(w []byte, x []float32) float32
	dotQ6_K    func(w []byte, x []float32) float32
	dotQ5_K    func(w []byte, x []float32) float32
	dotIQ4NL   func(w []byte, x []float32) float32
	dotQ2_K    func(w []byte, x []float32) float32
	dotQ3_K    func(w []byte, x []float32) float32
	dotIQ4XS   func(w []byte, x []float32) float32
	axpy       func(a float32, x, y []float32)
	widenF16   func(dst []float32, src []byte)
	widenBF16  func(dst []float32, src []byte)
	widenQ8_0  func(dst []float32, src []byte)
	widenQ4_0  func(dst []float32, src []byte)
	widenQ4_K  func(dst []float32, src []byte)
	widenQ6_K  func(dst []float32, src []byte)
	widenQ5_K  func(dst []float32, src []byte)
	widenIQ4NL func(dst []float32, src []byte)
	widenQ2_K  func(dst []float32, src []byte)
	widenQ3_K  func(dst []float32, src []byte)
	widenIQ4XS func(dst []float32, src []byte)

	dotTile    func(dst []float32, ldd int, x []float32, ldx, rows int, w []float32, ldw, cols, k int)
	axpyRows   func(acc, v []float32, stride int, p []float32)
	expSum     func(x []float32, scale float32) (m, sum float32)
	swiglu     func(dst, g, u []float32)
	gelu       func(dst, x []float32)
	argMax     func(x []float32) (int, float32)
	attnBlocks func(acc, m, l, q []float32, d int, ks, vs [][]float32, scale float32, sbuf []float32)

	quantizeQ8 func(q []int8, d []float32, x []float32)
	dotQ8_0Q8  func(w []byte, q []int8, d []float32) float32
	dotQ4_0Q8  func(w []byte, q []int8, d []float32) float32
	dotQ4_KQ8  func(w []byte, q []int8, d, s []float32) float32
	dotQ6_KQ8  func(w []byte, q []int8, d, s []float32) float32
	dotQ5_KQ8  func(w []byte, q []int8, d, s []float32) float32
	dotIQ4NLQ8 func(w []byte, q []int8, d []float32) float32
	dotQ2_KQ8  func(w []byte, q []int8, d, s []float32) float32
	dotQ3_KQ8  func(w []byte, q []int8, d, s []float32) float32
	dotIQ4XSQ8 func(w []byte, q []int8, d []float32) float32

	dotTileQ8_0Q8 func(dst []float32, ldd int, w []byte, ldw, cols int, q []int8, d []float32, ldq, rows int)
	dotTileQ4_0Q8 func(dst []float32, ldd int, w []byte, ldw, cols int, q []int8, d []float32, ldq, rows int)
	dotRowsF16    func(dst []float32, w []byte, stride int, x []float32)
	dotRowsBF16   func(dst []float32, w []byte, stride int, x []float32)
}

func selectKernels(generic bool) kernels {
	if generic {
		return kernels{
			dot: vec.DotGeneric, dotRows: vec.DotRowsGeneric,
			dotF16: vec.DotF16Generic, dotBF16: vec.DotBF16Generic, dotQ8_0: vec.DotQ8_0Generic, dotQ4_0: vec.DotQ4_0Generic,
			axpy:     vec.AxpyGeneric,
			widenF16: vec.WidenF16Generic, widenBF16: vec.WidenBF16Generic, widenQ8_0: vec.WidenQ8_0Generic, widenQ4_0: vec.WidenQ4_0Generic,
			quantizeQ8: vec.QuantizeQ8Generic, dotQ8_0Q8: vec.DotQ8_0Q8Generic, dotQ4_0Q8: vec.DotQ4_0Q8Generic,
			dotQ4_K: vec.DotQ4_K, widenQ4_K: vec.WidenQ4_K, dotQ4_KQ8: vec.DotQ4_KQ8Generic,
			dotQ6_K: vec.DotQ6_K, widenQ6_K: vec.WidenQ6_K, dotQ6_KQ8: vec.DotQ6_KQ8Generic,
			dotQ5_K: vec.DotQ5_K, widenQ5_K: vec.WidenQ5_K, dotQ5_KQ8: vec.DotQ5_KQ8Generic,
			dotIQ4NL: vec.DotIQ4_NL, widenIQ4NL: vec.WidenIQ4_NL, dotIQ4NLQ8: vec.DotIQ4_NLQ8Generic,
			dotQ2_K: vec.DotQ2_K, widenQ2_K: vec.WidenQ2_K, dotQ2_KQ8: vec.DotQ2_KQ8Generic,
			dotQ3_K: vec.DotQ3_K, widenQ3_K: vec.WidenQ3_K, dotQ3_KQ8: vec.DotQ3_KQ8Generic,
			dotIQ4XS: vec.DotIQ4_XS, widenIQ4XS: vec.WidenIQ4_XS, dotIQ4XSQ8: vec.DotIQ4_XSQ8Generic,
			dotTileQ8_0Q8: vec.DotTileQ8_0Q8Generic, dotTileQ4_0Q8: vec.DotTileQ4_0Q8Generic, dotRowsF16: vec.DotRowsF16Generic, dotRowsBF16: vec.DotRowsBF16Generic,
			dotTile: vec.DotTileGeneric, axpyRows: vec.AxpyRowsGeneric, expSum: vec.ExpSumGeneric,
			swiglu: vec.SwiGLUGeneric, gelu: vec.GELUGeneric, attnBlocks: vec.AttnBlocksGeneric, argMax: vec.ArgMaxGeneric,
		}
	}
	return kernels{
		dot: vec.Dot, dotRows: vec.DotRows,
		dotF16: vec.DotF16, dotBF16: vec.DotBF16, dotQ8_0: vec.DotQ8_0, dotQ4_0: vec.DotQ4_0,
		axpy:     vec.Axpy,
		widenF16: vec.WidenF16, widenBF16: vec.WidenBF16, widenQ8_0: vec.WidenQ8_0, widenQ4_0: vec.WidenQ4_0,
		quantizeQ8: vec.QuantizeQ8, dotQ8_0Q8: vec.DotQ8_0Q8, dotQ4_0Q8: vec.DotQ4_0Q8,
		dotQ4_K: vec.DotQ4_K, widenQ4_K: vec.WidenQ4_K, dotQ4_KQ8: vec.DotQ4_KQ8,
		dotQ6_K: vec.DotQ6_K, widenQ6_K: vec.WidenQ6_K, dotQ6_KQ8: vec.DotQ6_KQ8,
		dotQ5_K: vec.DotQ5_K, widenQ5_K: vec.WidenQ5_K, dotQ5_KQ8: vec.DotQ5_KQ8,
		dotIQ4NL: vec.DotIQ4_NL, widenIQ4NL: vec.WidenIQ4_NL, dotIQ4NLQ8: vec.DotIQ4_NLQ8,
		dotQ2_K: vec.DotQ2_K, widenQ2_K: vec.WidenQ2_K, dotQ2_KQ8: vec.DotQ2_KQ8,
		dotQ3_K: vec.DotQ3_K, widenQ3_K: vec.WidenQ3_K, dotQ3_KQ8: vec.DotQ3_KQ8,
		dotIQ4XS: vec.DotIQ4_XS, widenIQ4XS: vec.WidenIQ4_XS, dotIQ4XSQ8: vec.DotIQ4_XSQ8,
		dotTileQ8_0Q8: vec.DotTileQ8_0Q8, dotTileQ4_0Q8: vec.DotTileQ4_0Q8, dotRowsF16: vec.DotRowsF16, dotRowsBF16: vec.DotRowsBF16,
		dotTile: vec.DotTile, axpyRows: vec.AxpyRows, expSum: vec.ExpSum,
		swiglu: vec.SwiGLU, gelu: vec.GELU, attnBlocks: vec.AttnBlocks, argMax: vec.ArgMax,
	}
}

// dotW returns the dot product of x with a weight row of type dt.
func (k *kernels) dotW(dt backend.DType, w []byte, x []float32) float32 {
	switch dt {
	case backend.F32:
		return k.dot(bytesF32(w), x)
	case backend.F16:
		return k.dotF16(w, x)
	case backend.BF16:
		return k.dotBF16(w, x)
	case backend.Q8_0:
		return k.dotQ8_0(w, x)
	case backend.Q4_0:
		return k.dotQ4_0(w, x)
	case backend.Q4_K:
		return k.dotQ4_K(w, x)
	case backend.Q6_K:
		return k.dotQ6_K(w, x)
	case backend.Q5_K:
		return k.dotQ5_K(w, x)
	case backend.IQ4_NL:
		return k.dotIQ4NL(w, x)
	case backend.Q2_K:
		return k.dotQ2_K(w, x)
	case backend.Q3_K:
		return k.dotQ3_K(w, x)
	case backend.IQ4_XS:
		return k.dotIQ4XS(w, x)
	}
	return float32(math.NaN()) // unreachable: types are checked before
}

// bytesF32 views 4-byte aligned little-endian bytes as float32 values.
func bytesF32(b []byte) []float32 {
	if len(b) < 4 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), len(b)/4)
}

// widen converts one row of len(dst) elements of type dt from src into
// dst, exactly as runtime/quant does.
func (k *kernels) widen(dt backend.DType, dst []float32, src []byte) {
	switch dt {
	case backend.F32:
		copy(dst, bytesF32(src))
	case backend.F16:
		k.widenF16(dst, src)
	case backend.BF16:
		k.widenBF16(dst, src)
	case backend.Q8_0:
		k.widenQ8_0(dst, src)
	case backend.Q4_0:
		k.widenQ4_0(dst, src)
	case backend.Q4_K:
		k.widenQ4_K(dst, src)
	case backend.Q6_K:
		k.widenQ6_K(dst, src)
	case backend.Q5_K:
		k.widenQ5_K(dst, src)
	case backend.IQ4_NL:
		k.widenIQ4NL(dst, src)
	case backend.Q2_K:
		k.widenQ2_K(dst, src)
	case backend.Q3_K:
		k.widenQ3_K(dst, src)
	case backend.IQ4_XS:
		k.widenIQ4XS(dst, src)
	}
}

// roundRow stores src into dst (len(src) elements of type dt: F32, F16 or
// BF16), rounding to nearest even.
func roundRow(dt backend.DType, dst []byte, src []float32) {
	switch dt {
	case backend.F32:
		copy(bytesF32(dst), src)
	case backend.F16:
		quant.EncodeF16(dst, src)
	case backend.BF16:
		quant.EncodeBF16(dst, src)
	}
}

// quantTile returns the register-blocked integer tile for weights of type
// dt (Q8_0, Q4_0), or nil where the product goes pair by pair.
func (k *kernels) quantTile(dt backend.DType) func(dst []float32, ldd int, w []byte, ldw, cols int, q []int8, d []float32, ldq, rows int) {
	switch dt {
	case backend.Q8_0:
		return k.dotTileQ8_0Q8
	case backend.Q4_0:
		return k.dotTileQ4_0Q8
	}
	return nil
}
