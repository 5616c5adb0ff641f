package vec

import "encoding/binary"

// Q2_KBlockBytes is the size of one GGUF Q2_K block of QKK elements: 16
// scale bytes (one per 16 elements: the scale in the low nibble, the min
// in the high one), 64 bytes of 2-bit quants, then d and dmin (IEEE half).
// Element e is d·sc·q − dmin·m with q in 0..3 at bits 2·(e%128/32) of byte
// 32·(e/128) + e%32. llama.cpp's Q2_K files hold most matrices in it, at
// 2.6 bits a weight.
const Q2_KBlockBytes = 84

// q2k returns element e (0..255) of a Q2_K block, as stored (0..3).
func q2k(blk []byte, e int) int32 {
	return int32(blk[16+32*(e/128)+e%32] >> (2 * (e % 128 / 32)) & 3)
}

// DotQ2_KQ8 returns the dot product of a row of Q2_K blocks with
// activations quantized by QuantizeQ8 (q, and d with one scale per 32
// elements, so len(d)/8 blocks are read) and the sums of their quants per
// 16 (s, from SumsQ8By16):
//
//	sum over 16-element groups g of d[g/2]·(d_w·sc[g]·Σ_{i in g} q_w[i]·q[i] − dmin·m[g]·s[g])
//
// with Σ q_w·q an exact integer, added in an unspecified (fixed) order.
// It panics if w, q or s is too short.
func DotQ2_KQ8(w []byte, q []int8, d, s []float32) float32 { return dotQ2_KQ8(w, q, d, s) }

// DotQ2_KQ8Generic is DotQ2_KQ8's plain-Go twin.
func DotQ2_KQ8Generic(w []byte, q []int8, d, s []float32) float32 {
	nb := len(d) / 8
	w, q, s = w[:nb*Q2_KBlockBytes], q[:nb*QKK], s[:nb*16]
	var sum float32
	for b := range nb {
		blk := w[b*Q2_KBlockBytes : (b+1)*Q2_KBlockBytes]
		dd := f16ToF32(binary.LittleEndian.Uint16(blk[80:]))
		dmin := f16ToF32(binary.LittleEndian.Uint16(blk[82:]))
		for g := range 16 {
			var t int32
			for e := 16 * g; e < 16*g+16; e++ {
				t += q2k(blk, e) * int32(q[b*QKK+e])
			}
			dx := d[b*8+g/2]
			sum += dd*float32(blk[g]&15)*dx*float32(t) - dmin*float32(blk[g]>>4)*dx*s[b*16+g]
		}
	}
	return sum
}

// WidenQ2_K converts len(dst) elements (a multiple of 256) of Q2_K blocks
// from src to float32, each d·sc rounded, times q, less dmin·m rounded, as
// runtime/quant's DequantizeQ2_K (and ggml) computes it.
func WidenQ2_K(dst []float32, src []byte) {
	for b := range len(dst) / QKK {
		blk, out := src[b*Q2_KBlockBytes:(b+1)*Q2_KBlockBytes], dst[b*QKK:(b+1)*QKK]
		dd := f16ToF32(binary.LittleEndian.Uint16(blk[80:]))
		dmin := f16ToF32(binary.LittleEndian.Uint16(blk[82:]))
		for e := range out {
			sc := blk[e/16]
			out[e] = float32(float32(dd*float32(sc&15))*float32(q2k(blk, e))) - float32(dmin*float32(sc>>4))
		}
	}
}

// DotQ2_K returns the dot product of a row of Q2_K blocks with float32
// activations, the weights widened as WidenQ2_K widens them: the exact
// path (cpu.Options.ExactQuant).
func DotQ2_K(w []byte, x []float32) float32 {
	var buf [QKK]float32
	var s float32
	for b := range len(x) / QKK {
		WidenQ2_K(buf[:], w[b*Q2_KBlockBytes:(b+1)*Q2_KBlockBytes])
		s += Dot(buf[:], x[b*QKK:(b+1)*QKK])
	}
	return s
}
