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
//		for j := 0; j < 32; j++ {
//			s += d * float32(int8(blk[2+j])) * x[32*b+j]
//		}
//	}
//	return s
//
// but with the terms added in an unspecified order. len(x) must be a
// multiple of 32 (a partial trailing block is ignored). It panics if w is
// shorter than len(x)/32*34 bytes.
func DotQ8_0(w []byte, x []float32) float32 { return dotQ8_0(w, x) }

// DotQ4_0 returns the dot product of x with the GGUF Q4_0 row in w (len(x)/32
// blocks of 18 bytes: a little-endian F16 scale d, then 16 bytes p), that is
//
//	var s float32
//	for b := 0; b < len(x)/32; b++ {
//		blk := w[18*b:]
//		d := quant.F16ToF32(binary.LittleEndian.Uint16(blk))
//		for j := 0; j < 16; j++ {
//			p := blk[2+j]
//			s += d * float32(int(p&15)-8) * x[32*b+j]
//			s += d * float32(int(p>>4)-8) * x[32*b+j+16]
//		}
//	}
//	return s
//
// but with the terms added in an unspecified order. len(x) must be a
// multiple of 32 (a partial trailing block is ignored). It panics if w is
// shorter than len(x)/32*18 bytes.
func DotQ4_0(w []byte, x []float32) float32 { return dotQ4_0(w, x) }

// Axpy adds a*x[i] to y[i], that is
//
//	for i := range x {
//		y[i] += a * x[i]
//	}
//
// The fast path may fuse the multiply and add (one rounding instead of
// two). It panics if len(y) < len(x).
func Axpy(a float32, x, y []float32) { axpy(a, x, y) }

// Features reports the instruction-set extensions the fast routines use on
// this machine, comma separated (for example "avx2,fma,f16c"), or "generic"
// when they run the plain Go twins.
func Features() string { return features }
