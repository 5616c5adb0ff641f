package vec

import "encoding/binary"

// Q3_KBlockBytes is the size of one GGUF Q3_K block of QKK elements: 32
// bytes of high bits, 64 of low 2-bit quants, 12 bytes packing sixteen
// 6-bit scales, d (IEEE half). Element e of 16-element group g is
// d·(s_g−32)·q with q = low − 4 when bit e/32 of hmask[e%32] is clear,
// low otherwise (-4..3); the low bits sit as Q2_K's. llama.cpp's Q3_K_M
// files hold most matrices in it, at 3.4 bits a weight.
const Q3_KBlockBytes = 110

// q3k returns element e (0..255) of a Q3_K block as q+4 (0..7).
func q3k(blk []byte, e int) int32 {
	low := int32(blk[32+32*(e/128)+e%32] >> (2 * (e % 128 / 32)) & 3)
	return low | int32(blk[e%32]>>(e/32)&1)<<2
}

// q3kScale returns group g's scale s−32 (-32..31) from a Q3_K block's 12
// scale bytes (runtime/quant has the same layout): the low 4 bits are
// byte g%8's low (g < 8) or high nibble, the top 2 bits those at
// 2·(g/4) of byte 8+g%4.
func q3kScale(s []byte, g int) int32 {
	lo := s[g%8] & 15
	if g >= 8 {
		lo = s[g%8] >> 4
	}
	return int32(lo|(s[8+g%4]>>(2*(g/4))&3)<<4) - 32
}

// DotQ3_KQ8 returns the dot product of a row of Q3_K blocks with
// activations quantized by QuantizeQ8 (q, and d with one scale per 32
// elements, so len(d)/8 blocks are read) and the sums of their quants per
// 16 (s, from SumsQ8By16):
//
//	sum over 16-element groups g of d_w·(s_g−32)·d[g/2]·(Σ_{i in g} (q_w[i]+4)·q[i] − 4·s[g])
//
// with Σ (q_w+4)·q an exact integer, added in an unspecified (fixed)
// order. It panics if w, q or s is too short.
func DotQ3_KQ8(w []byte, q []int8, d, s []float32) float32 { return dotQ3_KQ8(w, q, d, s) }

// DotQ3_KQ8Generic is DotQ3_KQ8's plain-Go twin.
func DotQ3_KQ8Generic(w []byte, q []int8, d, s []float32) float32 {
	nb := len(d) / 8
	w, q, s = w[:nb*Q3_KBlockBytes], q[:nb*QKK], s[:nb*16]
	var sum, off float32
	for b := range nb {
		blk := w[b*Q3_KBlockBytes : (b+1)*Q3_KBlockBytes]
		dd := f16ToF32(binary.LittleEndian.Uint16(blk[108:]))
		for g := range 16 {
			var t int32
			for e := 16 * g; e < 16*g+16; e++ {
				t += q3k(blk, e) * int32(q[b*QKK+e])
			}
			f := dd * float32(q3kScale(blk[96:108], g)) * d[b*8+g/2]
			sum += f * float32(t)
			off += f * s[b*16+g]
		}
	}
	return sum - 4*off
}

// WidenQ3_K converts len(dst) elements (a multiple of 256) of Q3_K blocks
// from src to float32, each d·(s−32) rounded, times q, as runtime/quant's
// DequantizeQ3_K (and ggml) computes it.
func WidenQ3_K(dst []float32, src []byte) {
	for b := range len(dst) / QKK {
		blk, out := src[b*Q3_KBlockBytes:(b+1)*Q3_KBlockBytes], dst[b*QKK:(b+1)*QKK]
		dd := f16ToF32(binary.LittleEndian.Uint16(blk[108:]))
		for e := range out {
			out[e] = float32(dd*float32(q3kScale(blk[96:108], e/16))) * float32(q3k(blk, e)-4)
		}
	}
}

// DotQ3_K returns the dot product of a row of Q3_K blocks with float32
// activations, the weights widened as WidenQ3_K widens them: the exact
// path (cpu.Options.ExactQuant).
func DotQ3_K(w []byte, x []float32) float32 {
	var buf [QKK]float32
	var s float32
	for b := range len(x) / QKK {
		WidenQ3_K(buf[:], w[b*Q3_KBlockBytes:(b+1)*Q3_KBlockBytes])
		s += Dot(buf[:], x[b*QKK:(b+1)*QKK])
	}
	return s
}
