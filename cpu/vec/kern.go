package vec

import (
	"encoding/binary"
	"math"
)

// Kernels for batched decode and prefill: a register-blocked multi-row
// product (DotTile) whose every sum is bitwise the one DotRows computes
// for that pair of rows, the value sum of attention (AxpyRows), and a
// vectorised exponential behind the softmax (ExpSum) and the gated
// activations (SwiGLU, GELU).
//
// # Canonical order
//
// On the fast path DotRows and DotTile add each product's terms in one
// order, whatever the number of rows in the call and wherever the pair
// falls in it: one 8-lane accumulator over the 8-element chunks in order
// (the last chunk masked), lanes then added as ((l0+l1)+(l2+l3)) +
// ((l4+l5)+(l6+l7)). So a matrix product gives each output row the same
// bits whether it is computed alone (DotRows) or with other rows
// (DotTile): the CPU backend's batch invariance rests on this. The generic
// twins both use DotGeneric.

// DotTile sets
//
//	for r := 0; r < rows; r++ {
//		for c := 0; c < cols; c++ {
//			dst[r*ldd+c] = Dot(x[r*ldx:r*ldx+k], w[c*ldw:c*ldw+k])
//		}
//	}
//
// with each sum in the canonical order (see above): bitwise what DotRows
// gives for the same two rows. The fast path multiplies blocks of three x
// rows by four w rows in registers, so each loaded element feeds three or
// four multiply-adds. It panics if a slice is too short.
func DotTile(dst []float32, ldd int, x []float32, ldx, rows int, w []float32, ldw, cols, k int) {
	dotTile(dst, ldd, x, ldx, rows, w, ldw, cols, k)
}

// DotTileGeneric is DotTile's plain-Go twin: DotGeneric for every pair.
func DotTileGeneric(dst []float32, ldd int, x []float32, ldx, rows int, w []float32, ldw, cols, k int) {
	checkTile(dst, ldd, x, ldx, rows, w, ldw, cols, k)
	for r := range rows {
		xr := x[r*ldx : r*ldx+k]
		for c := range cols {
			dst[r*ldd+c] = DotGeneric(xr, w[c*ldw:c*ldw+k])
		}
	}
}

// checkTile panics unless DotTile's slices hold what it reads and writes.
func checkTile(dst []float32, ldd int, x []float32, ldx, rows int, w []float32, ldw, cols, k int) {
	if rows <= 0 || cols <= 0 {
		return
	}
	_ = dst[(rows-1)*ldd+cols-1]
	_ = x[:(rows-1)*ldx+k]
	_ = w[:(cols-1)*ldw+k]
}

// AxpyRows adds a weighted sum of rows of v to acc, that is
//
//	for t := range p {
//		for i := range acc {
//			acc[i] += p[t] * v[t*stride+i]
//		}
//	}
//
// but with the terms added in an unspecified (fixed) order. It is
// attention's value sum: p are the softmax weights of one query head, v
// the cached values of a run of positions. It panics if v is too short.
func AxpyRows(acc, v []float32, stride int, p []float32) { axpyRows(acc, v, stride, p) }

// AxpyRowsGeneric is AxpyRows's plain-Go twin: AxpyGeneric for each row.
func AxpyRowsGeneric(acc, v []float32, stride int, p []float32) {
	for t, a := range p {
		AxpyGeneric(a, v[t*stride:t*stride+len(acc)], acc)
	}
}

// ExpSum turns scores into softmax numerators:
//
//	m = max over i of scale*x[i]
//	for i := range x {
//		x[i] = Exp(scale*x[i] - m)
//		sum += x[i]
//	}
//
// and returns m and sum (-Inf and 0 for an empty x), the sum in an
// unspecified (fixed) order. The fast path's exponential follows Exp's
// algorithm with fused multiply-adds: within 2 ulp of it. A NaN in x makes
// sum NaN.
func ExpSum(x []float32, scale float32) (m, sum float32) { return expSum(x, scale) }

// ExpSumGeneric is ExpSum's plain-Go twin.
func ExpSumGeneric(x []float32, scale float32) (m, sum float32) {
	m = float32(math.Inf(-1))
	for i, v := range x {
		v *= scale
		x[i] = v
		m = max(m, v)
	}
	for i, v := range x {
		e := Exp(v - m)
		x[i] = e
		sum += e
	}
	return m, sum
}

// SwiGLU sets dst[i] = g[i] * sigmoid(g[i]) * u[i] for i < len(dst), with
// sigmoid(v) = 1 / (1 + Exp(-v)) and the products in that order. dst may
// be g or u. It panics if g or u is shorter than dst.
func SwiGLU(dst, g, u []float32) { swiglu(dst, g, u) }

// SwiGLUGeneric is SwiGLU's plain-Go twin.
func SwiGLUGeneric(dst, g, u []float32) {
	g, u = g[:len(dst)], u[:len(dst)]
	for i, v := range g {
		dst[i] = v * (1 / (1 + Exp(-v))) * u[i]
	}
}

// GELU sets dst[i] = x * sigmoid(c*(x + 0.044715*x*x*x)) with x = x[i]
// and c = 2·sqrt(2/π), which is the tanh approximation of GELU,
// 0.5·x·(1 + tanh(sqrt(2/π)·(x + 0.044715·x³))), without its cancellation
// near 0. dst may be x. It panics if x is shorter than dst.
func GELU(dst, x []float32) { gelu(dst, x) }

// GELUGeneric is GELU's plain-Go twin.
func GELUGeneric(dst, x []float32) {
	const c = 2 * 0.7978845608028654 // 2·sqrt(2/π)
	x = x[:len(dst)]
	for i, v := range x {
		dst[i] = v * (1 / (1 + Exp(-(c * (v + 0.044715*v*v*v)))))
	}
}

// Exp returns e**x in float32 arithmetic, within 2 ulp of math.Exp for
// normal results (results below the smallest normal float32 flush to 0),
// about ten times faster than going through float64 math.Exp:
//
//	n = round(x / ln 2), r = x - n·ln 2 (in two parts, Cody–Waite)
//	e**x = 2**n · e**r, with e**r a degree-7 polynomial, |r| ≤ ln2/2
func Exp(x float32) float32 {
	const (
		log2e = 1.44269504088896341
		ln2hi = 0.693359375 // ln 2 split so that n·ln2hi is exact
		ln2lo = -2.12194440e-4
		round = 0x1.8p23 // adding it rounds a float32 below 2^22 to an integer
	)
	if !(x > -87.33654) { // below the normal range, or NaN
		if x != x {
			return x
		}
		return 0
	}
	if x > 88.72283 {
		return float32(math.Inf(1))
	}
	t := x*log2e + round
	n := t - round                               // round(x / ln 2), exactly
	k := int32(math.Float32bits(t)) - 0x4b400000 // the same as an integer
	r := x - n*ln2hi - n*ln2lo
	// Minimax polynomial for e**r on |r| ≤ ln2/2 (Cephes' expf coefficients).
	p := ((((((1.9875691500e-4*r+1.3981999507e-3)*r+8.3334519073e-3)*r+4.1665795894e-2)*r+1.6666665459e-1)*r+5.0000001201e-1)*r*r + r) + 1
	// 2**k as float32 bits; k is in [-126, 128], and 2**128 overflows
	// float32, so that one is built as 2·2**127.
	if k > 127 {
		return p * 2 * math.Float32frombits(uint32(k-1+127)<<23)
	}
	return p * math.Float32frombits(uint32(k+127)<<23)
}

// AttnBlocks advances the attention of len(m) query heads over more
// positions: the rows of the blocks ks[j] (keys) and vs[j] (values), d
// elements each (rows d apart, len(ks[j]) = len(vs[j]) a multiple of d),
// taken in order. For each head h it keeps an online softmax state: m[h]
// the largest score so far, l[h] the sum of e**(score-m[h]) and
// acc[h*d:(h+1)*d] the values weighted by those terms. That is, with k and
// v the concatenations of the blocks and n their rows, for each h
//
//	q := q[h*d : (h+1)*d]
//	for t := 0; t < n; t++ {
//		s[t] = scale * Dot(q, k[t*d:(t+1)*d])
//	}
//	mNew := max(m[h], max(s))
//	c := Exp(m[h] - mNew)
//	for t := range s {
//		s[t] = Exp(s[t] - mNew)
//	}
//	l[h] = l[h]*c + sum(s)
//	acc[h] = acc[h]*c + sum over t of s[t]*v[t*d:(t+1)*d]
//	m[h] = mNew
//
// with sums in an unspecified (fixed) order. Start with m = -Inf, l = 0,
// acc = 0; the attention output of head h is then acc[h]/l[h]. sbuf is
// scratch of AttnScratch(len(m), n) elements; n must be at least 1. The
// fast path runs each phase (scores, exponentials, value sums) for every
// head before the next phase, so that the heads' dependency chains
// overlap. It panics if a slice is too short.
func AttnBlocks(acc, m, l, q []float32, d int, ks, vs [][]float32, scale float32, sbuf []float32) {
	attnBlocks(acc, m, l, q, d, ks, vs, scale, sbuf)
}

// AttnScratch is the scratch AttnBlocks needs for nh heads and n positions.
func AttnScratch(nh, n int) int { return nh*((n+7)&^7) + nh }

// attnRows checks AttnBlocks's blocks and returns their total rows.
func attnRows(d int, ks, vs [][]float32) int {
	if len(ks) != len(vs) {
		panic("vec: AttnBlocks: different numbers of key and value blocks")
	}
	n := 0
	for j, k := range ks {
		if len(k)%d != 0 || len(vs[j]) != len(k) {
			panic("vec: AttnBlocks: block lengths are not equal multiples of d")
		}
		n += len(k) / d
	}
	return n
}

// AttnBlocksGeneric is AttnBlocks's plain-Go twin.
func AttnBlocksGeneric(acc, m, l, q []float32, d int, ks, vs [][]float32, scale float32, sbuf []float32) {
	nh, n := len(m), attnRows(d, ks, vs)
	acc, l, q, s := acc[:nh*d], l[:nh], q[:nh*d], sbuf[:n]
	for h := range nh {
		qh := q[h*d : (h+1)*d]
		bm := float32(math.Inf(-1))
		t := 0
		for _, k := range ks {
			for i := 0; i < len(k); i += d {
				s[t] = scale * DotGeneric(qh, k[i:i+d])
				bm = max(bm, s[t])
				t++
			}
		}
		mn := max(m[h], bm)
		c := Exp(m[h] - mn)
		var sum float32
		for t, x := range s {
			s[t] = Exp(x - mn)
			sum += s[t]
		}
		l[h] = l[h]*c + sum
		a := acc[h*d : (h+1)*d]
		for i := range a {
			a[i] *= c
		}
		t = 0
		for _, v := range vs {
			for i := 0; i < len(v); i += d {
				AxpyGeneric(s[t], v[i:i+d], a)
				t++
			}
		}
		m[h] = mn
	}
}

// ArgMax returns the smallest index i with x[i] maximal, NaN elements
// never being the maximum, and that maximum; for an x of only NaN it
// returns (-1, NaN), for an empty x (-1, -Inf). That is
//
//	m, idx := float32(math.Inf(-1)), -1
//	for i, v := range x {
//		if v > m || (idx < 0 && v == m) {
//			m, idx = v, i
//		}
//	}
func ArgMax(x []float32) (idx int, m float32) { return argMax(x) }

// ArgMaxGeneric is ArgMax's plain-Go twin.
func ArgMaxGeneric(x []float32) (idx int, m float32) {
	m, idx = float32(math.Inf(-1)), -1
	for i, v := range x {
		if v > m || (idx < 0 && v == m) {
			m, idx = v, i
		}
	}
	if idx < 0 && len(x) > 0 {
		return -1, float32(math.NaN())
	}
	return idx, m
}

// DotRowsF16 is DotRows for rows of IEEE half-precision weights (raw
// little-endian bytes, rows stride elements apart): dst[r] is the dot of
// x with row r widened to float32, in the canonical order, so bitwise
// what DotRows and DotTile give for the widened row. len(x) must be a
// multiple of 8 (the fast path has no masked tail); it panics otherwise or
// if w is too short.
func DotRowsF16(dst []float32, w []byte, stride int, x []float32) { dotRowsH(dst, w, stride, x, false) }

// DotRowsBF16 is DotRowsF16 for bfloat16 weights.
func DotRowsBF16(dst []float32, w []byte, stride int, x []float32) { dotRowsH(dst, w, stride, x, true) }

// DotRowsF16Generic is DotRowsF16's plain-Go twin: DotGeneric of each row
// widened.
func DotRowsF16Generic(dst []float32, w []byte, stride int, x []float32) {
	dotRowsHGeneric(dst, w, stride, x, f16ToF32)
}

// DotRowsBF16Generic is DotRowsBF16's plain-Go twin.
func DotRowsBF16Generic(dst []float32, w []byte, stride int, x []float32) {
	dotRowsHGeneric(dst, w, stride, x, bf16ToF32)
}

func dotRowsHGeneric(dst []float32, w []byte, stride int, x []float32, widen func(uint16) float32) {
	checkRowsH(dst, w, stride, x)
	for r := range dst {
		dst[r] = dotHGeneric(w[2*r*stride:2*(r*stride+len(x))], x, widen)
	}
}

// dotHGeneric is DotGeneric(widened w, x) with each weight widened as it
// is read: the same products and partial sums in the same order, and no
// buffer.
func dotHGeneric(w []byte, x []float32, widen func(uint16) float32) float32 {
	w = w[:2*len(x)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(x); i += 4 {
		a0, a1 := widen(binary.LittleEndian.Uint16(w[2*i:])), widen(binary.LittleEndian.Uint16(w[2*i+2:]))
		a2, a3 := widen(binary.LittleEndian.Uint16(w[2*i+4:])), widen(binary.LittleEndian.Uint16(w[2*i+6:]))
		s0 += a0 * x[i]
		s1 += a1 * x[i+1]
		s2 += a2 * x[i+2]
		s3 += a3 * x[i+3]
	}
	for ; i < len(x); i++ {
		s0 += widen(binary.LittleEndian.Uint16(w[2*i:])) * x[i]
	}
	return (s0 + s1) + (s2 + s3)
}

func bf16ToF32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// checkRowsH panics unless w holds len(dst) rows of len(x) halves, stride
// apart, and len(x) is a multiple of 8.
func checkRowsH(dst []float32, w []byte, stride int, x []float32) {
	if len(x)%8 != 0 {
		panic("vec: DotRowsF16/BF16: the row length is not a multiple of 8")
	}
	if len(dst) > 0 {
		_ = w[:2*((len(dst)-1)*stride+len(x))]
	}
}
