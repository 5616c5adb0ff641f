package sample

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPlainDraw: a sampler with only a temperature (or none) draws
// straight from the logits; it picks exactly the tokens the candidate
// chain (Reset, Temperature, Draw) picks, for the same seed, including
// rows with NaN, -Inf and only -Inf.
func TestPlainDraw(t *testing.T) {
	r := newRand(t)
	for _, temp := range []float32{0.3, 0.8, 1, 1.7} {
		fast, err := New(Options{Temperature: temp, Seed: 7})
		require.NoError(t, err)
		require.True(t, fast.plain)
		slow, err := New(Options{Temperature: temp, Seed: 7})
		require.NoError(t, err)
		slow.plain = false
		for i := range 3000 {
			logits := randLogits(r, 1+r.IntN(600))
			switch i % 7 {
			case 1:
				logits[r.IntN(len(logits))] = float32(math.NaN())
			case 2:
				logits[r.IntN(len(logits))] = float32(math.Inf(-1))
			case 3:
				for k := range logits {
					logits[k] = float32(math.Inf(-1))
				}
			case 4:
				for k := range logits {
					logits[k] *= 40 // far apart: many probabilities underflow
				}
			}
			require.Equal(t, slow.Sample(logits), fast.Sample(logits), "temperature %v, row %d", temp, i)
		}
	}
	for _, o := range []Options{{Temperature: 0.8, TopK: 40}, {Temperature: 0.8, RepeatPenalty: 1.1},
		{Temperature: 0.8, LogitBias: map[int32]float32{1: 2}}, {}} {
		s, err := New(o)
		require.NoError(t, err)
		require.False(t, s.plain, "%+v", o)
	}
}

func BenchmarkTemperature512(b *testing.B) {
	for _, plain := range []bool{false, true} {
		name := map[bool]string{false: "chain", true: "plain"}[plain]
		b.Run(name, func(b *testing.B) {
			logits := randLogits(newRand(b), 512)
			s, err := New(Options{Temperature: 0.8, Seed: 1})
			require.NoError(b, err)
			s.plain = plain
			b.ReportAllocs()
			for range b.N {
				s.Sample(logits)
			}
		})
	}
}
