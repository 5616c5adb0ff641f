package vec

import (
	"encoding/binary"
	"math"
)

// Block sizes of the GGUF block-quantized types.
const (
	// QK is the number of elements in one Q8_0 or Q4_0 block.
	QK = 32
	// Q8_0BlockBytes is the size of one Q8_0 block: an F16 scale and 32 int8.
	Q8_0BlockBytes = 34
	// Q4_0BlockBytes is the size of one Q4_0 block: an F16 scale and 16
	// bytes of packed 4-bit values.
	Q4_0BlockBytes = 18
)

// DotGeneric returns the sum of a[i]*b[i] over i < len(a). It keeps four
// partial sums (of the elements with i%4 = 0, 1, 2, 3), which lets the
// processor overlap the additions, and adds them at the end. It panics if
// len(b) < len(a).
func DotGeneric(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// DotRowsGeneric sets dst[r] = DotGeneric(w[r*stride:r*stride+len(x)], x)
// for every r < len(dst). It panics if w is too short for that.
func DotRowsGeneric(dst, w []float32, stride int, x []float32) {
	for r := range dst {
		dst[r] = DotGeneric(w[r*stride:r*stride+len(x)], x)
	}
}

// DotF16Generic returns the sum of F16ToF32(w[2i:2i+2]) * x[i] over i, where
// w holds len(x) little-endian IEEE 754 binary16 values. It panics if
// len(w) < 2*len(x).
func DotF16Generic(w []byte, x []float32) float32 {
	w = w[:2*len(x)]
	var s float32
	for i, v := range x {
		s += f16ToF32(binary.LittleEndian.Uint16(w[2*i:])) * v
	}
	return s
}

// DotBF16Generic returns the sum of BF16ToF32(w[2i:2i+2]) * x[i] over i,
// where w holds len(x) little-endian bfloat16 values. It panics if
// len(w) < 2*len(x).
func DotBF16Generic(w []byte, x []float32) float32 {
	w = w[:2*len(x)]
	var s float32
	for i, v := range x {
		s += math.Float32frombits(uint32(binary.LittleEndian.Uint16(w[2*i:]))<<16) * v
	}
	return s
}

// DotQ8_0Generic returns the dot product of x with the GGUF Q8_0 row in w:
// len(x)/32 blocks of 34 bytes, each a little-endian F16 scale d followed by
// 32 int8 values q, block element j being d*q[j]. Within a block it sums
// q[j]*x[j] and then multiplies by d. len(x) must be a multiple of 32 (a
// partial trailing block is ignored); it panics if w is too short.
func DotQ8_0Generic(w []byte, x []float32) float32 {
	nb := len(x) / QK
	w = w[:nb*Q8_0BlockBytes]
	var s float32
	for b := 0; b < nb; b++ {
		blk := w[b*Q8_0BlockBytes : (b+1)*Q8_0BlockBytes]
		d := f16ToF32(binary.LittleEndian.Uint16(blk))
		xb := x[b*QK : (b+1)*QK]
		q := blk[2:]
		var t float32
		for j := range xb {
			t += float32(int8(q[j])) * xb[j]
		}
		s += d * t
	}
	return s
}

// DotQ4_0Generic returns the dot product of x with the GGUF Q4_0 row in w:
// len(x)/32 blocks of 18 bytes, each a little-endian F16 scale d followed by
// 16 bytes p; block element j < 16 is d*(int(p[j]&15)-8) and element j+16 is
// d*(int(p[j]>>4)-8). Within a block it sums the 32 products of the
// integers (minus 8) with x and then multiplies by d. len(x) must be a
// multiple of 32 (a partial trailing block is ignored); it panics if w is
// too short.
func DotQ4_0Generic(w []byte, x []float32) float32 {
	nb := len(x) / QK
	w = w[:nb*Q4_0BlockBytes]
	var s float32
	for b := 0; b < nb; b++ {
		blk := w[b*Q4_0BlockBytes : (b+1)*Q4_0BlockBytes]
		d := f16ToF32(binary.LittleEndian.Uint16(blk))
		xb := x[b*QK : (b+1)*QK]
		p := blk[2:]
		var t float32
		for j := 0; j < 16; j++ {
			t += float32(int(p[j]&15)-8)*xb[j] + float32(int(p[j]>>4)-8)*xb[j+16]
		}
		s += d * t
	}
	return s
}

// AxpyGeneric adds a*x[i] to y[i] for every i < len(x). It panics if
// len(y) < len(x).
func AxpyGeneric(a float32, x, y []float32) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] += a * v
	}
}

// f16ToF32 widens an IEEE 754 binary16 value to float32 exactly. It is the
// same conversion as runtime/quant.F16ToF32, kept here so this leaf package
// has no dependencies.
func f16ToF32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	man := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | man<<13)
	case exp != 0:
		return math.Float32frombits(sign | (exp+112)<<23 | man<<13)
	case man == 0:
		return math.Float32frombits(sign)
	}
	// Subnormal: man * 2^-24, exact in float32.
	v := float32(man) * (1.0 / (1 << 24))
	if sign != 0 {
		v = -v
	}
	return v
}
