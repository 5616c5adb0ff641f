package quant

import (
	"encoding/binary"

	"github.com/loomllm/loom/runtime/backend"
)

// This file decodes llama.cpp's other GGUF weight formats: the 32-element
// Q4_1, Q5_0, Q5_1 and IQ4_NL, and the 256-element Q2_K, Q3_K, Q5_K and
// IQ4_XS. Each decoder follows ggml's block layout byte for byte and rounds
// as its reference dequantizer does (every product to float32, then the
// min subtracted), so the values are bitwise ggml's: TestGGMLVectors checks
// them against blocks quantized and dequantized by ggml itself.

// Block sizes in bytes.
const (
	blockQ4_1   = 20  // d, m (F16), 16 bytes of nibbles
	blockQ5_0   = 22  // d (F16), 4 bytes of fifth bits, 16 bytes of nibbles
	blockQ5_1   = 24  // d, m (F16), 4 bytes of fifth bits, 16 bytes of nibbles
	blockIQ4_NL = 18  // d (F16), 16 bytes of table indices
	blockQ2_K   = 84  // 16 scale/min bytes, 64 bytes of 2-bit quants, d, dmin (F16)
	blockQ3_K   = 110 // 32 bytes of high bits, 64 of low 2 bits, 12 of 6-bit scales, d (F16)
	blockQ5_K   = 176 // d, dmin (F16), 12 bytes of 6-bit scales and mins, 32 of fifth bits, 128 of nibbles
	blockIQ4_XS = 136 // d (F16), 16 bits of scale high bits, 4 bytes of scale nibbles, 128 of indices
)

// IQ4Levels is the non-linear 4-bit code book of IQ4_NL and IQ4_XS: index
// q stands for d*IQ4Levels[q].
var IQ4Levels = [16]int8{-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113}

func f16At(b []byte, off int) float32 { return F16ToF32(binary.LittleEndian.Uint16(b[off:])) }

// fifth returns bit j of a block's 32 high bits (4 bytes, little endian)
// as 16 or 0: the fifth bit of element j of a Q5_0 or Q5_1 block.
func fifth(qh uint32, j int) byte { return byte(qh>>j&1) << 4 }

// DequantizeQ4_1 expands Q4_1 blocks into dst: element j < 16 of a block
// is d*(qs[j]&15)+m and element j+16 is d*(qs[j]>>4)+m.
func DequantizeQ4_1(dst []float32, src []byte) {
	for b := 0; b < len(dst)/QK; b++ {
		blk := src[b*blockQ4_1 : (b+1)*blockQ4_1]
		d, m, qs := f16At(blk, 0), f16At(blk, 2), blk[4:20]
		y := dst[b*QK : (b+1)*QK]
		for j := 0; j < 16; j++ {
			y[j] = float32(float32(qs[j]&15)*d) + m
			y[j+16] = float32(float32(qs[j]>>4)*d) + m
		}
	}
}

// DequantizeQ5_0 expands Q5_0 blocks into dst: element j < 16 of a block is
// d*((qs[j]&15 | bit j of qh<<4) - 16), element j+16 the same with the
// high nibble and bit j+16.
func DequantizeQ5_0(dst []float32, src []byte) {
	for b := 0; b < len(dst)/QK; b++ {
		blk := src[b*blockQ5_0 : (b+1)*blockQ5_0]
		d, qh, qs := f16At(blk, 0), binary.LittleEndian.Uint32(blk[2:]), blk[6:22]
		y := dst[b*QK : (b+1)*QK]
		for j := 0; j < 16; j++ {
			y[j] = float32(int(qs[j]&15|fifth(qh, j))-16) * d
			y[j+16] = float32(int(qs[j]>>4|fifth(qh, j+16))-16) * d
		}
	}
}

// DequantizeQ5_1 expands Q5_1 blocks into dst: Q5_0's 5-bit quants q
// (without the offset 16), element d*q+m.
func DequantizeQ5_1(dst []float32, src []byte) {
	for b := 0; b < len(dst)/QK; b++ {
		blk := src[b*blockQ5_1 : (b+1)*blockQ5_1]
		d, m, qh, qs := f16At(blk, 0), f16At(blk, 2), binary.LittleEndian.Uint32(blk[4:]), blk[8:24]
		y := dst[b*QK : (b+1)*QK]
		for j := 0; j < 16; j++ {
			y[j] = float32(float32(qs[j]&15|fifth(qh, j))*d) + m
			y[j+16] = float32(float32(qs[j]>>4|fifth(qh, j+16))*d) + m
		}
	}
}

// DequantizeIQ4_NL expands IQ4_NL blocks into dst: element j < 16 of a
// block is d*IQ4Levels[qs[j]&15], element j+16 d*IQ4Levels[qs[j]>>4].
func DequantizeIQ4_NL(dst []float32, src []byte) {
	for b := 0; b < len(dst)/QK; b++ {
		blk := src[b*blockIQ4_NL : (b+1)*blockIQ4_NL]
		d, qs := f16At(blk, 0), blk[2:18]
		y := dst[b*QK : (b+1)*QK]
		for j := 0; j < 16; j++ {
			y[j] = d * float32(IQ4Levels[qs[j]&15])
			y[j+16] = d * float32(IQ4Levels[qs[j]>>4])
		}
	}
}

// DequantizeQ2_K expands Q2_K blocks into dst. A block holds 16
// sub-blocks of 16 elements; scale byte s of sub-block i gives the scale
// d*(s&15) and the min dmin*(s>>4). The 2-bit quants of element e sit in
// byte 32*(e/128) + e%32 of qs at bit 2*(e%128/32); the value is
// scale*q - min.
func DequantizeQ2_K(dst []float32, src []byte) {
	for b := 0; b < len(dst)/QK_K; b++ {
		blk := src[b*blockQ2_K : (b+1)*blockQ2_K]
		scales, qs := blk[:16], blk[16:80]
		d, dmin := f16At(blk, 80), f16At(blk, 82)
		y := dst[b*QK_K : (b+1)*QK_K]
		for e := range y {
			s := scales[e/16]
			q := qs[32*(e/128)+e%32] >> (2 * (e % 128 / 32)) & 3
			y[e] = float32(float32(d*float32(s&15))*float32(q)) - float32(dmin*float32(s>>4))
		}
	}
}

// q3kScale unpacks the 6-bit scale of sub-block i (0..15) of a Q3_K block
// from its 12 scale bytes: the low 4 bits are the low (i < 8) or high
// nibble of byte i%8, the top 2 bits are bits 2*(i/4)+1..2*(i/4) of byte
// 8+i%4. The scale is that value minus 32.
func q3kScale(s []byte, i int) int {
	lo := s[i%8] & 15
	if i >= 8 {
		lo = s[i%8] >> 4
	}
	hi := s[8+i%4] >> (2 * (i / 4)) & 3
	return int(lo|hi<<4) - 32
}

// DequantizeQ3_K expands Q3_K blocks into dst. Sixteen sub-blocks of 16
// elements each have a signed 6-bit scale (q3kScale); element e's low 2
// bits sit as Q2_K's, and its third bit is bit e/32 of hmask[e%32]: set,
// the quant is the low bits; clear, the low bits minus 4. The value is
// d*scale*quant.
func DequantizeQ3_K(dst []float32, src []byte) {
	for b := 0; b < len(dst)/QK_K; b++ {
		blk := src[b*blockQ3_K : (b+1)*blockQ3_K]
		hmask, qs, scales := blk[:32], blk[32:96], blk[96:108]
		d := f16At(blk, 108)
		y := dst[b*QK_K : (b+1)*QK_K]
		for e := range y {
			q := int(qs[32*(e/128)+e%32] >> (2 * (e % 128 / 32)) & 3)
			if hmask[e%32]>>(e/32)&1 == 0 {
				q -= 4
			}
			y[e] = float32(d*float32(q3kScale(scales, e/16))) * float32(q)
		}
	}
}

// DequantizeQ5_K expands Q5_K blocks into dst: Q4_K's layout (scales and
// mins as q4kScaleMin, nibbles of sub-blocks 2c and 2c+1 sharing bytes
// 32c..32c+31) with a fifth bit per element, bit e/32 of qh[e%32].
func DequantizeQ5_K(dst []float32, src []byte) {
	for b := 0; b < len(dst)/QK_K; b++ {
		blk := src[b*blockQ5_K : (b+1)*blockQ5_K]
		d, dmin := f16At(blk, 0), f16At(blk, 2)
		scales, qh, qs := blk[4:16], blk[16:48], blk[48:176]
		y := dst[b*QK_K : (b+1)*QK_K]
		for c := 0; c < 4; c++ {
			sc1, m1 := q4kScaleMin(2*c, scales)
			sc2, m2 := q4kScaleMin(2*c+1, scales)
			d1, min1 := float32(d*float32(sc1)), float32(dmin*float32(m1))
			d2, min2 := float32(d*float32(sc2)), float32(dmin*float32(m2))
			q := qs[32*c : 32*c+32]
			for l := 0; l < 32; l++ {
				h1, h2 := (qh[l]>>(2*c)&1)<<4, (qh[l]>>(2*c+1)&1)<<4
				y[64*c+l] = float32(d1*float32(q[l]&15|h1)) - min1
				y[64*c+32+l] = float32(d2*float32(q[l]>>4|h2)) - min2
			}
		}
	}
}

// DequantizeIQ4_XS expands IQ4_XS blocks into dst: eight sub-blocks of 32
// elements, each IQ4_NL's layout under the scale d*(ls-32), where ls's low
// 4 bits are nibble i%2 of byte i/2 of scales_l and its top 2 bits are
// bits 2i+1..2i of scales_h.
func DequantizeIQ4_XS(dst []float32, src []byte) {
	for b := 0; b < len(dst)/QK_K; b++ {
		blk := src[b*blockIQ4_XS : (b+1)*blockIQ4_XS]
		d, sh, sl, qs := f16At(blk, 0), binary.LittleEndian.Uint16(blk[2:]), blk[4:8], blk[8:136]
		y := dst[b*QK_K : (b+1)*QK_K]
		for i := 0; i < 8; i++ {
			ls := int(sl[i/2]>>(4*(i%2))&15) | int(sh>>(2*i)&3)<<4
			dl := d * float32(ls-32)
			for j := 0; j < 16; j++ {
				y[32*i+j] = dl * float32(IQ4Levels[qs[16*i+j]&15])
				y[32*i+16+j] = dl * float32(IQ4Levels[qs[16*i+j]>>4])
			}
		}
	}
}

// ExactQ8_0 writes src, of type dt, to dst as Q8_0 without loss and
// reports true, for the types whose every block is a Q8_0 block in
// disguise: Q4_0 (q-8), Q5_0 (q-16) and IQ4_NL (IQ4Levels[q]) share Q8_0's
// 32 elements and single F16 scale, and their levels fit in an int8. For
// other types it writes nothing and reports false. len(src) must hold
// len(dst)/34 blocks.
func ExactQ8_0(dt backend.DType, dst, src []byte) bool {
	var level func(blk []byte, j int) int8
	var size int
	switch dt {
	case backend.Q4_0:
		size = 18
		level = func(blk []byte, j int) int8 { return int8(blk[2+j%16]>>(4*(j/16))&15) - 8 }
	case backend.Q5_0:
		size = blockQ5_0
		level = func(blk []byte, j int) int8 {
			return int8(blk[6+j%16]>>(4*(j/16))&15|fifth(binary.LittleEndian.Uint32(blk[2:]), j)) - 16
		}
	case backend.IQ4_NL:
		size = blockIQ4_NL
		level = func(blk []byte, j int) int8 { return IQ4Levels[blk[2+j%16]>>(4*(j/16))&15] }
	default:
		return false
	}
	for b := 0; b < len(dst)/34; b++ {
		blk, out := src[b*size:(b+1)*size], dst[b*34:(b+1)*34]
		out[0], out[1] = blk[0], blk[1]
		for j := 0; j < QK; j++ {
			out[2+j] = byte(level(blk, j))
		}
	}
	return true
}

// ExactQ6_K writes Q3_K blocks from src to dst as Q6_K blocks holding the
// same values (bitwise, as DequantizeQ6_K widens them) and reports true;
// for other types it writes nothing and reports false. Both types have a
// super-block scale d and a signed 6-bit-range scale per 16 elements, and
// Q3_K's quants (-4..3) are Q6_K's (q-32, -32..31): a Q3_K_M file's
// Q3_K tensors become Q6_K (6.6 bits a weight, multiplied natively on the
// CPU) instead of Q8_0 (8.5 bits). len(dst) must hold the blocks of src.
func ExactQ6_K(dt backend.DType, dst, src []byte) bool {
	if dt != backend.Q3_K {
		return false
	}
	for b := 0; b < len(src)/blockQ3_K; b++ {
		blk, out := src[b*blockQ3_K:(b+1)*blockQ3_K], dst[b*blockQ6_K:(b+1)*blockQ6_K]
		hmask, qs, scales := blk[:32], blk[32:96], blk[96:108]
		clear(out[:192])
		for e := 0; e < QK_K; e++ {
			q := int(qs[32*(e/128)+e%32] >> (2 * (e % 128 / 32)) & 3)
			if hmask[e%32]>>(e/32)&1 == 0 {
				q -= 4
			}
			q6 := byte(q + 32)
			h, l, quarter := e/128, e%32, e%128/32
			lo := &out[64*h+l+32*(quarter%2)]
			if quarter < 2 {
				*lo |= q6 & 15
			} else {
				*lo |= (q6 & 15) << 4
			}
			out[128+32*h+l] |= (q6 >> 4) << (2 * quarter)
		}
		for i := 0; i < 16; i++ {
			out[192+i] = byte(int8(q3kScale(scales, i)))
		}
		out[208], out[209] = blk[108], blk[109]
	}
	return true
}
