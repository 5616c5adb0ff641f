package tokenizer

import "unicode/utf8"

// The merge loop. A word starts as one symbol per byte (byte-level BPE) or
// per character; symbols form a doubly linked list in a slice. A short word
// finds its best pair by scanning. A longer one keeps a candidate for every
// adjacent pair that some merge rule applies to in a 4-ary heap, keyed by
// (rank, position of the left symbol). Popping the best candidate merges the
// right symbol into the left one and pushes the two new pairs around it.
// Candidates are not removed when a merge invalidates them: a popped one is
// used only if the pair now at its position still has its rank, which makes
// it the best pair (ranks order the rules; equal ranks go left to right).
// Each merge removes a symbol, so a word of n symbols takes at most n-1
// merges and O(n) pushes: O(n log n) in all.

// symbol is one element of the word being merged.
type symbol struct {
	start      int32 // byte offset in the word; the symbol ends where next starts
	id         int32 // token id, a pseudo id >= vocabulary size, or -1
	prev, next int32 // neighbours, -1 at the ends
}

// A candidate is a pair of adjacent symbols a merge rule applies to: the
// rule's rank in the high 32 bits, the left symbol's index in the low ones,
// so that comparing candidates is comparing integers.
type candidate uint64

func newCandidate(rank, left int32) candidate {
	return candidate(uint64(rank)<<32 | uint64(uint32(left)))
}

func (c candidate) rank() int32 { return int32(c >> 32) }
func (c candidate) left() int32 { return int32(uint32(c)) }

// span is a word's byte range in the text being pre-tokenized.
type span struct{ start, end int }

// bpeState is per-call scratch memory, pooled so Encode allocates little.
type bpeState struct {
	syms  []symbol
	heap  []candidate
	spans []span
}

// heapArity is the heap's branching factor: four children share a cache
// line, which halves the depth of a binary heap for the same cost per level.
const heapArity = 4

func (st *bpeState) push(c candidate) {
	h := append(st.heap, c)
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / heapArity
		if h[p] <= c {
			break
		}
		h[i] = h[p]
		i = p
	}
	h[i] = c
	st.heap = h
}

func (st *bpeState) pop() candidate {
	h := st.heap
	top := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h = h[:n]
	down(h, 0)
	st.heap = h
	return top
}

// down restores the heap order below h[i].
func down(h []candidate, i int) {
	n := len(h)
	if n == 0 {
		return
	}
	c := h[i]
	for {
		first := heapArity*i + 1
		if first >= n {
			break
		}
		m := first
		for k := first + 1; k < first+heapArity && k < n; k++ {
			if h[k] < h[m] {
				m = k
			}
		}
		if h[m] >= c {
			break
		}
		h[i] = h[m]
		i = m
	}
	h[i] = c
}

// rule returns the merge rule for the pair of token ids l, r.
func (t *Tokenizer) rule(l, r int32) (merge, bool) {
	if l < 0 || r < 0 {
		return merge{}, false
	}
	m, ok := t.merges[pairKey(l, r)]
	return m, ok
}

// charID returns the token (or pseudo) id of the character at w[i:] and its
// length in bytes. A byte that does not start a valid UTF-8 sequence is a
// character of its own with no id.
func (t *Tokenizer) charID(w string, i int) (int32, int) {
	if c := w[i]; c < utf8.RuneSelf {
		return t.asciiID[c], 1
	}
	r, size := utf8.DecodeRuneInString(w[i:])
	if r == utf8.RuneError && size == 1 {
		return -1, 1
	}
	if id, ok := t.runeID[r]; ok {
		return id, size
	}
	return -1, size
}

// bpe appends the tokens of word w to out. Words of more than short
// symbols are merged with a heap (short is shortWord except in tests).
func (t *Tokenizer) bpe(st *bpeState, w string, out []int32, short int) []int32 {
	syms := st.syms[:0]
	if t.byteLevel {
		for i := 0; i < len(w); i++ {
			syms = append(syms, symbol{start: int32(i), id: t.byteID[w[i]], prev: int32(i) - 1, next: int32(i) + 1})
		}
	} else {
		for i := 0; i < len(w); {
			id, size := t.charID(w, i)
			n := int32(len(syms))
			syms = append(syms, symbol{start: int32(i), id: id, prev: n - 1, next: n + 1})
			i += size
		}
	}
	syms[len(syms)-1].next = -1
	st.syms = syms
	if len(syms) <= short {
		t.mergeShort(syms)
	} else {
		t.mergeLong(st, syms)
	}

	vocab := int32(len(t.pieces))
	for i := int32(0); i >= 0; i = syms[i].next {
		s := syms[i]
		if s.id >= 0 && s.id < vocab {
			out = append(out, s.id)
			continue
		}
		end := len(w)
		if s.next >= 0 {
			end = int(syms[s.next].start)
		}
		out = t.appendFallback(out, w[s.start:end])
	}
	return out
}

// shortWord is the length up to which a word is merged by scanning its
// pairs for the best one each time: cheaper than a heap for short words,
// and the cost per word stays bounded.
const shortWord = 24

const noRule = 1<<31 - 1

// mergeShort merges a word of at most shortWord symbols.
func (t *Tokenizer) mergeShort(syms []symbol) {
	var rank, id [shortWord]int32
	for i := 0; i+1 < len(syms); i++ {
		rank[i] = noRule
		if m, ok := t.rule(syms[i].id, syms[i+1].id); ok {
			rank[i], id[i] = m.rank, m.id
		}
	}
	rank[len(syms)-1] = noRule
	for {
		best, bestRank := int32(-1), int32(noRule)
		for i := int32(0); i >= 0; i = syms[i].next {
			if rank[i] < bestRank {
				best, bestRank = i, rank[i]
			}
		}
		if best < 0 {
			return
		}
		l := &syms[best]
		r := &syms[l.next]
		l.id = id[best]
		l.next = r.next
		if r.next >= 0 {
			syms[r.next].prev = best
		}
		rank[best] = noRule
		if l.next >= 0 {
			if m, ok := t.rule(l.id, syms[l.next].id); ok {
				rank[best], id[best] = m.rank, m.id
			}
		}
		if p := l.prev; p >= 0 {
			rank[p] = noRule
			if m, ok := t.rule(syms[p].id, l.id); ok {
				rank[p], id[p] = m.rank, m.id
			}
		}
	}
}

// mergeLong merges a word with a heap of candidate pairs.
func (t *Tokenizer) mergeLong(st *bpeState, syms []symbol) {
	h := st.heap[:0]
	for i := 0; i+1 < len(syms); i++ {
		if m, ok := t.rule(syms[i].id, syms[i+1].id); ok {
			h = append(h, newCandidate(m.rank, int32(i)))
		}
	}
	for i := (len(h) - 2) / heapArity; i >= 0; i-- {
		down(h, i)
	}
	st.heap = h

	for len(st.heap) > 0 {
		c := st.pop()
		li := c.left()
		l := &syms[li]
		if l.next < 0 {
			continue
		}
		r := &syms[l.next]
		m, ok := t.rule(l.id, r.id)
		if !ok || m.rank != c.rank() {
			continue // stale: the pair here changed
		}
		l.id = m.id
		l.next = r.next
		if r.next >= 0 {
			syms[r.next].prev = li
		}
		r.id, r.prev, r.next = -1, -1, -1
		if l.prev >= 0 {
			if m2, ok := t.rule(syms[l.prev].id, l.id); ok {
				st.push(newCandidate(m2.rank, l.prev))
			}
		}
		if l.next >= 0 {
			if m2, ok := t.rule(l.id, syms[l.next].id); ok {
				st.push(newCandidate(m2.rank, li))
			}
		}
	}
}
