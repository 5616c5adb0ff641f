package vec

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loomllm/loom/runtime/quant"
)

// kquant is one K-quant type's routines, for the tests and benchmarks
// they share.
type kquant struct {
	name        string
	blockBytes  int
	rand        func(r *rand.Rand, nb int) []byte
	dequantize  func(dst []float32, src []byte) // runtime/quant's reference
	widen       func(dst []float32, src []byte)
	dot         func(w []byte, x []float32) float32
	dotQ8       func(w []byte, q []int8, d, s []float32) float32
	dotQ8Plain  func(w []byte, q []int8, d, s []float32) float32
	vnniVariant bool // dotQ8 has an AVX512-VNNI path besides the AVX2 one
	// per is how many quants each activation sum covers: 32 (SumsQ8) or
	// 16 (SumsQ8By16).
	per int
}

// sums returns the activation sums k's dots take for q.
func (k kquant) sums(q []int8) []float32 {
	s := make([]float32, len(q)/k.per)
	if k.per == 16 {
		SumsQ8By16(s, q)
	} else {
		SumsQ8(s, q)
	}
	return s
}

var kquants = []kquant{
	{"q4_k", Q4_KBlockBytes, randQ4_K, quant.DequantizeQ4_K, WidenQ4_K, DotQ4_K, DotQ4_KQ8, DotQ4_KQ8Generic, true, 32},
	{"q5_k", Q5_KBlockBytes, randQ5_K, quant.DequantizeQ5_K, WidenQ5_K, DotQ5_K, DotQ5_KQ8, DotQ5_KQ8Generic, true, 32},
	{"q2_k", Q2_KBlockBytes, randQ2_K, quant.DequantizeQ2_K, WidenQ2_K, DotQ2_K, DotQ2_KQ8, DotQ2_KQ8Generic, false, 16},
	{"q3_k", Q3_KBlockBytes, randQ3_K, quant.DequantizeQ3_K, WidenQ3_K, DotQ3_K, DotQ3_KQ8, DotQ3_KQ8Generic, false, 16},
	{"q6_k", Q6_KBlockBytes, randQ6_K, quant.DequantizeQ6_K, WidenQ6_K, DotQ6_K, DotQ6_KQ8, DotQ6_KQ8Generic, false, 16},
}

// randKBlocks returns nb blocks of random bytes with the F16 fields at
// the given offsets set to random small positive halves below limit.
func randKBlocks(r *rand.Rand, nb, blockBytes int, limit float32, halves ...int) []byte {
	w := make([]byte, nb*blockBytes)
	for i := range w {
		w[i] = byte(r.Uint32())
	}
	for b := range nb {
		for _, off := range halves {
			binary.LittleEndian.PutUint16(w[b*blockBytes+off:], quant.F32ToF16(r.Float32()*limit))
		}
	}
	return w
}

// randQ4_K returns nb Q4_K blocks of random quants, scales and mins, with
// d and dmin drawn like a real file's (small positive halves).
func randQ4_K(r *rand.Rand, nb int) []byte { return randKBlocks(r, nb, Q4_KBlockBytes, 1.0/64, 0, 2) }

// randQ5_K: as randQ4_K, with random fifth bits.
func randQ5_K(r *rand.Rand, nb int) []byte { return randKBlocks(r, nb, Q5_KBlockBytes, 1.0/128, 0, 2) }

// randQ2_K returns nb Q2_K blocks of random quants, scales and mins, with
// d and dmin small positive halves.
func randQ2_K(r *rand.Rand, nb int) []byte { return randKBlocks(r, nb, Q2_KBlockBytes, 1.0/32, 80, 82) }

// randQ3_K returns nb Q3_K blocks of random quants, high bits and scales,
// with d a small half.
func randQ3_K(r *rand.Rand, nb int) []byte { return randKBlocks(r, nb, Q3_KBlockBytes, 1.0/256, 108) }

// randQ6_K returns nb Q6_K blocks of random quants and int8 scales, with
// d a small half.
func randQ6_K(r *rand.Rand, nb int) []byte { return randKBlocks(r, nb, Q6_KBlockBytes, 1.0/2048, 208) }

// TestWidenK: each type's widening is bitwise runtime/quant's reference
// (itself bitwise ggml's, see TestGGMLVectors there).
func TestWidenK(t *testing.T) {
	r := newRand(t)
	for _, k := range kquants {
		for _, nb := range []int{1, 2, 5} {
			w := k.rand(r, nb)
			want, got := make([]float32, nb*QKK), make([]float32, nb*QKK)
			k.dequantize(want, w)
			k.widen(got, w)
			for i := range want {
				require.Equal(t, math.Float32bits(want[i]), math.Float32bits(got[i]), "%s nb %d element %d", k.name, nb, i)
			}
		}
	}
}

// TestSumsQ8: the activation sums are exact, and a partial block at the
// end of q is not read.
func TestSumsQ8(t *testing.T) {
	q := make([]int8, 3*32+5)
	for i := range q {
		q[i] = int8(127 - 2*(i%128))
	}
	q[40] = -128
	s := make([]float32, 3)
	SumsQ8(s, q)
	for b := range s {
		var want int
		for _, v := range q[32*b : 32*b+32] {
			want += int(v)
		}
		require.Equal(t, float32(want), s[b], "block %d", b)
	}
	require.Panics(t, func() { SumsQ8(make([]float32, 4), q) })
}

// TestDotK: each type's integer dot (fast, without VNNI where it has a
// VNNI path, and generic) against a float64 sum of the dequantized weights
// times the dequantized activations, and its float dot against the
// dequantized weights times x; then extreme quants, and a non-finite
// activation.
func TestDotK(t *testing.T) {
	r := newRand(t)
	if !useVNNI {
		t.Log("no AVX512-VNNI here: the VNNI K-quant dots are not tested")
	}
	for _, k := range kquants {
		impls := []struct {
			name string
			f    func(w []byte, q []int8, d, s []float32) float32
		}{{"fast", k.dotQ8}, {"generic", k.dotQ8Plain}}
		if useVNNI && k.vnniVariant {
			impls = append(impls, struct {
				name string
				f    func(w []byte, q []int8, d, s []float32) float32
			}{"fast without vnni", func(w []byte, q []int8, d, s []float32) float32 {
				useVNNI = false
				defer func() { useVNNI = true }()
				return k.dotQ8(w, q, d, s)
			}})
		}
		check := func(what string, w []byte, x []float32) {
			n := len(x)
			q, d := make([]int8, n), make([]float32, n/QK)
			QuantizeQ8(q, d, x)
			sums := k.sums(q)
			wf := make([]float32, n)
			k.dequantize(wf, w)
			xq := make([]float32, n)
			for i := range xq {
				xq[i] = float32(q[i]) * d[i/QK]
			}
			want, abs := ref64(wf, xq)
			for _, im := range impls {
				requireClose(t, fmt.Sprintf("%s %s %s", k.name, im.name, what), n, im.f(w, q, d, sums), want, abs)
			}
			want, abs = ref64(wf, x)
			requireClose(t, fmt.Sprintf("%s float %s", k.name, what), n, k.dot(w, x), want, abs)
		}
		for _, nb := range []int{1, 2, 3, 8, 16} {
			for range 20 {
				check(fmt.Sprintf("nb=%d", nb), k.rand(r, nb), randF32(r, nb*QKK))
			}
		}
		// Every quant bit set, alternating ±1 activations (±127 quantized).
		w := k.rand(r, 1)
		for i := range w {
			keep := i < 4 || (k.name == "q6_k" && i >= 128) || (k.name == "q2_k" && i >= 80) || (k.name == "q3_k" && i >= 96) // d, dmin, scales
			if !keep {
				w[i] = 0xFF
			}
		}
		x := make([]float32, QKK)
		for i := range x {
			x[i] = float32(1 - 2*(i%2))
		}
		check("extreme", w, x)
		// A non-finite activation block makes the product NaN.
		w, x = k.rand(r, 2), randF32(r, 2*QKK)
		x[300] = float32(math.Inf(1))
		q, d := make([]int8, len(x)), make([]float32, len(x)/QK)
		QuantizeQ8(q, d, x)
		sums := k.sums(q)
		for _, im := range impls {
			require.True(t, math.IsNaN(float64(im.f(w, q, d, sums))), "%s %s", k.name, im.name)
		}
		require.Zero(t, k.dotQ8(nil, nil, nil, nil))
	}
}

func BenchmarkDotKQ8(b *testing.B) {
	r := newRand(b)
	const n = 4096
	for _, k := range kquants {
		w, x := k.rand(r, n/QKK), randF32(r, n)
		q, d := make([]int8, n), make([]float32, n/QK)
		QuantizeQ8(q, d, x)
		sums := k.sums(q)
		for _, im := range []struct {
			name string
			f    func(w []byte, q []int8, d, s []float32) float32
		}{{"fast", k.dotQ8}, {"generic", k.dotQ8Plain}} {
			b.Run(k.name+"/"+im.name, func(b *testing.B) {
				for b.Loop() {
					sink = im.f(w, q, d, sums)
				}
				reportFlops(b, 2*n)
			})
		}
	}
}
