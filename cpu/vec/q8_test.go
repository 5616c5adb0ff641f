package vec

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestQuantizeQ8(t *testing.T) {
	r := newRand(t)
	for _, n := range []int{0, 32, 64, 4096, 4096 + 31} {
		x := randF32(r, n)
		if n >= 64 {
			clear(x[32:64]) // an all-zero block
		}
		nb := n / QK
		q := make([]int8, nb*QK)
		d := make([]float32, nb)
		QuantizeQ8(q, d, x)
		requireSameQuant(t, x)
		for b := range nb {
			amax := 0.0
			for _, v := range x[b*QK : (b+1)*QK] {
				amax = math.Max(amax, math.Abs(float64(v)))
			}
			require.InDelta(t, amax/127, float64(d[b]), amax*1e-7, "block %d scale", b)
			for j := range QK {
				i := b*QK + j
				require.LessOrEqual(t, int(q[i]), 127)
				require.GreaterOrEqual(t, int(q[i]), -127)
				require.InDelta(t, float64(x[i]), float64(q[i])*float64(d[b]), float64(d[b])*(0.5+1e-5), "x[%d]", i)
			}
		}
	}

	// Non-finite blocks become NaN scales and zero integers.
	x := randF32(r, 96)
	x[5], x[40] = float32(math.Inf(-1)), float32(math.NaN())
	q := make([]int8, 96)
	d := make([]float32, 3)
	QuantizeQ8(q, d, x)
	require.True(t, isNaN(d[0]) && isNaN(d[1]) && !isNaN(d[2]), "scales %v", d)
	require.Equal(t, make([]int8, 64), q[:64])
	requireSameQuant(t, x)

	// Tiny blocks: 127/amax would overflow below 2^-120.
	x = make([]float32, 64)
	x[3], x[40] = 0x1p-121, -0x1p-119
	QuantizeQ8(q, d, x)
	require.Equal(t, []float32{0, 0x1p-119 / 127}, d[:2])
	require.Equal(t, int8(-127), q[40])
	requireSameQuant(t, x)

	// Ties round to even: x = 0.5*d and 1.5*d with amax = 127*d.
	x = make([]float32, 32)
	x[0], x[1], x[2], x[3] = 127, 0.5, 1.5, -2.5
	QuantizeQ8(q, d, x)
	require.Equal(t, []int8{127, 0, 2, -2}, q[:4])
	requireSameQuant(t, x)
}

// requireSameQuant checks that QuantizeQ8 and QuantizeQ8Generic agree bit
// for bit on x, and that neither writes past len(x)/32 blocks.
func requireSameQuant(t *testing.T, x []float32) {
	t.Helper()
	nb := len(x) / QK
	qf, qg := make([]int8, nb*QK+1), make([]int8, nb*QK+1)
	df, dg := make([]float32, nb+1), make([]float32, nb+1)
	qf[nb*QK], qg[nb*QK], df[nb], dg[nb] = 99, 99, 99, 99
	QuantizeQ8(qf, df, x)
	QuantizeQ8Generic(qg, dg, x)
	require.Equal(t, qg, qf)
	require.Equal(t, int8(99), qf[nb*QK])
	require.Equal(t, float32(99), df[nb])
	for b := range dg {
		require.Equal(t, math.Float32bits(dg[b]), math.Float32bits(df[b]), "scale %d", b)
	}
}

type intCase struct {
	name       string
	blockBytes int
	gen        func(*rand.Rand, int) ([]byte, []float32)
	fast       func([]byte, []int8, []float32) float32
	generic    func([]byte, []int8, []float32) float32
}

var intCases = []intCase{
	{"Q8_0Q8", Q8_0BlockBytes, randQ8_0, DotQ8_0Q8, DotQ8_0Q8Generic},
	{"Q4_0Q8", Q4_0BlockBytes, randQ4_0, DotQ4_0Q8, DotQ4_0Q8Generic},
}

// refQ8 returns the exact dot product of the dequantized weights wf with
// the quantized activations (float64 is exact for each term) and the sum of
// the terms' absolute values. The fast path rounds partial sums of up to 4
// terms (8 lanes per block) and the generic path whole block sums, both
// bounded by this.
func refQ8(wf []float32, q []int8, d []float32) (dot, abs float64) {
	for b := range d {
		var t, a float64
		for j := range QK {
			p := float64(wf[b*QK+j]) * float64(q[b*QK+j])
			t += p
			a += math.Abs(p)
		}
		dot += t * float64(d[b])
		abs += a * math.Abs(float64(d[b]))
	}
	return dot, abs
}

func TestDotsQ8(t *testing.T) {
	r := newRand(t)
	for _, c := range intCases {
		for _, n := range lengths {
			n -= n % QK
			nb := n / QK
			w, wf := c.gen(r, n)
			x := randF32(r, n)
			q, d := make([]int8, n), make([]float32, nb)
			QuantizeQ8(q, d, x)
			want, abs := refQ8(wf, q, d)
			// A few roundings per block (scale product, multiply-add), nb
			// additions per lane, 3 to reduce the 8 lanes.
			tol := (float64(nb) + 8) * 0x1p-24 * abs
			require.InDelta(t, want, float64(c.fast(w, q, d)), tol, "%s fast n=%d", c.name, n)
			require.InDelta(t, want, float64(c.generic(w, q, d)), tol, "%s generic n=%d", c.name, n)

			// Unaligned weights and activations.
			wo := append(make([]byte, 1+n%7), w...)[1+n%7:]
			qo := append(make([]int8, 3), q...)[3:]
			require.InDelta(t, want, float64(c.fast(wo, qo, d)), tol, "%s fast unaligned n=%d", c.name, n)
		}
	}
}

// TestDotsQ8Accuracy measures the integer path against the exact float
// dot product with the unquantized activations, as loom's conformance suite
// does for a matrix-vector product: relative error of the whole output
// vector, which must stay within the 2e-2 allowed for quantized weights.
// For Gaussian activations the expected figure is about
// E[max|x| of 32]/σ / (254·√3) ≈ 2.3/440 ≈ 5e-3.
func TestDotsQ8Accuracy(t *testing.T) {
	r := newRand(t)
	const rows, n = 256, 4096
	for _, c := range intCases {
		x := randF32(r, n)
		q, d := make([]int8, n), make([]float32, n/QK)
		QuantizeQ8(q, d, x)
		var num, den float64
		for range rows {
			w, wf := c.gen(r, n)
			want, _ := ref64(wf, x)
			got := float64(c.fast(w, q, d))
			num += (got - want) * (got - want)
			den += want * want
		}
		rel := math.Sqrt(num / den)
		t.Logf("%s: relative error of a %dx%d product %.2e", c.name, rows, n, rel)
		require.Less(t, rel, 1e-2, c.name)
	}
}

func TestDotsQ8Special(t *testing.T) {
	r := newRand(t)
	for _, c := range intCases {
		w, _ := c.gen(r, 128)
		for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
			x := randF32(r, 128)
			x[70] = bad
			q, d := make([]int8, 128), make([]float32, 4)
			QuantizeQ8(q, d, x)
			require.True(t, isNaN(c.fast(w, q, d)), "%s fast with %v", c.name, bad)
			require.True(t, isNaN(c.generic(w, q, d)), "%s generic with %v", c.name, bad)
		}
	}
}

func fuzzIntDot(t *testing.T, c intCase, w, xb []byte, off uint8) {
	x := fuzzBlocks(w, fuzzF32(xb, off), c.blockBytes)
	nb := len(x) / QK
	q, d := make([]int8, nb*QK), make([]float32, nb)
	QuantizeQ8(q, d, x)
	requireSameQuant(t, x)
	wf := make([]float32, nb*QK)
	for i := range wf {
		blk := w[i/QK*c.blockBytes:]
		dw := f16ToF32(binary.LittleEndian.Uint16(blk))
		j := i % QK
		if c.blockBytes == Q8_0BlockBytes {
			wf[i] = dw * float32(int8(blk[2+j]))
		} else if j < 16 {
			wf[i] = dw * float32(int(blk[2+j]&15)-8)
		} else {
			wf[i] = dw * float32(int(blk[2+j-16]>>4)-8)
		}
	}
	ref, abs := refQ8(wf, q, d)
	check := func(name string, got float32) {
		switch {
		case math.IsNaN(ref):
			require.True(t, isNaN(got), "%s: got %v, want NaN", name, got)
		case math.IsInf(ref, 0):
			require.Equal(t, float32(ref), got, name)
		default:
			tol := (float64(nb)+8)*0x1p-24*abs + 0x1p-100
			require.InDelta(t, ref, float64(got), tol, "%s nb=%d", name, nb)
		}
	}
	if badScales(w, nb, c.blockBytes) {
		checkNonFinite(t, c.name, c.fast(w, q, d))
		checkNonFinite(t, c.name+"Generic", c.generic(w, q, d))
		return
	}
	check(c.name, c.fast(w, q, d))
	check(c.name+"Generic", c.generic(w, q, d))
}

func FuzzDotQ8_0Q8(f *testing.F) {
	f.Add(make([]byte, 2*Q8_0BlockBytes), make([]byte, 4*64), uint8(5))
	f.Fuzz(func(t *testing.T, w, xb []byte, off uint8) { fuzzIntDot(t, intCases[0], w, xb, off) })
}

func FuzzDotQ4_0Q8(f *testing.F) {
	f.Add(make([]byte, 2*Q4_0BlockBytes), make([]byte, 4*64), uint8(5))
	f.Fuzz(func(t *testing.T, w, xb []byte, off uint8) { fuzzIntDot(t, intCases[1], w, xb, off) })
}
