package cpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestExpf compares expf with math.Exp on random arguments over the whole
// normal range, and at the edges.
func TestExpf(t *testing.T) {
	rng := rand.New(rand.NewPCG(rand.Uint64(), 0))
	check := func(x float32) {
		got, want := float64(expf(x)), math.Exp(float64(x))
		// vec.Exp flushes at and below -87.33654 (documented): e**x there
		// is below 2**-126 or at most 1.000005 times it.
		if want < 0x1p-126 || x <= -87.33654 {
			require.LessOrEqual(t, got, 0x1p-126, "x=%g", x)
			return
		}
		if want > math.MaxFloat32 {
			require.True(t, math.IsInf(got, 1), "x=%g", x)
			return
		}
		require.InEpsilon(t, want, got, 3e-7, "x=%g", x)
	}
	for range 200000 {
		check(-88 + 177*rng.Float32())
		check(2 * (rng.Float32() - 0.5) * 1e-3)
	}
	for _, x := range []float32{0, -0, 1, -1, 88.72, 88.7229, 88.73, -87.33, -87.34, -100, 100, 0.34657359, -0.34657359, float32(math.Inf(1)), float32(math.Inf(-1))} {
		check(x)
	}
	require.True(t, math.IsNaN(float64(expf(float32(math.NaN())))))
	require.Equal(t, float32(1), expf(0))
	require.Equal(t, float32(0), sigmoid(float32(math.Inf(-1))))
	require.Equal(t, float32(1), sigmoid(float32(math.Inf(1))))
}

func BenchmarkExpf(b *testing.B) {
	x := make([]float32, 4096)
	for i := range x {
		x[i] = float32(i)/256 - 8
	}
	b.SetBytes(4 * int64(len(x)))
	var s float32
	for range b.N {
		for _, v := range x {
			s += expf(v)
		}
	}
	_ = s
}
