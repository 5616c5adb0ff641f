package vec

import (
	"encoding/binary"
	"math"
)

// WidenF16Generic sets dst[i] to the float32 value of the i-th little-endian
// IEEE 754 binary16 value in src, for every i < len(dst). It panics if
// len(src) < 2*len(dst).
func WidenF16Generic(dst []float32, src []byte) {
	src = src[:2*len(dst)]
	for i := range dst {
		dst[i] = f16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
	}
}

// WidenBF16Generic sets dst[i] to the float32 value of the i-th
// little-endian bfloat16 value in src, for every i < len(dst). It panics if
// len(src) < 2*len(dst).
func WidenBF16Generic(dst []float32, src []byte) {
	src = src[:2*len(dst)]
	for i := range dst {
		dst[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(src[2*i:])) << 16)
	}
}

// WidenQ8_0Generic expands the len(dst)/32 GGUF Q8_0 blocks in src into
// dst: element j of block b is d*float32(q[j]) with d the block's F16
// scale, as runtime/quant.DequantizeQ8_0. A partial trailing block of dst
// is left alone. It panics if src is shorter than len(dst)/32*34 bytes.
func WidenQ8_0Generic(dst []float32, src []byte) {
	nb := len(dst) / QK
	src = src[:nb*Q8_0BlockBytes]
	for b := range nb {
		blk := src[b*Q8_0BlockBytes : (b+1)*Q8_0BlockBytes]
		d := f16ToF32(binary.LittleEndian.Uint16(blk))
		out := dst[b*QK : (b+1)*QK]
		for j, v := range blk[2:] {
			out[j] = d * float32(int8(v))
		}
	}
}

// WidenQ4_0Generic expands the len(dst)/32 GGUF Q4_0 blocks in src into
// dst: element j < 16 of block b is d*float32(int(p[j]&15)-8) and element
// j+16 is d*float32(int(p[j]>>4)-8), as runtime/quant.DequantizeQ4_0. A
// partial trailing block of dst is left alone. It panics if src is shorter
// than len(dst)/32*18 bytes.
func WidenQ4_0Generic(dst []float32, src []byte) {
	nb := len(dst) / QK
	src = src[:nb*Q4_0BlockBytes]
	for b := range nb {
		blk := src[b*Q4_0BlockBytes : (b+1)*Q4_0BlockBytes]
		d := f16ToF32(binary.LittleEndian.Uint16(blk))
		out := dst[b*QK : (b+1)*QK]
		for j, v := range blk[2:] {
			out[j] = d * float32(int(v&15)-8)
			out[j+16] = d * float32(int(v>>4)-8)
		}
	}
}
