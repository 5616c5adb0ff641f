package sample

import (
	"math"
	"slices"

	"github.com/loomllm/loom/cpu/vec"
)

// before is the candidate order: larger logit first, smaller id on ties.
// It is a strict total order for distinct ids, so every selection below is
// deterministic whatever the input order.
func before(a, b Token) bool {
	return a.Logit > b.Logit || (a.Logit == b.Logit && a.ID < b.ID)
}

func cmpTokens(a, b Token) int {
	switch {
	case before(a, b):
		return -1
	case before(b, a):
		return 1
	}
	return 0
}

// sortTokens sorts t in candidate order.
func sortTokens(t []Token) { slices.SortFunc(t, cmpTokens) }

// selectTop reorders t so that t[:k] holds its k first candidates in
// candidate order (in no particular order among themselves), in expected
// linear time (quickselect with a median-of-three pivot).
func selectTop(t []Token, k int) {
	lo, hi := 0, len(t)-1
	for lo < hi && k > lo && k <= hi {
		// Median of three to t[hi] as the pivot.
		mid := lo + (hi-lo)/2
		if before(t[mid], t[lo]) {
			t[mid], t[lo] = t[lo], t[mid]
		}
		if before(t[hi], t[lo]) {
			t[hi], t[lo] = t[lo], t[hi]
		}
		if before(t[mid], t[hi]) {
			t[mid], t[hi] = t[hi], t[mid]
		}
		pivot := t[hi]
		s := lo
		for i := lo; i < hi; i++ {
			if before(t[i], pivot) {
				t[i], t[s] = t[s], t[i]
				s++
			}
		}
		t[s], t[hi] = t[hi], t[s]
		// t[lo:s] precede the pivot, now at s; t[s+1:hi+1] follow it.
		switch {
		case s == k || s+1 == k:
			return
		case s > k:
			hi = s - 1
		default:
			lo = s + 1
		}
	}
}

// heapTop reorders t so that t[:k] holds its k first candidates in
// candidate order (in no particular order among themselves), keeping a heap
// of the best k seen in t[:k]: O(n) comparisons when k is small, as most
// candidates lose to the heap's root at once.
func heapTop(t []Token, k int) {
	h := t[:k]
	for i := k/2 - 1; i >= 0; i-- {
		down(h, i)
	}
	for i := k; i < len(t); i++ {
		if before(t[i], h[0]) {
			h[0], t[i] = t[i], h[0]
			down(h, 0)
		}
	}
}

// expNeg returns e^x for x ≤ 0 (0 for -Inf and below the smallest normal
// float32), within 2e-7 relative error: x = n·ln2 + r with |r| ≤ ln2/2,
// e^r by its Taylor polynomial to degree 7, scaled by 2^n through the
// exponent bits. It is about three times faster than math.Exp, which
// matters on 128k-entry vocabularies.
func expNeg(x float32) float32 {
	if x < -87 || x != x {
		return 0
	}
	const (
		log2e = 1.44269504088896341
		ln2hi = 0.693145751953125 // ln 2 with its low bits zero, so n·ln2hi is exact
		ln2lo = 1.42860682030941723212e-6
	)
	n := float32(int32(x*log2e - 0.5))
	r := x - n*ln2hi - n*ln2lo
	p := 1 + r*(1+r*(1.0/2+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720+r*(1.0/5040)))))))
	return p * math.Float32frombits(uint32(int32(n)+127)<<23)
}

// ArgMax returns the index of the largest value (the smallest index among
// equals; NaN never wins), or -1 for an empty slice.
func ArgMax(logits []float32) int32 {
	if len(logits) == 0 {
		return -1
	}
	best, _ := vec.ArgMax(logits) // vectorised; -1 when every value is NaN
	return int32(max(best, 0))
}

// LogSumExp returns log(Σ exp(logits[i])), computed stably; NaN logits
// count as -Inf. log_softmax(logits)[i] is logits[i] - LogSumExp(logits).
func LogSumExp(logits []float32) float32 {
	m := float32(math.Inf(-1))
	for _, v := range logits {
		if v > m {
			m = v
		}
	}
	if math.IsInf(float64(m), 0) {
		return m
	}
	var s float64
	for _, v := range logits {
		if v == v {
			s += math.Exp(float64(v - m))
		}
	}
	return m + float32(math.Log(s))
}

// Top fills dst with the len(dst) largest logits and their ids, in
// candidate order (largest first, smaller id on ties), and returns the
// filled prefix (shorter when there are fewer logits). It keeps a heap of
// len(dst) entries: O(V log k) time and no allocation. Beam search and
// log-probability reports use it.
func Top(dst []Token, logits []float32) []Token {
	k := min(len(dst), len(logits))
	h := dst[:0]
	for i, v := range logits {
		if v != v {
			v = float32(math.Inf(-1))
		}
		t := Token{ID: int32(i), Logit: v}
		if len(h) < k {
			h = append(h, t)
			up(h, len(h)-1)
		} else if k > 0 && before(t, h[0]) {
			h[0] = t
			down(h, 0)
		}
	}
	sortTokens(h)
	return h
}

// up and down maintain a heap whose root is the last candidate in order.
func up(h []Token, i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !before(h[p], h[i]) {
			return
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
}

func down(h []Token, i int) {
	for {
		c := 2*i + 1
		if c >= len(h) {
			return
		}
		if c+1 < len(h) && before(h[c], h[c+1]) {
			c++
		}
		if !before(h[i], h[c]) {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}
