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

// randQ4_K returns nb Q4_K blocks of random quants, scales and mins, with
// d and dmin drawn like a real file's (small positive halves).
func randQ4_K(r *rand.Rand, nb int) []byte {
	w := make([]byte, nb*Q4_KBlockBytes)
	for i := range w {
		w[i] = byte(r.Uint32())
	}
	for b := range nb {
		binary.LittleEndian.PutUint16(w[b*Q4_KBlockBytes:], quant.F32ToF16(r.Float32()/64))
		binary.LittleEndian.PutUint16(w[b*Q4_KBlockBytes+2:], quant.F32ToF16(r.Float32()/64))
	}
	return w
}

// TestWidenQ4_K: bitwise runtime/quant's DequantizeQ4_K.
func TestWidenQ4_K(t *testing.T) {
	r := newRand(t)
	for _, nb := range []int{1, 2, 5} {
		w := randQ4_K(r, nb)
		want, got := make([]float32, nb*QKK), make([]float32, nb*QKK)
		quant.DequantizeQ4_K(want, w)
		WidenQ4_K(got, w)
		for i := range want {
			require.Equal(t, math.Float32bits(want[i]), math.Float32bits(got[i]), "nb %d element %d", nb, i)
		}
	}
}

// TestDotQ4_K: the integer dot (fast and generic) against a float64 sum
// of the dequantized weights times the dequantized activations, and the
// float dot against the dequantized weights times x.
func TestDotQ4_K(t *testing.T) {
	r := newRand(t)
	impls := []struct {
		name string
		f    func(w []byte, q []int8, d []float32) float32
	}{{"fast", DotQ4_KQ8}, {"generic", DotQ4_KQ8Generic}}
	if useVNNI {
		impls = append(impls, struct {
			name string
			f    func(w []byte, q []int8, d []float32) float32
		}{"fast without vnni", func(w []byte, q []int8, d []float32) float32 {
			useVNNI = false
			defer func() { useVNNI = true }()
			return DotQ4_KQ8(w, q, d)
		}})
	} else {
		t.Log("no AVX512-VNNI here: its Q4_K dot is not tested")
	}
	for _, nb := range []int{1, 2, 3, 8, 16} {
		for range 20 {
			n := nb * QKK
			w := randQ4_K(r, nb)
			x := randF32(r, n)
			q, d := make([]int8, n), make([]float32, n/QK)
			QuantizeQ8(q, d, x)
			wf := make([]float32, n)
			quant.DequantizeQ4_K(wf, w)
			xq := make([]float32, n)
			for i := range xq {
				xq[i] = float32(q[i]) * d[i/QK]
			}
			want, abs := ref64(wf, xq)
			for _, im := range impls {
				requireClose(t, fmt.Sprintf("%s nb=%d", im.name, nb), n, im.f(w, q, d), want, abs)
			}
			want, abs = ref64(wf, x)
			requireClose(t, fmt.Sprintf("float nb=%d", nb), n, DotQ4_K(w, x), want, abs)
		}
	}
	// A non-finite activation block makes the product NaN.
	w := randQ4_K(r, 2)
	x := randF32(r, 2*QKK)
	x[300] = float32(math.Inf(1))
	q, d := make([]int8, len(x)), make([]float32, len(x)/QK)
	QuantizeQ8(q, d, x)
	for _, im := range impls {
		require.True(t, math.IsNaN(float64(im.f(w, q, d))), im.name)
	}
	require.Zero(t, DotQ4_KQ8(nil, nil, nil))
}

func BenchmarkDotQ4_KQ8(b *testing.B) {
	r := newRand(b)
	const n = 4096
	w, x := randQ4_K(r, n/QKK), randF32(r, n)
	q, d := make([]int8, n), make([]float32, n/QK)
	QuantizeQ8(q, d, x)
	for _, im := range []struct {
		name string
		f    func(w []byte, q []int8, d []float32) float32
	}{{"fast", DotQ4_KQ8}, {"generic", DotQ4_KQ8Generic}} {
		b.Run(im.name, func(b *testing.B) {
			for b.Loop() {
				sink = im.f(w, q, d)
			}
			reportFlops(b, 2*n)
		})
	}
}

// randQ6_K returns nb Q6_K blocks of random quants and int8 scales, with
// d a small half.
func randQ6_K(r *rand.Rand, nb int) []byte {
	w := make([]byte, nb*Q6_KBlockBytes)
	for i := range w {
		w[i] = byte(r.Uint32())
	}
	for b := range nb {
		binary.LittleEndian.PutUint16(w[b*Q6_KBlockBytes+208:], quant.F32ToF16(r.Float32()/2048))
	}
	return w
}

// TestWidenQ6_K: bitwise runtime/quant's DequantizeQ6_K.
func TestWidenQ6_K(t *testing.T) {
	r := newRand(t)
	for _, nb := range []int{1, 3} {
		w := randQ6_K(r, nb)
		want, got := make([]float32, nb*QKK), make([]float32, nb*QKK)
		quant.DequantizeQ6_K(want, w)
		WidenQ6_K(got, w)
		for i := range want {
			require.Equal(t, math.Float32bits(want[i]), math.Float32bits(got[i]), "nb %d element %d", nb, i)
		}
	}
}

// TestDotQ6_K: as TestDotQ4_K, for Q6_K.
func TestDotQ6_K(t *testing.T) {
	r := newRand(t)
	for _, nb := range []int{1, 2, 3, 8, 16} {
		for range 20 {
			n := nb * QKK
			w := randQ6_K(r, nb)
			x := randF32(r, n)
			q, d := make([]int8, n), make([]float32, n/QK)
			QuantizeQ8(q, d, x)
			wf := make([]float32, n)
			quant.DequantizeQ6_K(wf, w)
			xq := make([]float32, n)
			for i := range xq {
				xq[i] = float32(q[i]) * d[i/QK]
			}
			want, abs := ref64(wf, xq)
			requireClose(t, fmt.Sprintf("fast nb=%d", nb), n, DotQ6_KQ8(w, q, d), want, abs)
			requireClose(t, fmt.Sprintf("generic nb=%d", nb), n, DotQ6_KQ8Generic(w, q, d), want, abs)
			want, abs = ref64(wf, x)
			requireClose(t, fmt.Sprintf("float nb=%d", nb), n, DotQ6_K(w, x), want, abs)
		}
	}
	require.Zero(t, DotQ6_KQ8(nil, nil, nil))
}

func BenchmarkDotQ6_KQ8(b *testing.B) {
	r := newRand(b)
	const n = 4096
	w, x := randQ6_K(r, n/QKK), randF32(r, n)
	q, d := make([]int8, n), make([]float32, n/QK)
	QuantizeQ8(q, d, x)
	for b.Loop() {
		sink = DotQ6_KQ8(w, q, d)
	}
	reportFlops(b, 2*n)
}
