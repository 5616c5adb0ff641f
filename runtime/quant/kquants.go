package quant

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/loomllm/loom/runtime/backend"
)

// QK_K is the number of elements in one Q4_K or Q6_K super-block.
const QK_K = 256

// Block sizes in bytes.
const (
	blockQ4_K = 144 // d, dmin (F16), 12 bytes of 6-bit scales and mins, 128 bytes of 4-bit quants
	blockQ6_K = 210 // 128 bytes of low 4 bits, 64 of high 2 bits, 16 int8 scales, d (F16)
)

// q4kScaleMin unpacks the 6-bit scale and min of sub-block j (0..7) from
// a Q4_K block's 12 scale bytes: sub-blocks 0-3 use the low 6 bits of
// bytes j and j+4; sub-blocks 4-7 combine a nibble of byte j+4 with the
// top 2 bits of bytes j-4 and j.
func q4kScaleMin(j int, s []byte) (sc, m uint8) {
	if j < 4 {
		return s[j] & 63, s[j+4] & 63
	}
	return s[j+4]&0xF | (s[j-4]>>6)<<4, s[j+4]>>4 | (s[j]>>6)<<4
}

// DequantizeQ4_K expands Q4_K blocks into dst (256 values per 144-byte
// block). Each block holds 8 sub-blocks of 32 elements; element i of
// sub-block j is d*sc[j]*q[i] - dmin*m[j] with q in 0..15. The quants of
// sub-blocks 2c and 2c+1 share bytes 32c..32c+31 of qs, low nibble first.
// Each product is rounded to float32 as ggml's reference code does.
func DequantizeQ4_K(dst []float32, src []byte) {
	for b := 0; b < len(dst)/QK_K; b++ {
		blk := src[b*blockQ4_K : (b+1)*blockQ4_K]
		d := F16ToF32(binary.LittleEndian.Uint16(blk))
		dmin := F16ToF32(binary.LittleEndian.Uint16(blk[2:]))
		scales, qs := blk[4:16], blk[16:]
		y := dst[b*QK_K : (b+1)*QK_K]
		for c := 0; c < 4; c++ {
			sc1, m1 := q4kScaleMin(2*c, scales)
			sc2, m2 := q4kScaleMin(2*c+1, scales)
			d1, min1 := d*float32(sc1), dmin*float32(m1)
			d2, min2 := d*float32(sc2), dmin*float32(m2)
			q := qs[32*c : 32*c+32]
			for l := 0; l < 32; l++ {
				y[64*c+l] = float32(d1*float32(q[l]&0xF)) - min1
				y[64*c+32+l] = float32(d2*float32(q[l]>>4)) - min2
			}
		}
	}
}

// DequantizeQ6_K expands Q6_K blocks into dst (256 values per 210-byte
// block). Element i is d*sc[i/16]*(q[i]-32) with q a 6-bit value whose low
// 4 bits are in ql and high 2 bits in qh, laid out in two halves of 128
// elements as ggml's block_q6_K.
func DequantizeQ6_K(dst []float32, src []byte) {
	for b := 0; b < len(dst)/QK_K; b++ {
		blk := src[b*blockQ6_K : (b+1)*blockQ6_K]
		ql, qh, sc := blk[:128], blk[128:192], blk[192:208]
		d := F16ToF32(binary.LittleEndian.Uint16(blk[208:]))
		y := dst[b*QK_K : (b+1)*QK_K]
		for h := 0; h < 2; h++ {
			l4, h2, s := ql[64*h:], qh[32*h:], sc[8*h:]
			for l := 0; l < 32; l++ {
				is := l / 16
				q1 := int8(l4[l]&0xF|(h2[l]>>0&3)<<4) - 32
				q2 := int8(l4[l+32]&0xF|(h2[l]>>2&3)<<4) - 32
				q3 := int8(l4[l]>>4|(h2[l]>>4&3)<<4) - 32
				q4 := int8(l4[l+32]>>4|(h2[l]>>6&3)<<4) - 32
				y[128*h+l] = float32(d*float32(int8(s[is]))) * float32(q1)
				y[128*h+l+32] = float32(d*float32(int8(s[is+2]))) * float32(q2)
				y[128*h+l+64] = float32(d*float32(int8(s[is+4]))) * float32(q3)
				y[128*h+l+96] = float32(d*float32(int8(s[is+6]))) * float32(q4)
			}
		}
	}
}

// QuantizeQ4_K quantizes src (a multiple of 256 values) into Q4_K blocks
// in dst. It is a simple min/max quantizer (each sub-block's range mapped
// onto 0..15), not llama.cpp's iterative search: its output is valid Q4_K
// for tests and synthetic models, slightly less accurate than llama.cpp's.
func QuantizeQ4_K(dst []byte, src []float32) {
	for b := 0; b < len(src)/QK_K; b++ {
		x := src[b*QK_K : (b+1)*QK_K]
		out := dst[b*blockQ4_K : (b+1)*blockQ4_K]
		var scale, mins [8]float32
		var maxScale, maxMin float32
		for j := 0; j < 8; j++ {
			lo, hi := float32(0), float32(0)
			for _, v := range x[32*j : 32*j+32] {
				lo, hi = min(lo, v), max(hi, v)
			}
			scale[j], mins[j] = (hi-lo)/15, -lo
			maxScale, maxMin = max(maxScale, scale[j]), max(maxMin, mins[j])
		}
		dh, mh := F32ToF16(maxScale/63), F32ToF16(maxMin/63)
		d, dmin := F16ToF32(dh), F16ToF32(mh)
		binary.LittleEndian.PutUint16(out, dh)
		binary.LittleEndian.PutUint16(out[2:], mh)
		var sc, mq [8]uint8
		for j := 0; j < 8; j++ {
			if d > 0 {
				sc[j] = uint8(min(63, math.Round(float64(scale[j]/d))))
			}
			if dmin > 0 {
				mq[j] = uint8(min(63, math.Round(float64(mins[j]/dmin))))
			}
		}
		s := out[4:16]
		for j := 0; j < 4; j++ {
			s[j] = sc[j] | (sc[j+4]>>4)<<6
			s[j+4] = mq[j] | (mq[j+4]>>4)<<6
			s[j+8] = sc[j+4]&0xF | (mq[j+4]&0xF)<<4
		}
		qs := out[16:]
		for c := 0; c < 4; c++ {
			for half := 0; half < 2; half++ {
				j := 2*c + half
				step, off := d*float32(sc[j]), dmin*float32(mq[j])
				for l := 0; l < 32; l++ {
					q := uint8(0)
					if step > 0 {
						q = uint8(min(15, max(0, math.Round(float64((x[32*j+l]+off)/step)))))
					}
					if half == 0 {
						qs[32*c+l] = q
					} else {
						qs[32*c+l] |= q << 4
					}
				}
			}
		}
	}
}

// QuantizeQ6_K quantizes src (a multiple of 256 values) into Q6_K blocks
// in dst with a simple absolute-maximum quantizer per 16-element
// sub-block (see QuantizeQ4_K).
func QuantizeQ6_K(dst []byte, src []float32) {
	for b := 0; b < len(src)/QK_K; b++ {
		x := src[b*QK_K : (b+1)*QK_K]
		out := dst[b*blockQ6_K : (b+1)*blockQ6_K]
		var scale [16]float32
		var maxScale float32
		for j := 0; j < 16; j++ {
			for _, v := range x[16*j : 16*j+16] {
				scale[j] = max(scale[j], float32(math.Abs(float64(v))))
			}
			scale[j] /= 31
			maxScale = max(maxScale, scale[j])
		}
		dh := F32ToF16(maxScale / 127)
		d := F16ToF32(dh)
		binary.LittleEndian.PutUint16(out[208:], dh)
		var L [QK_K]uint8
		for j := 0; j < 16; j++ {
			sc := int8(0)
			if d > 0 {
				sc = int8(min(127, math.Round(float64(scale[j]/d))))
			}
			out[192+j] = uint8(sc)
			step := d * float32(sc)
			for i := 16 * j; i < 16*j+16; i++ {
				q := 0.0
				if step > 0 {
					q = min(31, max(-32, math.Round(float64(x[i]/step))))
				}
				L[i] = uint8(int(q) + 32)
			}
		}
		ql, qh := out[:128], out[128:192]
		for h := 0; h < 2; h++ {
			l := L[128*h:]
			for i := 0; i < 32; i++ {
				ql[64*h+i] = l[i]&0xF | (l[i+64]&0xF)<<4
				ql[64*h+i+32] = l[i+32]&0xF | (l[i+96]&0xF)<<4
				qh[32*h+i] = l[i]>>4 | (l[i+32]>>4)<<2 | (l[i+64]>>4)<<4 | (l[i+96]>>4)<<6
			}
		}
	}
}

// RequantizeQ8_0 converts rows × cols elements of type dt in src to Q8_0,
// row by row (dequantize to F32, then QuantizeQ8_0), for backends that
// lack dt. cols must be a multiple of 32 and of dt's block size.
func RequantizeQ8_0(dt backend.DType, rows, cols int, src []byte) ([]byte, error) {
	srb, err := dt.RowBytes(cols)
	if err != nil {
		return nil, err
	}
	drb, err := backend.Q8_0.RowBytes(cols)
	if err != nil {
		return nil, err
	}
	if rows < 0 || len(src) < rows*srb {
		return nil, fmt.Errorf("quant: %d rows of %d %v need %d bytes, have %d", rows, cols, dt, rows*srb, len(src))
	}
	dst := make([]byte, rows*drb)
	row := make([]float32, cols)
	for r := 0; r < rows; r++ {
		if err := Dequantize(dt, row, src[r*srb:(r+1)*srb]); err != nil {
			return nil, err
		}
		QuantizeQ8_0(dst[r*drb:(r+1)*drb], row)
	}
	return dst, nil
}
