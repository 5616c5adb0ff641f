package sample

import (
	"math"
	"slices"

	"github.com/loomllm/loom/cpu/vec"
)

// Token is a candidate token: its id and its (transformed) logit.
type Token struct {
	ID    int32
	Logit float32
}

// Candidates is the working set of one sampling step: the tokens still in
// the running and their logits. Transforms edit it in place.
type Candidates struct {
	// Tokens are the candidates. After Reset they are the whole
	// vocabulary in id order (Tokens[i].ID == i); truncations shorten it.
	Tokens []Token
	// Sorted reports that Tokens is in descending order of logit (ties:
	// ascending id). Transforms that keep the order keep it set.
	Sorted bool

	probs []float32 // scratch for Draw
}

// Reset fills c with one candidate per logit, reusing c's memory. NaN
// logits become -Inf.
func (c *Candidates) Reset(logits []float32) {
	if cap(c.Tokens) < len(logits) {
		c.Tokens = make([]Token, len(logits))
	}
	c.Tokens = c.Tokens[:len(logits)]
	for i, l := range logits {
		if l != l {
			l = float32(math.Inf(-1))
		}
		c.Tokens[i] = Token{ID: int32(i), Logit: l}
	}
	c.Sorted = false
}

// resetTop is Reset(logits), then Temperature (a multiplication by inv;
// inv 1 is none), then TopK(k): it leaves the k first candidates of the
// scaled logits, sorted, with the same float32 values. It reads the
// logits once, keeping the best k seen in a heap, instead of building a
// candidate per logit. k must be in [1, len(logits)].
func (c *Candidates) resetTop(logits []float32, inv float32, k int) {
	if cap(c.Tokens) < k {
		c.Tokens = make([]Token, k)
	}
	h := c.Tokens[:k]
	for i := range h {
		h[i] = Token{ID: int32(i), Logit: notNaN(logits[i]) * inv}
	}
	for i := k/2 - 1; i >= 0; i-- {
		down(h, i)
	}
	worst := h[0].Logit
	for i := k; i < len(logits); i++ {
		v := notNaN(logits[i]) * inv
		if v <= worst { // a later id loses ties: only larger values enter
			continue
		}
		h[0] = Token{ID: int32(i), Logit: v}
		down(h, 0)
		worst = h[0].Logit
	}
	sortTokens(h)
	c.Tokens, c.Sorted = h, true
}

// find returns the index of the candidate with the given id, or -1. It is
// constant-time while the candidates are the whole vocabulary in order.
func (c *Candidates) find(id int32) int {
	if id < 0 {
		return -1
	}
	if int(id) < len(c.Tokens) && c.Tokens[id].ID == id {
		return int(id)
	}
	for i := range c.Tokens {
		if c.Tokens[i].ID == id {
			return i
		}
	}
	return -1
}

// ArgMax returns the id of the candidate with the largest logit (the
// smallest id among equals), or -1 when there are none.
func (c *Candidates) ArgMax() int32 {
	if len(c.Tokens) == 0 {
		return -1
	}
	if c.Sorted {
		return c.Tokens[0].ID
	}
	best := 0
	for i := 1; i < len(c.Tokens); i++ {
		if before(c.Tokens[i], c.Tokens[best]) {
			best = i
		}
	}
	return c.Tokens[best].ID
}

// Draw picks a candidate with probability softmax(logit), using u, a
// uniform number in [0, 1). If no logit is finite from above (all -Inf),
// or one is +Inf, it returns ArgMax.
func (c *Candidates) Draw(u float64) int32 {
	if len(c.Tokens) == 0 {
		return -1
	}
	probs := c.scratch(len(c.Tokens))
	for i, t := range c.Tokens {
		probs[i] = t.Logit
	}
	sum, ok := numerators(probs, 1)
	if !ok {
		// A NaN logit (penalties or bias on an infinite one) counts as
		// -Inf, as in Reset.
		for i, t := range c.Tokens {
			probs[i] = notNaN(t.Logit)
		}
		if sum, ok = numerators(probs, 1); !ok {
			return c.ArgMax()
		}
	}
	return c.Tokens[pick(probs, sum, u)].ID
}

// drawScaled is Reset(logits), then Temperature (logits times inv, when
// scale), then Draw(u), with the same float32 operations in the same
// order, so it returns the same token; it only skips building the
// candidate list. ok is false where Draw would fall back to ArgMax (no
// logit finite from above, or one +Inf).
func (c *Candidates) drawScaled(logits []float32, scale bool, inv float32, u float64) (id int32, ok bool) {
	if !scale {
		inv = 1
	}
	probs := c.scratch(len(logits))
	copy(probs, logits)
	sum, ok := numerators(probs, inv) // the products Temperature makes
	if !ok {
		for i, l := range logits {
			probs[i] = notNaN(l) * inv
		}
		if sum, ok = numerators(probs, 1); !ok {
			return -1, false
		}
	}
	return int32(pick(probs, sum, u)), true
}

// scratch returns c's probability buffer with n elements.
func (c *Candidates) scratch(n int) []float32 {
	if cap(c.probs) < n {
		c.probs = make([]float32, n)
	}
	return c.probs[:n]
}

// notNaN returns l, or -Inf for NaN.
func notNaN(l float32) float32 {
	if l != l {
		return float32(math.Inf(-1))
	}
	return l
}

// numerators turns probs, logits, into the softmax numerators
// e**(scale·logit - max) in place (vec.ExpSum: vectorised, within 2 ulp
// of vec.Exp, underflow to 0) and returns their sum. ok is false when a
// logit is NaN or the largest is not finite (every logit -Inf, or one
// +Inf); probs is then clobbered.
func numerators(probs []float32, scale float32) (sum float64, ok bool) {
	m, s := vec.ExpSum(probs, scale)
	if math.IsInf(float64(m), 0) || m != m || s != s {
		return 0, false
	}
	return float64(s), true
}

// pick returns the index at which the running sum of probs (numerators,
// the largest 1) first exceeds u·sum, or the last nonzero one when
// rounding leaves u·sum at or past the running total.
func pick(probs []float32, sum, u float64) int {
	target := u * sum
	last := -1
	var acc float64
	for i, p := range probs {
		if p == 0 {
			continue
		}
		acc += float64(p)
		last = i
		if target < acc {
			return i
		}
	}
	return last
}

func (c *Candidates) maxLogit() float32 {
	if c.Sorted {
		return c.Tokens[0].Logit
	}
	m := float32(math.Inf(-1))
	for _, t := range c.Tokens {
		if t.Logit > m {
			m = t.Logit
		}
	}
	return m
}

// Transform is one step of the sampling chain.
type Transform interface {
	// Apply edits the candidates in place.
	Apply(c *Candidates)
}

// LogitBias returns a transform adding bias[id] to the logit of each id
// (-Inf bans the token). Ids that are not candidates are ignored.
func LogitBias(bias map[int32]float32) Transform {
	b := make(logitBias, 0, len(bias))
	for id, v := range bias {
		b = append(b, Token{ID: id, Logit: v})
	}
	slices.SortFunc(b, func(x, y Token) int { return int(x.ID) - int(y.ID) })
	return b
}

type logitBias []Token

func (b logitBias) Apply(c *Candidates) {
	for _, t := range b {
		if i := c.find(t.ID); i >= 0 {
			c.Tokens[i].Logit += t.Logit
		}
	}
	c.Sorted = false
}

// History is a window of the most recent tokens of a sequence, for the
// penalties.
type History struct {
	limit   int     // window length; < 0: unbounded
	ring    []int32 // the window; when full, next is the oldest
	next    int
	scratch []int32 // sorted copy of ring, made by Apply
}

// NewHistory returns an empty window of the last n tokens (n < 0: all).
func NewHistory(n int) *History { return &History{limit: n} }

// Add records a token, forgetting the oldest one when the window is full.
func (h *History) Add(id int32) {
	switch {
	case h.limit < 0 || len(h.ring) < h.limit:
		h.ring = append(h.ring, id)
	case h.limit > 0:
		h.ring[h.next] = id
		h.next = (h.next + 1) % h.limit
	}
}

// Count returns how often id occurs in the window.
func (h *History) Count(id int32) int {
	n := 0
	for _, t := range h.ring {
		if t == id {
			n++
		}
	}
	return n
}

// Penalties returns a transform penalising the tokens in h: a logit l of a
// token seen n > 0 times becomes
//
//	l' = l/repeat (l > 0) or l*repeat (l ≤ 0)
//	l' -= presence + float32(n)*frequency
func Penalties(h *History, repeat, presence, frequency float32) Transform {
	return &penalties{h: h, repeat: repeat, presence: presence, frequency: frequency}
}

type penalties struct {
	h                           *History
	repeat, presence, frequency float32
}

func (p *penalties) Apply(c *Candidates) {
	h := p.h
	h.scratch = append(h.scratch[:0], h.ring...)
	slices.Sort(h.scratch)
	for j := 0; j < len(h.scratch); {
		id, n := h.scratch[j], 1
		for j+n < len(h.scratch) && h.scratch[j+n] == id {
			n++
		}
		j += n
		i := c.find(id)
		if i < 0 {
			continue
		}
		l := c.Tokens[i].Logit
		if l > 0 {
			l /= p.repeat
		} else {
			l *= p.repeat
		}
		c.Tokens[i].Logit = l - p.presence - float32(n)*p.frequency
	}
	c.Sorted = false
}

// Temperature returns a transform dividing every logit by t (> 0).
func Temperature(t float32) Transform { return temperature(t) }

type temperature float32

func (t temperature) Apply(c *Candidates) {
	inv := 1 / float32(t)
	for i := range c.Tokens {
		c.Tokens[i].Logit *= inv
	}
}

// TopK returns a transform keeping the k candidates with the largest
// logits (k ≤ 0 keeps all), sorted. It runs in linear time plus k log k.
func TopK(k int) Transform { return topK(k) }

type topK int

func (k topK) Apply(c *Candidates) {
	n := int(k)
	if n <= 0 || n >= len(c.Tokens) {
		return
	}
	if !c.Sorted {
		if n*8 <= len(c.Tokens) {
			heapTop(c.Tokens, n)
		} else {
			selectTop(c.Tokens, n)
		}
		sortTokens(c.Tokens[:n])
	}
	c.Tokens = c.Tokens[:n]
	c.Sorted = true
}

// TopP returns a transform keeping the smallest set of most likely
// candidates whose probabilities sum to at least p (nucleus sampling).
// The result is sorted. It sorts only the candidates that can be in the
// set: one pass sums the probability mass into buckets by distance from
// the largest logit, which bounds the set; a second gathers those
// candidates, and only they are sorted.
func TopP(p float32) Transform { return topP(p) }

type topP float32

// Buckets of top-p's histogram: logits within bucketsPerUnit·numBuckets of
// the maximum fall into numBuckets buckets of equal width, the rest into
// one more.
const (
	numBuckets     = 256
	bucketsPerUnit = 8
)

func bucket(d float32) int {
	if d >= numBuckets/bucketsPerUnit {
		return numBuckets
	}
	return int(d * bucketsPerUnit)
}

func (p topP) Apply(c *Candidates) {
	if p <= 0 || p >= 1 {
		return
	}
	if len(c.Tokens) < 2 {
		c.Sorted = true // zero or one candidate: sorted, and the whole set
		return
	}
	maxL := c.maxLogit()
	if math.IsInf(float64(maxL), -1) {
		return
	}
	if math.IsInf(float64(maxL), 1) {
		// Infinite logits hold all the probability: the set is them.
		n := 0
		for i, t := range c.Tokens {
			if t.Logit == maxL {
				c.Tokens[i], c.Tokens[n] = c.Tokens[n], t
				n++
			}
		}
		c.Tokens = c.Tokens[:n]
		sortTokens(c.Tokens)
		c.Sorted = true
		return
	}
	// The numerators e**(logit - max), vectorised (no NaN among
	// candidates, and the maximum is finite: ExpSum's max is maxL).
	probs := c.scratch(len(c.Tokens))
	for i, t := range c.Tokens {
		probs[i] = t.Logit
	}
	_, sum := vec.ExpSum(probs, 1)
	var mass [numBuckets + 1]float64
	for i, t := range c.Tokens {
		mass[bucket(maxL-t.Logit)] += float64(probs[i])
	}
	want := float64(p) * float64(sum)
	n := len(c.Tokens)
	if !c.Sorted {
		// The set lies within buckets 0..last.
		last, acc := 0, mass[0]
		for acc < want && last < numBuckets {
			last++
			acc += mass[last]
		}
		n = 0
		for i, t := range c.Tokens {
			// bucket(maxL-t.Logit) <= last, without the conversion
			if last == numBuckets || (maxL-t.Logit)*bucketsPerUnit < float32(last+1) {
				c.Tokens[i], c.Tokens[n] = c.Tokens[n], t
				n++
			}
		}
		sortTokens(c.Tokens[:n])
		c.Sorted = true
	}
	var acc float64
	for i, t := range c.Tokens[:n] {
		acc += float64(vec.Exp(t.Logit - maxL))
		if acc >= want {
			n = i + 1
			break
		}
	}
	c.Tokens = c.Tokens[:n]
}

// MinP returns a transform dropping candidates whose probability is below
// p times the largest probability, i.e. whose logit is below
// max + ln(p). It keeps the order of the rest.
func MinP(p float32) Transform { return minP(p) }

type minP float32

func (p minP) Apply(c *Candidates) {
	if p <= 0 || len(c.Tokens) == 0 {
		return
	}
	maxL := c.maxLogit()
	if math.IsInf(float64(maxL), -1) {
		return
	}
	cut := maxL + float32(math.Log(float64(p)))
	if c.Sorted {
		n := 1
		for n < len(c.Tokens) && c.Tokens[n].Logit >= cut {
			n++
		}
		c.Tokens = c.Tokens[:n]
		return
	}
	n := 0
	for _, t := range c.Tokens {
		if t.Logit >= cut {
			c.Tokens[n] = t
			n++
		}
	}
	c.Tokens = c.Tokens[:n]
}
