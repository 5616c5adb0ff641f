package vec

import "encoding/binary"

// GGUF's Q4_K: super-blocks of QKK = 256 weights in Q4_KBlockBytes = 144
// bytes: d and dmin (IEEE half), twelve bytes packing eight 6-bit scales
// and eight 6-bit mins, and 128 bytes of 4-bit quants. Element i of
// sub-block j (32 elements) is d·sc[j]·q[i] − dmin·m[j] with q in 0..15;
// the quants of sub-blocks 2c and 2c+1 share bytes 32c..32c+31, low
// nibble first. The dot products here multiply them as stored, without a
// widened copy: llama.cpp's Q4_K_M files keep most matrices in this type,
// at 4.5 bits a weight.
const (
	QKK            = 256
	Q4_KBlockBytes = 144
)

// q4kScaleMin unpacks sub-block j's 6-bit scale and min from a block's 12
// scale bytes (runtime/quant has the same layout): sub-blocks 0-3 use the
// low 6 bits of bytes j and j+4; 4-7 join a nibble of byte j+4 with the
// top 2 bits of bytes j-4 and j.
func q4kScaleMin(j int, s []byte) (sc, m uint8) {
	if j < 4 {
		return s[j] & 63, s[j+4] & 63
	}
	return s[j+4]&0xF | (s[j-4]>>6)<<4, s[j+4]>>4 | (s[j]>>6)<<4
}

// DotQ4_KQ8 returns the dot product of a row of Q4_K blocks with
// activations quantized by QuantizeQ8 (q, and d with one scale per 32
// elements, so len(d)/8 blocks are read) and the sums of their quants (s,
// from SumsQ8):
//
//	sum over sub-blocks j of d[j]·(d·sc[j]·Σ q_w·q  −  dmin·m[j]·s[j])
//
// where Σ q_w·q is an exact integer. The activation sums are the same for
// every weight row, so a matrix product computes them once per activation
// row. The terms are added in an unspecified (fixed) order. It panics if
// w, q or s is too short.
func DotQ4_KQ8(w []byte, q []int8, d, s []float32) float32 { return dotQ4_KQ8(w, q, d, s) }

// DotQ4_KQ8Generic is DotQ4_KQ8's plain-Go twin.
func DotQ4_KQ8Generic(w []byte, q []int8, d, s []float32) float32 {
	nb := len(d) / 8
	w, q, s = w[:nb*Q4_KBlockBytes], q[:nb*QKK], s[:nb*8]
	var sum float32
	for b := range nb {
		blk := w[b*Q4_KBlockBytes : (b+1)*Q4_KBlockBytes]
		dd := f16ToF32(binary.LittleEndian.Uint16(blk))
		dmin := f16ToF32(binary.LittleEndian.Uint16(blk[2:]))
		for j := range 8 {
			sc, m := q4kScaleMin(j, blk[4:16])
			qs := blk[16+32*(j/2) : 16+32*(j/2)+32]
			xb := q[b*QKK+32*j : b*QKK+32*j+32]
			var t int32
			for l, v := range qs {
				if j%2 == 1 {
					v >>= 4
				}
				t += int32(v&15) * int32(xb[l])
			}
			dx := d[b*8+j]
			sum += dx*(dd*float32(sc))*float32(t) - dx*(dmin*float32(m))*s[b*8+j]
		}
	}
	return sum
}

// SumsQ8 sets s[b] to the sum of the 32 quants q[32b:32b+32] for b <
// len(s), as float32 (exact: |sum| ≤ 32·127): the activation sums the
// K-quant dots take.
func SumsQ8(s []float32, q []int8) {
	q = q[:32*len(s)]
	for b := range s {
		var t int32
		for _, v := range q[32*b : 32*b+32] {
			t += int32(v)
		}
		s[b] = float32(t)
	}
}

// WidenQ4_K converts len(dst) elements (a multiple of 256) of Q4_K blocks
// from src to float32, each d·sc·q − dmin·m rounded as runtime/quant's
// DequantizeQ4_K rounds it.
func WidenQ4_K(dst []float32, src []byte) {
	nb := len(dst) / QKK
	src = src[:nb*Q4_KBlockBytes]
	for b := range nb {
		blk := src[b*Q4_KBlockBytes : (b+1)*Q4_KBlockBytes]
		dd := f16ToF32(binary.LittleEndian.Uint16(blk))
		dmin := f16ToF32(binary.LittleEndian.Uint16(blk[2:]))
		out := dst[b*QKK : (b+1)*QKK]
		for c := range 4 {
			sc1, m1 := q4kScaleMin(2*c, blk[4:16])
			sc2, m2 := q4kScaleMin(2*c+1, blk[4:16])
			d1, min1 := dd*float32(sc1), dmin*float32(m1)
			d2, min2 := dd*float32(sc2), dmin*float32(m2)
			for l, v := range blk[16+32*c : 16+32*c+32] {
				out[64*c+l] = float32(d1*float32(v&0xF)) - min1
				out[64*c+32+l] = float32(d2*float32(v>>4)) - min2
			}
		}
	}
}

// DotQ4_K returns the dot product of a row of Q4_K blocks with float32
// activations (len(x)/256 blocks), the weights widened exactly as
// WidenQ4_K widens them, 256 at a time. It is the exact path
// (cpu.Options.ExactQuant); the integer path DotQ4_KQ8 is the fast one.
func DotQ4_K(w []byte, x []float32) float32 {
	var buf [QKK]float32
	var s float32
	for b := range len(x) / QKK {
		WidenQ4_K(buf[:], w[b*Q4_KBlockBytes:(b+1)*Q4_KBlockBytes])
		s += Dot(buf[:], x[b*QKK:(b+1)*QKK])
	}
	return s
}

// Q6_KBlockBytes is the size of one GGUF Q6_K block of QKK elements: 128
// bytes of low 4 bits, 64 of high 2 bits, 16 int8 scales (one per 16
// elements) and d (IEEE half). Element i is d·sc[i/16]·(q[i] − 32), q a
// 6-bit value; the layout is ggml's block_q6_K (two halves of 128
// elements, see runtime/quant's DequantizeQ6_K). llama.cpp's Q4_K_M files
// keep the output matrix and some others in this type.
const Q6_KBlockBytes = 210

// q6k returns element l (0..31) of part k (0..3) of half h of a Q6_K
// block, as stored (0..63), and the index of its 16-element scale.
func q6k(blk []byte, h, k, l int) (q uint8, g int) {
	lo := blk[64*h+l+32*(k&1)]
	if k >= 2 {
		lo >>= 4
	}
	hi := blk[128+32*h+l] >> (2 * k) & 3
	return lo&0xF | hi<<4, 8*h + 2*k + l/16
}

// DotQ6_KQ8 returns the dot product of a row of Q6_K blocks with
// activations quantized by QuantizeQ8 (q, and d with one scale per 32
// elements, so len(d)/8 blocks are read) and the sums of their quants per
// 16 (s, from SumsQ8By16: the same for every weight row):
//
//	sum over 16-element groups g of d_w·sc[g]·d[g/2]·(Σ_{i in g} q_w[i]·q[i] − 32·s[g])
//
// with Σ q_w·q an exact integer, added in an unspecified (fixed) order.
// It panics if w, q or s is too short.
func DotQ6_KQ8(w []byte, q []int8, d, s []float32) float32 { return dotQ6_KQ8(w, q, d, s) }

// DotQ6_KQ8Generic is DotQ6_KQ8's plain-Go twin.
func DotQ6_KQ8Generic(w []byte, q []int8, d, s []float32) float32 {
	nb := len(d) / 8
	w, q, s = w[:nb*Q6_KBlockBytes], q[:nb*QKK], s[:nb*16]
	var sum, off float32
	for b := range nb {
		blk := w[b*Q6_KBlockBytes : (b+1)*Q6_KBlockBytes]
		dd := f16ToF32(binary.LittleEndian.Uint16(blk[208:]))
		for j := range 8 {
			h, k := j/4, j%4
			xb := q[b*QKK+32*j : b*QKK+32*j+32]
			for half := range 2 {
				var u int32
				g := 0
				for l := 16 * half; l < 16*half+16; l++ {
					var v uint8
					v, g = q6k(blk, h, k, l)
					u += int32(v) * int32(xb[l])
				}
				f := float32(int8(blk[192+g])) * (dd * d[b*8+j])
				sum += f * float32(u)
				off += f * s[b*16+g]
			}
		}
	}
	return sum - 32*off
}

// SumsQ8By16 sets s[g] to the sum of the 16 quants q[16g:16g+16] for g <
// len(s), as float32 (exact): the activation sums DotQ6_KQ8 takes.
func SumsQ8By16(s []float32, q []int8) {
	q = q[:16*len(s)]
	for g := range s {
		var t int32
		for _, v := range q[16*g : 16*g+16] {
			t += int32(v)
		}
		s[g] = float32(t)
	}
}

// WidenQ6_K converts len(dst) elements (a multiple of 256) of Q6_K blocks
// from src to float32, each d·sc rounded, times q − 32, as runtime/quant's
// DequantizeQ6_K rounds it.
func WidenQ6_K(dst []float32, src []byte) {
	nb := len(dst) / QKK
	src = src[:nb*Q6_KBlockBytes]
	for b := range nb {
		blk := src[b*Q6_KBlockBytes : (b+1)*Q6_KBlockBytes]
		dd := f16ToF32(binary.LittleEndian.Uint16(blk[208:]))
		out := dst[b*QKK : (b+1)*QKK]
		for h := range 2 {
			for k := range 4 {
				for l := range 32 {
					v, g := q6k(blk, h, k, l)
					out[128*h+32*k+l] = float32(dd*float32(int8(blk[192+g]))) * float32(int8(v)-32)
				}
			}
		}
	}
}

// DotQ6_K returns the dot product of a row of Q6_K blocks with float32
// activations (len(x)/256 blocks), the weights widened as WidenQ6_K
// widens them: the exact path (cpu.Options.ExactQuant).
func DotQ6_K(w []byte, x []float32) float32 {
	var buf [QKK]float32
	var s float32
	for b := range len(x) / QKK {
		WidenQ6_K(buf[:], w[b*Q6_KBlockBytes:(b+1)*Q6_KBlockBytes])
		s += Dot(buf[:], x[b*QKK:(b+1)*QKK])
	}
	return s
}
