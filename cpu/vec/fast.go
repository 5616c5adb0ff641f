package vec

// Dot returns the sum of a[i]*b[i], that is
//
//	var s float32
//	for i := range a {
//		s += a[i] * b[i]
//	}
//	return s
//
// but with the terms added in an unspecified order. It panics if
// len(b) < len(a).
func Dot(a, b []float32) float32 { return dot(a, b) }

// DotRows computes the dot products of x with len(dst) rows of the
// row-major matrix w, stride elements apart, that is
//
//	for r := range dst {
//		dst[r] = Dot(w[r*stride:r*stride+len(x)], x)
//	}
//
// with the terms of each sum added in an unspecified order. It is the
// inner loop of a matrix-vector product: the fast path multiplies four rows
// at a time, loading each element of x once for all four, which matters
// when w is in cache (for example a tile of widened weights multiplied with
// several activation rows); for rows streamed from memory it is about as
// fast as Dot per row. w and x may be the two operands either way round,
// so it also computes one weight row against activation rows that are
// stride apart. It panics if w is too short.
func DotRows(dst, w []float32, stride int, x []float32) { dotRows(dst, w, stride, x) }

// DotF16 returns the dot product of x with len(x) little-endian IEEE 754
// binary16 values in w, that is
//
//	var s float32
//	for i := range x {
//		s += quant.F16ToF32(binary.LittleEndian.Uint16(w[2*i:])) * x[i]
//	}
//	return s
//
// but with the terms added in an unspecified order. It panics if
// len(w) < 2*len(x).
func DotF16(w []byte, x []float32) float32 { return dotF16(w, x) }

// DotBF16 returns the dot product of x with len(x) little-endian bfloat16
// values in w, that is
//
//	var s float32
//	for i := range x {
//		s += quant.BF16ToF32(binary.LittleEndian.Uint16(w[2*i:])) * x[i]
//	}
//	return s
//
// but with the terms added in an unspecified order. It panics if
// len(w) < 2*len(x).
func DotBF16(w []byte, x []float32) float32 { return dotBF16(w, x) }

// DotQ8_0 returns the dot product of x with the GGUF Q8_0 row in w (len(x)/32
// blocks of 34 bytes: a little-endian F16 scale d, then 32 int8 q), that is
//
//	var s float32
//	for b := 0; b < len(x)/32; b++ {
//		blk := w[34*b:]
//		d := quant.F16ToF32(binary.LittleEndian.Uint16(blk))
//		var t float32
//		for j := 0; j < 32; j++ {
//			t += float32(int8(blk[2+j])) * x[32*b+j]
//		}
//		s += d * t
//	}
//	return s
//
// but with the terms added in an unspecified order. For finite scales this
// is the dot product of x with the dequantized row; a block whose scale is
// infinite or NaN (a corrupt file) makes the result NaN or ±Inf, which of
// them depending on the order. len(x) must be a multiple of 32 (a partial
// trailing block is ignored). It panics if w is shorter than len(x)/32*34
// bytes.
func DotQ8_0(w []byte, x []float32) float32 { return dotQ8_0(w, x) }

// DotQ4_0 returns the dot product of x with the GGUF Q4_0 row in w (len(x)/32
// blocks of 18 bytes: a little-endian F16 scale d, then 16 bytes p), that is
//
//	var s float32
//	for b := 0; b < len(x)/32; b++ {
//		blk := w[18*b:]
//		d := quant.F16ToF32(binary.LittleEndian.Uint16(blk))
//		var t float32
//		for j := 0; j < 16; j++ {
//			p := blk[2+j]
//			t += float32(int(p&15)-8) * x[32*b+j]
//			t += float32(int(p>>4)-8) * x[32*b+j+16]
//		}
//		s += d * t
//	}
//	return s
//
// but with the terms added in an unspecified order. For finite scales this
// is the dot product of x with the dequantized row; a block whose scale is
// infinite or NaN (a corrupt file) makes the result NaN or ±Inf, which of
// them depending on the order. len(x) must be a multiple of 32 (a partial
// trailing block is ignored). It panics if w is shorter than len(x)/32*18
// bytes.
func DotQ4_0(w []byte, x []float32) float32 { return dotQ4_0(w, x) }

// QuantizeQ8 quantizes x (len(x) a multiple of 32; a partial trailing block
// is ignored) for DotQ8_0Q8 and DotQ4_0Q8, that is, for each block b
//
//	amax := max over j of |x[32*b+j]|
//	d[b] = amax / 127
//	q[32*b+j] = int8(math.RoundToEven(float64(x[32*b+j] * (127 / amax))))
//
// except that a block with amax < 2^-120 (about 7.5e-37, where 127/amax
// would overflow) gets d[b] = 0 and q = 0, and a block holding a NaN or an
// infinity gets d[b] = NaN and q = 0 (so any dot product with it is NaN). The result is
// bit-identical to QuantizeQ8Generic. It panics if len(q) < len(x)/32*32 or
// len(d) < len(x)/32.
func QuantizeQ8(q []int8, d []float32, x []float32) { quantizeQ8(q, d, x) }

// DotQ8_0Q8 returns the dot product of the GGUF Q8_0 row w with the
// activation vector that QuantizeQ8 made of q and d (len(d) blocks of 32),
// that is
//
//	var s float32
//	for b := range d {
//		blk := w[34*b:]
//		var t int32
//		for j := 0; j < 32; j++ {
//			t += int32(int8(blk[2+j])) * int32(q[32*b+j])
//		}
//		s += quant.F16ToF32(binary.LittleEndian.Uint16(blk)) * d[b] * float32(t)
//	}
//	return s
//
// with the integer sums exact and the float terms added in an unspecified
// order (so an infinite or NaN weight scale makes it NaN or ±Inf). It is
// the faster alternative to DotQ8_0 for a matrix-vector product, at the
// accuracy described for QuantizeQ8. It panics if w is
// shorter than len(d)*34 bytes or q shorter than len(d)*32.
func DotQ8_0Q8(w []byte, q []int8, d []float32) float32 { return dotQ8_0Q8(w, q, d) }

// DotQ4_0Q8 returns the dot product of the GGUF Q4_0 row w with the
// activation vector that QuantizeQ8 made of q and d (len(d) blocks of 32),
// that is
//
//	var s float32
//	for b := range d {
//		blk := w[18*b:]
//		var t int32
//		for j := 0; j < 16; j++ {
//			p := blk[2+j]
//			t += (int32(p&15) - 8) * int32(q[32*b+j])
//			t += (int32(p>>4) - 8) * int32(q[32*b+j+16])
//		}
//		s += quant.F16ToF32(binary.LittleEndian.Uint16(blk)) * d[b] * float32(t)
//	}
//	return s
//
// with the integer sums exact and the float terms added in an unspecified
// order (so an infinite or NaN weight scale makes it NaN or ±Inf). It is
// the faster alternative to DotQ4_0 for a matrix-vector product, at the
// accuracy described for QuantizeQ8. It panics if w is
// shorter than len(d)*18 bytes or q shorter than len(d)*32.
func DotQ4_0Q8(w []byte, q []int8, d []float32) float32 { return dotQ4_0Q8(w, q, d) }

// Axpy adds a*x[i] to y[i], that is
//
//	for i := range x {
//		y[i] += a * x[i]
//	}
//
// The fast path may fuse the multiply and add (one rounding instead of
// two). x and y must not overlap unless they are the same slice. It panics
// if len(y) < len(x).
func Axpy(a float32, x, y []float32) { axpy(a, x, y) }

// Features reports the instruction-set extensions the fast routines use on
// this machine, comma separated (for example "avx2,fma,f16c"), or "generic"
// when they run the plain Go twins.
func Features() string { return features }

// WidenF16 converts len(dst) little-endian IEEE 754 binary16 values from
// src to float32, that is
//
//	for i := range dst {
//		dst[i] = quant.F16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
//	}
//
// exactly, except that the assembly sets the quiet bit of a signaling NaN
// (it stays NaN). It panics if len(src) < 2*len(dst).
func WidenF16(dst []float32, src []byte) { widenF16(dst, src) }

// WidenBF16 converts len(dst) little-endian bfloat16 values from src to
// float32, that is
//
//	for i := range dst {
//		dst[i] = quant.BF16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
//	}
//
// exactly. It panics if len(src) < 2*len(dst).
func WidenBF16(dst []float32, src []byte) { widenBF16(dst, src) }

// WidenQ8_0 expands the len(dst)/32 GGUF Q8_0 blocks in src into dst, that
// is
//
//	for b := 0; b < len(dst)/32; b++ {
//		blk := src[34*b:]
//		d := quant.F16ToF32(binary.LittleEndian.Uint16(blk))
//		for j := 0; j < 32; j++ {
//			dst[32*b+j] = d * float32(int8(blk[2+j]))
//		}
//	}
//
// exactly (bit for bit the values of runtime/quant.DequantizeQ8_0). A
// partial trailing block of dst is left alone. It panics if src is shorter
// than len(dst)/32*34 bytes.
func WidenQ8_0(dst []float32, src []byte) { widenQ8_0(dst, src) }

// WidenQ4_0 expands the len(dst)/32 GGUF Q4_0 blocks in src into dst, that
// is
//
//	for b := 0; b < len(dst)/32; b++ {
//		blk := src[18*b:]
//		d := quant.F16ToF32(binary.LittleEndian.Uint16(blk))
//		for j := 0; j < 16; j++ {
//			dst[32*b+j] = d * float32(int(blk[2+j]&15)-8)
//			dst[32*b+j+16] = d * float32(int(blk[2+j]>>4)-8)
//		}
//	}
//
// exactly (bit for bit the values of runtime/quant.DequantizeQ4_0). A
// partial trailing block of dst is left alone. It panics if src is shorter
// than len(dst)/32*18 bytes.
func WidenQ4_0(dst []float32, src []byte) { widenQ4_0(dst, src) }
