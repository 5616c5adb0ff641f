package cpu

import (
	"encoding/binary"
	"math"
	"sync"
	"unsafe"

	"github.com/loomllm/loom/cpu/vec"
	"github.com/loomllm/loom/runtime/backend"
	"github.com/loomllm/loom/runtime/quant"
)

// kernels are the inner loops an operation calls: vec's fast routines, or
// their plain-Go twins when Options.Generic is set.
type kernels struct {
	dot     func(a, b []float32) float32
	dotF16  func(w []byte, x []float32) float32
	dotBF16 func(w []byte, x []float32) float32
	dotQ8_0 func(w []byte, x []float32) float32
	dotQ4_0 func(w []byte, x []float32) float32
	axpy    func(a float32, x, y []float32)
}

func selectKernels(generic bool) kernels {
	if generic {
		return kernels{vec.DotGeneric, vec.DotF16Generic, vec.DotBF16Generic, vec.DotQ8_0Generic, vec.DotQ4_0Generic, vec.AxpyGeneric}
	}
	return kernels{vec.Dot, vec.DotF16, vec.DotBF16, vec.DotQ8_0, vec.DotQ4_0, vec.Axpy}
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

// dequantRow widens one row of len(dst) elements of type dt from src into
// dst, exactly as runtime/quant does.
func dequantRow(dt backend.DType, dst []float32, src []byte) {
	switch dt {
	case backend.F32:
		copy(dst, bytesF32(src))
	case backend.F16:
		src = src[:2*len(dst)]
		tab := f16Table()
		for i := range dst {
			dst[i] = tab[binary.LittleEndian.Uint16(src[2*i:])]
		}
	case backend.BF16:
		src = src[:2*len(dst)]
		for i := range dst {
			dst[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(src[2*i:])) << 16)
		}
	case backend.Q8_0:
		for b := 0; b < len(dst)/32; b++ {
			blk := src[b*34 : (b+1)*34]
			d := quant.F16ToF32(binary.LittleEndian.Uint16(blk))
			out := dst[b*32 : (b+1)*32]
			for i := range out {
				out[i] = d * float32(int8(blk[2+i]))
			}
		}
	case backend.Q4_0:
		for b := 0; b < len(dst)/32; b++ {
			blk := src[b*18 : (b+1)*18]
			d := quant.F16ToF32(binary.LittleEndian.Uint16(blk))
			out := dst[b*32 : (b+1)*32]
			for i := 0; i < 16; i++ {
				out[i] = d * float32(int(blk[2+i]&15)-8)
				out[i+16] = d * float32(int(blk[2+i]>>4)-8)
			}
		}
	}
}

// f16Table maps every binary16 bit pattern to its float32 value (256 KiB,
// built on first use): a lookup is several times faster than decoding.
var f16Table = sync.OnceValue(func() *[1 << 16]float32 {
	var t [1 << 16]float32
	for i := range t {
		t[i] = quant.F16ToF32(uint16(i))
	}
	return &t
})

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
