package sample

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func newRand(t testing.TB) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	t.Logf("random seed %d", seed)
	return rand.New(rand.NewPCG(seed, 1))
}

// randLogits returns n logits with a spread like a model's, plus some
// exact ties.
func randLogits(r *rand.Rand, n int) []float32 {
	l := make([]float32, n)
	for i := range l {
		l[i] = float32(r.NormFloat64() * 3)
		if i > 0 && r.IntN(10) == 0 {
			l[i] = l[r.IntN(i)]
		}
	}
	return l
}

// sortedRef is the whole vocabulary sorted in candidate order.
func sortedRef(logits []float32) []Token {
	var c Candidates
	c.Reset(logits)
	sortTokens(c.Tokens)
	return c.Tokens
}

// nucleus returns how many of the sorted tokens top-p keeps, computed
// independently in float64 with p scaled by f.
func nucleus(sorted []Token, p, f float64) int {
	var total float64
	for _, t := range sorted {
		total += math.Exp(float64(t.Logit - sorted[0].Logit))
	}
	var acc float64
	for i, t := range sorted {
		acc += math.Exp(float64(t.Logit - sorted[0].Logit))
		if acc >= p*f*total {
			return i + 1
		}
	}
	return len(sorted)
}

func ids(t []Token) []int32 {
	out := make([]int32, len(t))
	for i := range t {
		out[i] = t[i].ID
	}
	return out
}

func TestTopKMatchesFullSort(t *testing.T) {
	r := newRand(t)
	for range 200 {
		n := 1 + r.IntN(3000)
		logits := randLogits(r, n)
		k := 1 + r.IntN(n)
		var c Candidates
		c.Reset(logits)
		TopK(k).Apply(&c)
		if k == n { // keeping all is a no-op
			require.Len(t, c.Tokens, n)
			continue
		}
		require.True(t, c.Sorted)
		require.Equal(t, ids(sortedRef(logits)[:k]), ids(c.Tokens), "n=%d k=%d", n, k)
	}
}

func TestTopPMatchesReference(t *testing.T) {
	r := newRand(t)
	for range 200 {
		n := 1 + r.IntN(5000)
		logits := randLogits(r, n)
		p := r.Float64()
		var c Candidates
		c.Reset(logits)
		TopP(float32(p)).Apply(&c)
		ref := sortedRef(logits)
		lo, hi := nucleus(ref, float64(float32(p)), 1-1e-6), nucleus(ref, float64(float32(p)), 1+1e-6)
		require.True(t, c.Sorted)
		require.GreaterOrEqual(t, len(c.Tokens), lo, "n=%d p=%v", n, p)
		require.LessOrEqual(t, len(c.Tokens), hi, "n=%d p=%v", n, p)
		require.Equal(t, ids(ref[:len(c.Tokens)]), ids(c.Tokens))
	}
}

func TestMinPMatchesReference(t *testing.T) {
	r := newRand(t)
	for range 200 {
		logits := randLogits(r, 1+r.IntN(3000))
		p := r.Float32()
		var c Candidates
		c.Reset(logits)
		MinP(p).Apply(&c)
		m := slices.Max(logits)
		var want []int32
		for i, l := range logits {
			if math.Exp(float64(l-m)) >= float64(p)*(1+1e-6) {
				want = append(want, int32(i))
			}
		}
		got := ids(c.Tokens)
		for _, id := range want {
			require.Contains(t, got, id)
		}
		for _, id := range got {
			require.GreaterOrEqual(t, math.Exp(float64(logits[id]-m)), float64(p)*(1-1e-6))
		}
	}
}

// TestNeverExcluded draws through the full chain and checks every token
// is one the truncations allow.
func TestNeverExcluded(t *testing.T) {
	r := newRand(t)
	for range 100 {
		n := 2 + r.IntN(2000)
		logits := randLogits(r, n)
		o := Options{Temperature: 0.2 + 1.5*r.Float32(), Seed: r.Uint64()}
		switch r.IntN(3) {
		case 0:
			o.TopK = 1 + r.IntN(n)
		case 1:
			o.TopP = r.Float32()
		case 2:
			o.MinP = r.Float32()
		}
		s, err := New(o)
		require.NoError(t, err)
		scaled := make([]float32, n)
		for i := range logits {
			scaled[i] = logits[i] / o.Temperature
		}
		ref := sortedRef(scaled)
		allowed := map[int32]bool{}
		switch {
		case o.TopK > 0:
			for _, tok := range ref[:o.TopK] {
				allowed[tok.ID] = true
			}
		case o.TopP > 0:
			for _, tok := range ref[:nucleus(ref, float64(o.TopP), 1+1e-6)] {
				allowed[tok.ID] = true
			}
		default:
			for _, tok := range ref {
				if math.Exp(float64(tok.Logit-ref[0].Logit)) >= float64(o.MinP)*(1-1e-6) {
					allowed[tok.ID] = true
				}
			}
		}
		for range 50 {
			id := s.Sample(logits)
			require.True(t, allowed[id], "id %d excluded by %+v", id, o)
		}
	}
}

// chiSquare returns Pearson's statistic of counts against probabilities.
func chiSquare(counts []int, probs []float64, draws int) float64 {
	var x float64
	for i, p := range probs {
		e := p * float64(draws)
		d := float64(counts[i]) - e
		x += d * d / e
	}
	return x
}

// chiCritical is the Wilson–Hilferty approximation of the chi-square
// quantile for df degrees of freedom at standard normal quantile z.
func chiCritical(df int, z float64) float64 {
	k := float64(df)
	a := 2 / (9 * k)
	return k * math.Pow(1-a+z*math.Sqrt(a), 3)
}

func TestTemperatureMatchesSoftmax(t *testing.T) {
	r := newRand(t)
	const n, draws, temp = 24, 200000, 0.7
	logits := make([]float32, n)
	for i := range logits {
		logits[i] = float32(r.NormFloat64())
	}
	softmax := func(tt float64) []float64 {
		p := make([]float64, n)
		var s float64
		for i, l := range logits {
			p[i] = math.Exp(float64(l) / tt)
			s += p[i]
		}
		for i := range p {
			p[i] /= s
		}
		return p
	}
	s, err := New(Options{Temperature: temp, Seed: r.Uint64()})
	require.NoError(t, err)
	counts := make([]int, n)
	for range draws {
		counts[s.Sample(logits)]++
	}
	crit := chiCritical(n-1, 4.75) // p ≈ 1e-6
	x := chiSquare(counts, softmax(temp), draws)
	require.Less(t, x, crit, "chi-square %.1f against softmax at T=%v", x, temp)
	// The test can fail: the same counts are far from the softmax of a
	// neighbouring temperature.
	require.Greater(t, chiSquare(counts, softmax(1.0), draws), crit)
}

func TestSeedReproduces(t *testing.T) {
	r := newRand(t)
	rows := make([][]float32, 50)
	for i := range rows {
		rows[i] = randLogits(r, 1000)
	}
	o := Options{Temperature: 1.3, TopP: 0.95, TopK: 200, RepeatPenalty: 1.1, Seed: r.Uint64()}
	run := func(o Options) []int32 {
		s, err := New(o)
		require.NoError(t, err)
		var out []int32
		for _, row := range rows {
			id := s.Sample(row)
			s.Accept(id)
			out = append(out, id)
		}
		return out
	}
	a := run(o)
	require.Equal(t, a, run(o))
	o.Seed++
	require.NotEqual(t, a, run(o), "a different seed should give a different sequence")
}

func TestGreedy(t *testing.T) {
	s, err := New(Options{})
	require.NoError(t, err)
	nan := float32(math.NaN())
	require.Equal(t, int32(2), s.Sample([]float32{1, nan, 3, 3, -1}))
	require.Equal(t, int32(1), s.Sample([]float32{nan, 0}))
	require.Equal(t, int32(-1), s.Sample(nil))
	// Bias applies to greedy selection too.
	s, err = New(Options{LogitBias: map[int32]float32{2: float32(math.Inf(-1)), 99: 5}})
	require.NoError(t, err)
	require.Equal(t, int32(3), s.Sample([]float32{1, 0, 3, 3, -1}))
}

func TestPenalties(t *testing.T) {
	h := NewHistory(3)
	for _, id := range []int32{7, 1, 1, 2} { // 7 falls out of the window
		h.Add(id)
	}
	require.Equal(t, 0, h.Count(7))
	require.Equal(t, 2, h.Count(1))
	var c Candidates
	c.Reset([]float32{1, 2, -2, 4, 5, 6, 7, 8})
	Penalties(h, 2, 0.5, 0.25).Apply(&c)
	require.Equal(t, float32(2/2.0-0.5-2*0.25), c.Tokens[1].Logit)
	require.Equal(t, float32(-2*2.0-0.5-0.25), c.Tokens[2].Logit)
	require.Equal(t, float32(8), c.Tokens[7].Logit)
	require.Equal(t, float32(1), c.Tokens[0].Logit)

	// Through a Sampler: a repeated token loses to its rival.
	s, err := New(Options{RepeatPenalty: 1.5})
	require.NoError(t, err)
	s.Accept(0)
	require.Equal(t, int32(1), s.Sample([]float32{3, 2.5}))
}

func TestBanAll(t *testing.T) {
	inf := float32(math.Inf(-1))
	s, err := New(Options{Temperature: 1, TopP: 0.5, MinP: 0.1, LogitBias: map[int32]float32{0: inf, 1: inf}})
	require.NoError(t, err)
	id := s.Sample([]float32{1, 2})
	require.True(t, id == 0 || id == 1)
	id = s.Sample([]float32{1, 2, 0})
	require.Equal(t, int32(2), id)
}

func TestValidate(t *testing.T) {
	for _, o := range []Options{
		{Temperature: -1},
		{Temperature: float32(math.NaN())},
		{TopK: -1},
		{TopP: 1.5},
		{MinP: -0.1},
		{RepeatPenalty: -1},
		{RepeatLastN: -2},
		{FrequencyPenalty: float32(math.Inf(1))},
		{LogitBias: map[int32]float32{1: float32(math.Inf(1))}},
	} {
		_, err := New(o)
		require.ErrorIs(t, err, ErrOptions, "%+v", o)
	}
}

func TestExpNeg(t *testing.T) {
	r := newRand(t)
	for range 100000 {
		x := -float32(r.Float64() * 87)
		want := math.Exp(float64(x))
		require.InEpsilon(t, want, float64(expNeg(x)), 2e-7, "x=%v", x)
	}
	require.Equal(t, float32(1), expNeg(0))
	require.Zero(t, expNeg(float32(math.Inf(-1))))
	require.Zero(t, expNeg(-200))
}

func TestTopHeap(t *testing.T) {
	r := newRand(t)
	for range 100 {
		logits := randLogits(r, 1+r.IntN(2000))
		k := r.IntN(50)
		got := Top(make([]Token, k), logits)
		ref := sortedRef(logits)
		require.Equal(t, ids(ref[:min(k, len(ref))]), ids(got))
	}
	require.Equal(t, float32(math.Log(math.Exp(1)+math.Exp(2))), LogSumExp([]float32{1, 2}))
}

func TestSampleAllocatesNothing(t *testing.T) {
	r := newRand(t)
	logits := randLogits(r, 32000)
	s, err := New(Options{Temperature: 0.8, TopK: 40, TopP: 0.9, MinP: 0.05, RepeatPenalty: 1.1,
		PresencePenalty: 0.1, FrequencyPenalty: 0.1, LogitBias: map[int32]float32{5: 1}, Seed: 1})
	require.NoError(t, err)
	for i := range 100 {
		s.Accept(int32(i))
	}
	s.Sample(logits)
	allocs := testing.AllocsPerRun(50, func() { s.Accept(s.Sample(logits)) })
	require.Zero(t, allocs)
}

func benchSample(b *testing.B, o Options) {
	const vocab = 128256
	r := rand.New(rand.NewPCG(1, 2))
	logits := randLogits(r, vocab)
	s, err := New(o)
	require.NoError(b, err)
	for i := range 64 {
		s.Accept(int32(i * 97))
	}
	b.SetBytes(4 * vocab)
	b.ResetTimer()
	for range b.N {
		s.Sample(logits)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
}

func BenchmarkGreedy128k(b *testing.B) { benchSample(b, Options{}) }
func BenchmarkTopK40_128k(b *testing.B) {
	benchSample(b, Options{Temperature: 0.8, TopK: 40})
}
func BenchmarkTopP09_128k(b *testing.B) {
	benchSample(b, Options{Temperature: 0.8, TopP: 0.9})
}
func BenchmarkMinP005_128k(b *testing.B) {
	benchSample(b, Options{Temperature: 0.8, MinP: 0.05})
}
func BenchmarkChain128k(b *testing.B) {
	benchSample(b, Options{Temperature: 0.8, TopK: 40, TopP: 0.9, MinP: 0.05, RepeatPenalty: 1.1})
}
