package vec

import "math"

// The integer path for quantized weights.
//
// DotQ8_0 and DotQ4_0 widen every weight to float32 and multiply it with
// the float32 activation: exact dequantization, but the widening costs more
// vector instructions than the multiply-add itself. The integer path does
// what llama.cpp does: the activation vector is quantized once (QuantizeQ8,
// cheap next to a matrix-vector product, which reads every weight row against
// the same x) and each block is then an int8×int8 dot product with one
// float multiply-add per 32 elements.
//
// Accuracy: QuantizeQ8 stores each block of 32 activations as a float32
// scale d = max|x|/127 and integers q = round(x/d), so every activation is
// off by at most d/2 = max|x|/254 of its block, and by d/(2√3) RMS. For a
// matrix-vector product with Gaussian activations the output's relative
// error (norm of the difference over norm of the exact product) is then
// about E[max|x| over 32]/σ / (254·√3) ≈ 5e-3, measured 4.8e-3 at
// 4096 columns (TestDotsQ8Accuracy): inside loom's 2e-2 tolerance for
// quantized weights, but about 1000 times the error of the float path.
// Activations with outliers (one large value per block) raise it. The
// integer sums themselves are exact.

// QuantizeQ8Generic is the plain-Go twin of QuantizeQ8 and its definition:
// for each block b of 32 values, d[b] = max|x|/127 and q[32b+j] =
// x[32b+j]*(127/max|x|) rounded to nearest even, in [-127, 127]. A block
// whose max|x| is below 2^-120 gets d[b] = 0 and q = 0; one that holds a
// NaN or an infinity gets d[b] = NaN and q = 0, so any dot product with it
// is NaN. len(x) should be a multiple of 32 (a partial trailing block is
// ignored); it panics if len(q) < len(x)/32*32 or len(d) < len(x)/32.
func QuantizeQ8Generic(q []int8, d []float32, x []float32) {
	nb := len(x) / QK
	q, d = q[:nb*QK], d[:nb]
	for b := range nb {
		xb, qb := x[b*QK:(b+1)*QK], q[b*QK:(b+1)*QK]
		amax := float32(0)
		for _, v := range xb {
			amax = max(amax, abs32(v))
		}
		if amax != amax || amax > math.MaxFloat32 {
			d[b] = float32(math.NaN())
			clear(qb)
			continue
		}
		if amax < 0x1p-120 { // zero, or so small that 127/amax overflows
			d[b] = 0
			clear(qb)
			continue
		}
		d[b] = amax / 127
		id := 127 / amax
		for j, v := range xb {
			qb[j] = int8(math.RoundToEven(float64(v * id)))
		}
	}
}

func abs32(v float32) float32 { return math.Float32frombits(math.Float32bits(v) &^ (1 << 31)) }

// DotQ8_0Q8Generic returns the dot product of the GGUF Q8_0 row w with the
// activation vector QuantizeQ8 made of q and d: over the len(d) blocks,
// the sum of f16(w scale) * d[b] * (exact integer sum of the 32 products
// int8(w)*q). It panics if w is shorter than len(d)*34 bytes or q shorter
// than len(d)*32.
func DotQ8_0Q8Generic(w []byte, q []int8, d []float32) float32 {
	nb := len(d)
	w, q = w[:nb*Q8_0BlockBytes], q[:nb*QK]
	var s float32
	for b := range nb {
		blk := w[b*Q8_0BlockBytes : (b+1)*Q8_0BlockBytes]
		qb := q[b*QK : (b+1)*QK]
		var t int32
		for j, v := range blk[2:] {
			t += int32(int8(v)) * int32(qb[j])
		}
		s += f16ToF32(uint16(blk[0])|uint16(blk[1])<<8) * d[b] * float32(t)
	}
	return s
}

// DotQ4_0Q8Generic returns the dot product of the GGUF Q4_0 row w with the
// activation vector QuantizeQ8 made of q and d: over the len(d) blocks, the
// sum of f16(w scale) * d[b] * (exact integer sum of the 32 products of
// the 4-bit weights minus 8 with q). It panics if w is shorter than
// len(d)*18 bytes or q shorter than len(d)*32.
func DotQ4_0Q8Generic(w []byte, q []int8, d []float32) float32 {
	nb := len(d)
	w, q = w[:nb*Q4_0BlockBytes], q[:nb*QK]
	var s float32
	for b := range nb {
		blk := w[b*Q4_0BlockBytes : (b+1)*Q4_0BlockBytes]
		qb := q[b*QK : (b+1)*QK]
		var t int32
		for j, v := range blk[2:] {
			t += (int32(v&15)-8)*int32(qb[j]) + (int32(v>>4)-8)*int32(qb[j+16])
		}
		s += f16ToF32(uint16(blk[0])|uint16(blk[1])<<8) * d[b] * float32(t)
	}
	return s
}

// DotTileQ8_0Q8 sets dst[r*ldd+c] to DotQ8_0Q8 of Q8_0 weight row c (ldw
// bytes apart) with quantized activation row r (ldq int8s apart in q, a
// multiple of 32, with its ldq/32 scales in d), for r < rows and c < cols:
// bitwise what DotQ8_0Q8 gives for each pair, so a matrix product's rows do
// not depend on the batch. With AVX512-VNNI it multiplies blocks of four
// activation rows by three weight rows in registers (VPDPBUSD on the
// activations offset to uint8, less 128 times the weights' sums: the same
// exact integers), each weight block loaded once per four rows. It panics
// if a slice is too short.
func DotTileQ8_0Q8(dst []float32, ldd int, w []byte, ldw, cols int, q []int8, d []float32, ldq, rows int) {
	dotTileQ8_0Q8(dst, ldd, w, ldw, cols, q, d, ldq, rows)
}

// DotTileQ8_0Q8Generic is DotTileQ8_0Q8's plain-Go twin: DotQ8_0Q8Generic
// for every pair.
func DotTileQ8_0Q8Generic(dst []float32, ldd int, w []byte, ldw, cols int, q []int8, d []float32, ldq, rows int) {
	tilePairs(dst, ldd, w, ldw, cols, q, d, ldq, rows, Q8_0BlockBytes, DotQ8_0Q8Generic)
}

// DotTileQ4_0Q8 is DotTileQ8_0Q8 for Q4_0 weight rows: each element
// bitwise what DotQ4_0Q8 gives for the pair, the same 4×3 AVX512-VNNI
// blocks with the nibbles unpacked as the one-row kernel unpacks them.
func DotTileQ4_0Q8(dst []float32, ldd int, w []byte, ldw, cols int, q []int8, d []float32, ldq, rows int) {
	dotTileQ4_0Q8(dst, ldd, w, ldw, cols, q, d, ldq, rows)
}

// DotTileQ4_0Q8Generic is DotTileQ4_0Q8's plain-Go twin: DotQ4_0Q8Generic
// for every pair.
func DotTileQ4_0Q8Generic(dst []float32, ldd int, w []byte, ldw, cols int, q []int8, d []float32, ldq, rows int) {
	tilePairs(dst, ldd, w, ldw, cols, q, d, ldq, rows, Q4_0BlockBytes, DotQ4_0Q8Generic)
}

// tilePairs is a quantized tile pair by pair with dot.
func tilePairs(dst []float32, ldd int, w []byte, ldw, cols int, q []int8, d []float32, ldq, rows, blockBytes int,
	dot func([]byte, []int8, []float32) float32) {
	checkTileQ(dst, ldd, w, ldw, cols, q, d, ldq, rows, blockBytes)
	nb := ldq / QK
	for r := range rows {
		for c := range cols {
			dst[r*ldd+c] = dot(w[c*ldw:c*ldw+nb*blockBytes], q[r*ldq:(r+1)*ldq], d[r*nb:(r+1)*nb])
		}
	}
}

// checkTileQ panics unless a quantized tile's slices hold what it reads and
// writes (blockBytes per 32 weights).
func checkTileQ(dst []float32, ldd int, w []byte, ldw, cols int, q []int8, d []float32, ldq, rows, blockBytes int) {
	if rows <= 0 || cols <= 0 {
		return
	}
	nb := ldq / QK
	_ = dst[(rows-1)*ldd+cols-1]
	_ = w[:(cols-1)*ldw+nb*blockBytes]
	_ = q[:rows*ldq]
	_ = d[:rows*nb]
}
