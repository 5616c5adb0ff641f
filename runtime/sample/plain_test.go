package sample

import (
	"encoding/binary"
	"math"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPlainDraw: a sampler with only a temperature (or none) draws
// straight from the logits; it picks exactly the tokens the candidate
// chain (Reset, Temperature, Draw) picks, for the same seed, including
// rows with NaN, -Inf, only -Inf and +Inf (which takes all the mass).
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
			switch i % 9 {
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
			case 5:
				logits[r.IntN(len(logits))] = float32(math.NaN())
				logits[r.IntN(len(logits))] = float32(math.NaN())
				logits[r.IntN(len(logits))] = float32(math.Inf(-1))
			case 6: // +Inf takes all the mass: the first +Inf
				logits[r.IntN(len(logits))] = float32(math.NaN())
				logits[r.IntN(len(logits))] = float32(math.Inf(1))
				want := slices.Index(logits, float32(math.Inf(1)))
				other, err := New(Options{Temperature: temp})
				require.NoError(t, err)
				require.Equal(t, int32(want), other.Sample(logits), "temperature %v, row %d", temp, i)
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

// TestArgMax: the vectorised ArgMax against the plain loop, on rows with
// ties, NaN, infinities, and only NaN (index 0, as the loop gives).
func TestArgMax(t *testing.T) {
	ref := func(x []float32) int32 {
		if len(x) == 0 {
			return -1
		}
		best, bv := 0, float32(math.Inf(-1))
		for i, v := range x {
			if v > bv {
				best, bv = i, v
			}
		}
		return int32(best)
	}
	r := newRand(t)
	for i := range 5000 {
		x := randLogits(r, r.IntN(300))
		for k := range x {
			switch r.IntN(20) {
			case 0:
				x[k] = float32(math.NaN())
			case 1:
				x[k] = float32(math.Inf(-1))
			case 2:
				x[k] = float32(math.Inf(1))
			case 3:
				x[k] = float32(int(x[k])) // ties
			}
		}
		if i%50 == 0 {
			for k := range x {
				x[k] = float32(math.NaN())
			}
		}
		require.Equal(t, ref(x), ArgMax(x), "row %d: %v", i, x)
	}
}

// TestTopDraw: a chain that starts with temperature and top-k selects its
// candidates straight from the logits; it picks exactly the tokens the
// whole chain picks for the same seed, also with ties (which top-k breaks
// by id), NaN and infinities.
func TestTopDraw(t *testing.T) {
	r := newRand(t)
	for _, o := range []Options{
		{Temperature: 0.8, TopK: 40},
		{Temperature: 1, TopK: 1},
		{Temperature: 0.3, TopK: 7, TopP: 0.9},
		{Temperature: 1.3, TopK: 100, MinP: 0.05},
		{Temperature: 0.7, TopK: 20, TopP: 0.8, MinP: 0.1},
	} {
		o.Seed = 11
		fast, err := New(o)
		require.NoError(t, err)
		require.Positive(t, fast.top)
		slow, err := New(o)
		require.NoError(t, err)
		slow.top = 0
		for i := range 2000 {
			logits := randLogits(r, 1+r.IntN(3000))
			switch i % 6 {
			case 1:
				for k := range logits {
					logits[k] = float32(int(logits[k] * 2)) // many ties
				}
			case 2:
				for range 5 {
					logits[r.IntN(len(logits))] = float32(math.NaN())
					logits[r.IntN(len(logits))] = float32(math.Inf(-1))
				}
			case 3:
				logits[r.IntN(len(logits))] = float32(math.Inf(1))
			case 4:
				for k := range logits {
					logits[k] = float32(math.Inf(-1))
				}
			}
			require.Equal(t, slow.Sample(logits), fast.Sample(logits), "%+v, row %d", o, i)
		}
	}
	for _, o := range []Options{{Temperature: 0.8, TopK: 40, RepeatPenalty: 1.1},
		{Temperature: 0.8, TopK: 40, LogitBias: map[int32]float32{1: 2}}, {Temperature: 0.8, TopP: 0.9}} {
		s, err := New(o)
		require.NoError(t, err)
		require.Zero(t, s.top, "%+v", o)
	}
}

// TestInfiniteLogit: a +Inf logit (an overflowing model) takes all the
// probability under every chain: no panic, and that token is drawn.
func TestInfiniteLogit(t *testing.T) {
	r := newRand(t)
	for _, o := range []Options{{Temperature: 0.8}, {Temperature: 0.8, TopP: 0.9}, {Temperature: 1, MinP: 0.1},
		{Temperature: 0.8, TopK: 5, TopP: 0.5}, {Temperature: 0.8, RepeatPenalty: 1.2, TopP: 0.9}, {}} {
		s, err := New(o)
		require.NoError(t, err)
		for i := range 200 {
			logits := randLogits(r, 1+r.IntN(1000))
			k := r.IntN(len(logits))
			logits[k] = float32(math.Inf(1))
			require.Equal(t, int32(k), s.Sample(logits), "%+v, row %d", o, i)
		}
	}
}

// FuzzSample: any logits (NaN and infinities included) under any chain:
// no panic, and an id of the row (or -1 for an empty one).
//
//	go test ./runtime/sample -run '^$' -fuzz FuzzSample -fuzztime 60s
func FuzzSample(f *testing.F) {
	f.Add([]byte{0, 0, 128, 63, 0, 0, 0, 64}, uint8(0), float32(0.8), uint16(2), float32(0.9), float32(0.05), uint64(1))
	f.Add([]byte{0, 0, 128, 127, 0, 0, 192, 127, 0, 0, 128, 255}, uint8(3), float32(1), uint16(0), float32(0), float32(0), uint64(2))
	f.Fuzz(func(t *testing.T, raw []byte, chain uint8, temp float32, k uint16, p, minP float32, seed uint64) {
		logits := make([]float32, len(raw)/4)
		for i := range logits {
			logits[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		o := Options{Seed: seed}
		if chain&1 != 0 {
			o.Temperature = temp
		}
		if chain&2 != 0 {
			o.TopK = int(k)
		}
		if chain&4 != 0 {
			o.TopP = p
		}
		if chain&8 != 0 {
			o.MinP = minP
		}
		if chain&16 != 0 {
			o.RepeatPenalty, o.PresencePenalty = 1.3, 0.5
		}
		if chain&32 != 0 {
			o.LogitBias = map[int32]float32{0: -3, 1: float32(math.Inf(-1))}
		}
		s, err := New(o)
		if err != nil {
			return // out-of-range options are Validate's to report
		}
		for _, id := range []int32{0, 1, 2} {
			s.Accept(id)
		}
		id := s.Sample(logits)
		if len(logits) == 0 {
			require.Equal(t, int32(-1), id)
			return
		}
		require.True(t, id >= 0 && int(id) < len(logits), "id %d of %d", id, len(logits))
	})
}
