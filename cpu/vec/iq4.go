package vec

import "encoding/binary"

// GGUF's IQ4_NL and IQ4_XS: 4-bit indices into a fixed table of 16 int8
// levels (iq4Levels, llama.cpp's kvalues_iq4nl), 32 indices per 16 bytes
// with byte j holding element j (low nibble) and j+16 (high nibble), as
// Q4_0. IQ4_NL blocks are 32 elements: an F16 scale d and 16 bytes,
// element d·level. IQ4_XS blocks are QKK elements: F16 d, 16 bits of
// scale high bits, 4 bytes of scale nibbles, 128 bytes of indices; sub-block
// i (32 elements) has the 6-bit scale ls (low nibble i%2 of byte i/2, top
// 2 bits i of the 16) and elements d·(ls−32)·level. IQ4_XS files hold
// every matrix in it at 4.25 bits a weight.
const (
	IQ4_NLBlockBytes = 18
	IQ4_XSBlockBytes = 136
)

// iq4Levels is the IQ4 code book.
var iq4Levels = [16]int8{-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113}

// iq4xsScale returns sub-block i's scale ls−32 of an IQ4_XS block.
func iq4xsScale(blk []byte, i int) int {
	h := binary.LittleEndian.Uint16(blk[2:])
	return int(blk[4+i/2]>>(4*(i%2))&15|byte(h>>(2*i)&3)<<4) - 32
}

// iq4Sum returns Σ level(idx)·x over one 32-element sub-block: qs its 16
// index bytes, x its 32 activations.
func iq4Sum(qs []byte, x []int8) int32 {
	var t int32
	for j, v := range qs[:16] {
		t += int32(iq4Levels[v&15])*int32(x[j]) + int32(iq4Levels[v>>4])*int32(x[j+16])
	}
	return t
}

// DotIQ4_NLQ8 returns the dot product of a row of IQ4_NL blocks with
// activations quantized by QuantizeQ8 (q, and d with one scale per 32
// elements, so len(d) blocks are read): the sum over blocks of
// d_w·d[b]·Σ level·q, each inner sum an exact integer. It panics if w or q
// is too short.
func DotIQ4_NLQ8(w []byte, q []int8, d []float32) float32 { return dotIQ4_NLQ8(w, q, d) }

// DotIQ4_NLQ8Generic is DotIQ4_NLQ8's plain-Go twin.
func DotIQ4_NLQ8Generic(w []byte, q []int8, d []float32) float32 {
	nb := len(d)
	w, q = w[:nb*IQ4_NLBlockBytes], q[:nb*QK]
	var s float32
	for b := range nb {
		blk := w[b*IQ4_NLBlockBytes:]
		s += f16ToF32(binary.LittleEndian.Uint16(blk)) * d[b] * float32(iq4Sum(blk[2:18], q[b*QK:]))
	}
	return s
}

// DotIQ4_XSQ8 returns the dot product of a row of IQ4_XS blocks with
// activations quantized by QuantizeQ8 (len(d)/8 blocks are read): the sum
// over sub-blocks i of d_w·(ls_i−32)·d[i]·Σ level·q. It panics if w or q
// is too short.
func DotIQ4_XSQ8(w []byte, q []int8, d []float32) float32 { return dotIQ4_XSQ8(w, q, d) }

// DotIQ4_XSQ8Generic is DotIQ4_XSQ8's plain-Go twin.
func DotIQ4_XSQ8Generic(w []byte, q []int8, d []float32) float32 {
	nb := len(d) / 8
	w, q = w[:nb*IQ4_XSBlockBytes], q[:nb*QKK]
	var s float32
	for b := range nb {
		blk := w[b*IQ4_XSBlockBytes : (b+1)*IQ4_XSBlockBytes]
		dd := f16ToF32(binary.LittleEndian.Uint16(blk))
		for i := range 8 {
			t := iq4Sum(blk[8+16*i:], q[b*QKK+32*i:])
			s += dd * float32(iq4xsScale(blk, i)) * d[b*8+i] * float32(t)
		}
	}
	return s
}

// WidenIQ4_NL converts len(dst) elements (a multiple of 32) of IQ4_NL
// blocks to float32, each d·level as runtime/quant (and ggml) computes it.
func WidenIQ4_NL(dst []float32, src []byte) {
	for b := range len(dst) / QK {
		blk, out := src[b*IQ4_NLBlockBytes:(b+1)*IQ4_NLBlockBytes], dst[b*QK:(b+1)*QK]
		dd := f16ToF32(binary.LittleEndian.Uint16(blk))
		for j, v := range blk[2:18] {
			out[j] = dd * float32(iq4Levels[v&15])
			out[j+16] = dd * float32(iq4Levels[v>>4])
		}
	}
}

// WidenIQ4_XS converts len(dst) elements (a multiple of 256) of IQ4_XS
// blocks to float32, each d·(ls−32) rounded, times the level, as
// runtime/quant (and ggml) computes it.
func WidenIQ4_XS(dst []float32, src []byte) {
	for b := range len(dst) / QKK {
		blk, out := src[b*IQ4_XSBlockBytes:(b+1)*IQ4_XSBlockBytes], dst[b*QKK:(b+1)*QKK]
		dd := f16ToF32(binary.LittleEndian.Uint16(blk))
		for i := range 8 {
			dl := dd * float32(iq4xsScale(blk, i))
			for j, v := range blk[8+16*i : 8+16*i+16] {
				out[32*i+j] = dl * float32(iq4Levels[v&15])
				out[32*i+16+j] = dl * float32(iq4Levels[v>>4])
			}
		}
	}
}

// DotIQ4_NL and DotIQ4_XS return the dot product of a row of IQ4_NL or
// IQ4_XS blocks with float32 activations, the weights widened as
// WidenIQ4_NL and WidenIQ4_XS widen them: the exact path
// (cpu.Options.ExactQuant).
func DotIQ4_NL(w []byte, x []float32) float32 {
	var buf [QK]float32
	var s float32
	for b := range len(x) / QK {
		WidenIQ4_NL(buf[:], w[b*IQ4_NLBlockBytes:(b+1)*IQ4_NLBlockBytes])
		s += Dot(buf[:], x[b*QK:(b+1)*QK])
	}
	return s
}

// DotIQ4_XS: see DotIQ4_NL.
func DotIQ4_XS(w []byte, x []float32) float32 {
	var buf [QKK]float32
	var s float32
	for b := range len(x) / QKK {
		WidenIQ4_XS(buf[:], w[b*IQ4_XSBlockBytes:(b+1)*IQ4_XSBlockBytes])
		s += Dot(buf[:], x[b*QKK:(b+1)*QKK])
	}
	return s
}
