package quant

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/loomllm/loom/runtime/backend"
)

// QK is the number of elements in one Q8_0 or Q4_0 block.
const QK = 32

// QuantizeQ8_0 quantizes src (a multiple of 32 values) into Q8_0 blocks in
// dst (34 bytes per block), as llama.cpp's reference quantizer does:
// d = max|x|/127 rounded to F16, q = round(x/d).
func QuantizeQ8_0(dst []byte, src []float32) {
	for b := 0; b < len(src)/QK; b++ {
		x := src[b*QK : (b+1)*QK]
		amax := float32(0)
		for _, v := range x {
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		d := amax / 127
		id := float32(0)
		if d != 0 {
			id = 1 / d
		}
		out := dst[b*34 : (b+1)*34]
		binary.LittleEndian.PutUint16(out, F32ToF16(d))
		for i, v := range x {
			out[2+i] = byte(int8(math.Round(float64(v * id))))
		}
	}
}

// DequantizeQ8_0 expands Q8_0 blocks into dst (32 values per 34-byte block).
func DequantizeQ8_0(dst []float32, src []byte) {
	for b := 0; b < len(dst)/QK; b++ {
		blk := src[b*34 : (b+1)*34]
		d := F16ToF32(binary.LittleEndian.Uint16(blk))
		for i := 0; i < QK; i++ {
			dst[b*QK+i] = d * float32(int8(blk[2+i]))
		}
	}
}

// DequantizeQ4_0 expands Q4_0 blocks into dst (32 values per 18-byte block).
func DequantizeQ4_0(dst []float32, src []byte) {
	for b := 0; b < len(dst)/QK; b++ {
		blk := src[b*18 : (b+1)*18]
		d := F16ToF32(binary.LittleEndian.Uint16(blk))
		for i := 0; i < 16; i++ {
			q := blk[2+i]
			dst[b*QK+i] = d * float32(int(q&15)-8)
			dst[b*QK+i+16] = d * float32(int(q>>4)-8)
		}
	}
}

// Dequantize expands n elements of type dt from src into dst (len(dst) >=
// n). It supports every float type and every quantized type loom reads.
func Dequantize(dt backend.DType, dst []float32, src []byte) error {
	n := len(dst)
	rb, err := dt.RowBytes(n)
	if err != nil {
		return err
	}
	if len(src) < rb {
		return fmt.Errorf("quant: %d %v elements need %d bytes, have %d", n, dt, rb, len(src))
	}
	switch dt {
	case backend.F32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
		}
	case backend.F16:
		for i := range dst {
			dst[i] = F16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	case backend.BF16:
		for i := range dst {
			dst[i] = BF16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	case backend.Q8_0:
		DequantizeQ8_0(dst, src)
	case backend.Q4_0:
		DequantizeQ4_0(dst, src)
	case backend.Q4_K:
		DequantizeQ4_K(dst, src)
	case backend.Q6_K:
		DequantizeQ6_K(dst, src)
	case backend.Q4_1:
		DequantizeQ4_1(dst, src)
	case backend.Q5_0:
		DequantizeQ5_0(dst, src)
	case backend.Q5_1:
		DequantizeQ5_1(dst, src)
	case backend.IQ4_NL:
		DequantizeIQ4_NL(dst, src)
	case backend.Q2_K:
		DequantizeQ2_K(dst, src)
	case backend.Q3_K:
		DequantizeQ3_K(dst, src)
	case backend.Q5_K:
		DequantizeQ5_K(dst, src)
	case backend.IQ4_XS:
		DequantizeIQ4_XS(dst, src)
	default:
		return fmt.Errorf("%w: cannot dequantize %v", backend.ErrDType, dt)
	}
	return nil
}

// BytesF32Unaligned decodes little-endian float32 values from b, which need
// not be aligned, into a new slice.
func BytesF32Unaligned(b []byte) []float32 {
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}
