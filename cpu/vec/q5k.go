package vec

import "encoding/binary"

// Q5_KBlockBytes is the size of one GGUF Q5_K block of QKK elements: d
// and dmin (IEEE half), Q4_K's twelve bytes of 6-bit scales and mins, 32
// bytes of fifth bits and 128 bytes of nibbles. Element l of sub-block j
// (32 elements) is d·sc[j]·q − dmin·m[j] with q = nibble | (bit j of
// qh[l])·16 in 0..31; the nibbles are laid out as Q4_K's. llama.cpp's
// Q5_K_M files keep most matrices in this type, at 5.5 bits a weight.
const Q5_KBlockBytes = 176

// q5k returns element l (0..31) of sub-block j (0..7) of a Q5_K block.
func q5k(blk []byte, j, l int) uint8 {
	v := blk[48+32*(j/2)+l]
	if j%2 == 1 {
		v >>= 4
	}
	return v&15 | (blk[16+l]>>j&1)<<4
}

// DotQ5_KQ8 returns the dot product of a row of Q5_K blocks with
// activations quantized by QuantizeQ8 (q, and d with one scale per 32
// elements, so len(d)/8 blocks are read) and their quant sums (s, from
// SumsQ8), as DotQ4_KQ8 does for Q4_K:
//
//	sum over sub-blocks j of d[j]·(d·sc[j]·Σ q_w·q  −  dmin·m[j]·s[j])
//
// with Σ q_w·q an exact integer, added in an unspecified (fixed) order.
// It panics if w, q or s is too short.
func DotQ5_KQ8(w []byte, q []int8, d, s []float32) float32 { return dotQ5_KQ8(w, q, d, s) }

// DotQ5_KQ8Generic is DotQ5_KQ8's plain-Go twin.
func DotQ5_KQ8Generic(w []byte, q []int8, d, s []float32) float32 {
	nb := len(d) / 8
	w, q, s = w[:nb*Q5_KBlockBytes], q[:nb*QKK], s[:nb*8]
	var sum float32
	for b := range nb {
		blk := w[b*Q5_KBlockBytes : (b+1)*Q5_KBlockBytes]
		dd := f16ToF32(binary.LittleEndian.Uint16(blk))
		dmin := f16ToF32(binary.LittleEndian.Uint16(blk[2:]))
		for j := range 8 {
			sc, m := q4kScaleMin(j, blk[4:16])
			xb := q[b*QKK+32*j : b*QKK+32*j+32]
			var t int32
			for l, x := range xb {
				t += int32(q5k(blk, j, l)) * int32(x)
			}
			dx := d[b*8+j]
			sum += dx*(dd*float32(sc))*float32(t) - dx*(dmin*float32(m))*s[b*8+j]
		}
	}
	return sum
}

// WidenQ5_K converts len(dst) elements (a multiple of 256) of Q5_K blocks
// from src to float32, each d·sc·q − dmin·m rounded as runtime/quant's
// DequantizeQ5_K (and ggml) rounds it.
func WidenQ5_K(dst []float32, src []byte) {
	nb := len(dst) / QKK
	src = src[:nb*Q5_KBlockBytes]
	for b := range nb {
		blk := src[b*Q5_KBlockBytes : (b+1)*Q5_KBlockBytes]
		dd := f16ToF32(binary.LittleEndian.Uint16(blk))
		dmin := f16ToF32(binary.LittleEndian.Uint16(blk[2:]))
		out := dst[b*QKK : (b+1)*QKK]
		for j := range 8 {
			sc, m := q4kScaleMin(j, blk[4:16])
			dj, mj := float32(dd*float32(sc)), float32(dmin*float32(m))
			for l := range 32 {
				out[32*j+l] = float32(dj*float32(q5k(blk, j, l))) - mj
			}
		}
	}
}

// DotQ5_K returns the dot product of a row of Q5_K blocks with float32
// activations (len(x)/256 blocks), the weights widened as WidenQ5_K
// widens them: the exact path (cpu.Options.ExactQuant).
func DotQ5_K(w []byte, x []float32) float32 {
	var buf [QKK]float32
	var s float32
	for b := range len(x) / QKK {
		WidenQ5_K(buf[:], w[b*Q5_KBlockBytes:(b+1)*Q5_KBlockBytes])
		s += Dot(buf[:], x[b*QKK:(b+1)*QKK])
	}
	return s
}
