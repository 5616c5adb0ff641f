// Package sample turns a model's logits into the next token id, on the host,
// for every backend: the same seed and the same logits give the same token
// whether the logits came from the CPU or a GPU.
//
// A sampling step is a chain of small transforms over a candidate list
// (Candidates), followed by a selection:
//
//	logit bias → repetition/presence/frequency penalties → temperature
//	→ top-k → top-p → min-p → select (greedy, or a draw from the softmax)
//
// Temperature comes before the truncations, as in Hugging Face transformers
// and vLLM, so top-p and min-p see the distribution that is sampled. A
// temperature of 0 selects greedily: the largest logit after bias and
// penalties, the smallest id on ties (the rule backend.ArgMaxer follows).
//
// Each transform is usable on its own (see Transform); Sampler composes
// them from Options and owns the buffers, so a step allocates nothing once
// the first step has sized them. Truncations never sort the whole
// vocabulary: top-k selects the k largest in linear time and sorts only
// those, and top-p widens a partial selection until it holds the requested
// probability mass.
//
// The softmax of a draw, top-p's probability mass and ArgMax run on the
// vectorised kernels of cpu/vec (ExpSum, ArgMax). Two common chains skip
// the candidate list: temperature alone draws straight from the logits,
// and temperature then top-k selects the k best straight from them; both
// use the same float32 operations as the whole chain, so they pick the
// same token (TestPlainDraw, TestTopDraw). With a 128k vocabulary, one
// row costs about 8 µs greedy, 185 µs at a temperature, 130 µs with top-k
// and top-p (2-vCPU development VM; BenchmarkDraw in runtime/sched).
//
// Draws use one math/rand/v2 PCG generator per Sampler (one per request),
// seeded from Options.Seed, so a run is reproducible.
package sample

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// ErrOptions reports sampling options out of their valid range.
var ErrOptions = errors.New("invalid sampling options")

// DefaultRepeatLastN is the number of recent tokens the penalties consider
// when Options.RepeatLastN is 0 (llama.cpp's default).
const DefaultRepeatLastN = 64

// Options selects the transforms of a Sampler. The zero value is greedy
// decoding with no penalties.
type Options struct {
	// Temperature divides the logits; 0 selects greedily.
	Temperature float32
	// TopK keeps the K most likely tokens; 0 keeps all.
	TopK int
	// TopP keeps the smallest set of most likely tokens whose probability
	// reaches TopP; 0 or 1 keeps all.
	TopP float32
	// MinP drops tokens whose probability is below MinP times the most
	// likely token's; 0 keeps all.
	MinP float32
	// RepeatPenalty (> 0; 1 or 0 is off) divides positive logits and
	// multiplies negative ones of tokens seen in the last RepeatLastN
	// tokens, as in llama.cpp and the CTRL paper.
	RepeatPenalty float32
	// RepeatLastN is the window of recent tokens the three penalties
	// consider: 0 means DefaultRepeatLastN, -1 every token accepted.
	RepeatLastN int
	// PresencePenalty is subtracted once from the logit of every token in
	// the window; FrequencyPenalty once per occurrence (OpenAI's
	// definitions).
	PresencePenalty  float32
	FrequencyPenalty float32
	// LogitBias adds a value to the logit of a token id; -Inf bans it.
	// Ids outside the vocabulary are ignored.
	LogitBias map[int32]float32
	// Seed seeds the generator of random draws.
	Seed uint64
}

// Validate reports options out of range, wrapping ErrOptions.
func (o Options) Validate() error {
	bad := func(name string, v any, want string) error {
		return fmt.Errorf("%w: %s is %v, want %s", ErrOptions, name, v, want)
	}
	f := func(v float32) bool { return math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) }
	switch {
	case f(o.Temperature) || o.Temperature < 0:
		return bad("temperature", o.Temperature, "a finite value ≥ 0")
	case o.TopK < 0:
		return bad("top-k", o.TopK, "≥ 0")
	case f(o.TopP) || o.TopP < 0 || o.TopP > 1:
		return bad("top-p", o.TopP, "a value in [0, 1]")
	case f(o.MinP) || o.MinP < 0 || o.MinP > 1:
		return bad("min-p", o.MinP, "a value in [0, 1]")
	case f(o.RepeatPenalty) || o.RepeatPenalty < 0:
		return bad("repeat penalty", o.RepeatPenalty, "a finite value > 0")
	case o.RepeatLastN < -1:
		return bad("repeat window", o.RepeatLastN, "≥ -1")
	case f(o.PresencePenalty):
		return bad("presence penalty", o.PresencePenalty, "a finite value")
	case f(o.FrequencyPenalty):
		return bad("frequency penalty", o.FrequencyPenalty, "a finite value")
	}
	for id, v := range o.LogitBias {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 1) {
			return bad(fmt.Sprintf("logit bias of token %d", id), v, "a number or -Inf")
		}
	}
	return nil
}

// Greedy reports whether the options select the most likely token.
func (o Options) Greedy() bool { return o.Temperature == 0 }

// Sampler selects tokens from logits with the transforms Options names. It
// keeps the history the penalties need (see Accept) and its own random
// generator, so use one Sampler per sequence. It is not safe for
// concurrent use.
type Sampler struct {
	greedy     bool
	transforms []Transform
	history    *History
	rng        *rand.Rand
	cands      Candidates

	// plain: the only transform is a temperature (or none): Sample draws
	// straight from the logits (drawScaled), with the same arithmetic as
	// Reset, Temperature and Draw, so the same token, without building
	// the candidate list.
	plain bool
	scale bool    // multiply by inv (a temperature other than 1)
	inv   float32 // 1 / temperature (1 when there is none)

	// top: the chain starts with an optional temperature and top-k (no
	// bias, no penalties): Sample selects the top candidates straight
	// from the scaled logits (Candidates.resetTop) and applies rest, the
	// transforms after top-k, with the same arithmetic and so the same
	// token as the whole chain, without a candidate per vocabulary entry.
	top  int
	rest []Transform
}

// New returns a Sampler for the options.
func New(o Options) (*Sampler, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	s := &Sampler{greedy: o.Greedy(), rng: rand.New(rand.NewPCG(o.Seed, 0x9e3779b97f4a7c15))}
	if len(o.LogitBias) > 0 {
		s.transforms = append(s.transforms, LogitBias(o.LogitBias))
	}
	rp := o.RepeatPenalty
	if rp == 0 {
		rp = 1
	}
	if rp != 1 || o.PresencePenalty != 0 || o.FrequencyPenalty != 0 {
		n := o.RepeatLastN
		if n == 0 {
			n = DefaultRepeatLastN
		}
		s.history = NewHistory(n)
		s.transforms = append(s.transforms, Penalties(s.history, rp, o.PresencePenalty, o.FrequencyPenalty))
	}
	if !s.greedy {
		if o.Temperature != 1 {
			s.transforms = append(s.transforms, Temperature(o.Temperature))
		}
		if o.TopK > 0 {
			s.transforms = append(s.transforms, TopK(o.TopK))
		}
		if o.TopP > 0 && o.TopP < 1 {
			s.transforms = append(s.transforms, TopP(o.TopP))
		}
		if o.MinP > 0 {
			s.transforms = append(s.transforms, MinP(o.MinP))
		}
		s.inv = 1
		if o.Temperature != 1 {
			s.inv = 1 / float32(temperature(o.Temperature))
		}
		if o.TopK > 0 && s.history == nil && len(o.LogitBias) == 0 {
			s.top = o.TopK
			for i, t := range s.transforms {
				if _, ok := t.(topK); ok {
					s.rest = s.transforms[i+1:]
				}
			}
		}
		switch {
		case len(s.transforms) == 0:
			s.plain = true
		case len(s.transforms) == 1 && o.Temperature != 1 && s.history == nil && len(o.LogitBias) == 0:
			if t, ok := s.transforms[0].(temperature); ok {
				s.plain, s.scale, s.inv = true, true, 1/float32(t)
			}
		}
	}
	return s, nil
}

// Accept records a token of the sequence (prompt tokens and generated
// ones) for the penalties.
func (s *Sampler) Accept(id int32) {
	if s.history != nil {
		s.history.Add(id)
	}
}

// Sample returns the next token for a row of logits (one per vocabulary
// entry; NaN counts as -Inf). It does not record the token: call Accept.
// logits is not modified. Sample returns -1 only for an empty row.
func (s *Sampler) Sample(logits []float32) int32 {
	if len(logits) == 0 {
		return -1
	}
	if s.greedy && len(s.transforms) == 0 {
		return ArgMax(logits)
	}
	if s.plain {
		if id, ok := s.cands.drawScaled(logits, s.scale, s.inv, s.rng.Float64()); ok {
			return id
		}
		// Every logit is -Inf or NaN: the general path's ArgMax (the rng
		// has advanced as Draw's call would have advanced it).
		c := &s.cands
		c.Reset(logits)
		for _, t := range s.transforms {
			t.Apply(c)
		}
		return c.ArgMax()
	}
	c := &s.cands
	if s.top > 0 && s.top*8 <= len(logits) {
		c.resetTop(logits, s.inv, s.top)
		for _, t := range s.rest {
			t.Apply(c)
		}
		return c.Draw(s.rng.Float64())
	}
	c.Reset(logits)
	for _, t := range s.transforms {
		t.Apply(c)
	}
	if s.greedy {
		return c.ArgMax()
	}
	return c.Draw(s.rng.Float64())
}
