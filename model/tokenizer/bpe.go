package tokenizer

import "unicode/utf8"

// The merge loop. A word starts as one symbol per byte (byte-level BPE) or
// per character; symbols form a doubly linked list in a slice. A short word
// finds its best pair by scanning. In a longer one every adjacent pair that
// some merge rule applies to sits in a binary heap ordered by (rank,
// position). Popping the best pair merges the right
// symbol into the left one and pushes the two new pairs around it. Heap
// entries are not removed when a merge invalidates them: a popped entry is
// used only if its two symbols are still adjacent with the ids it recorded.
// Each merge removes a symbol, so a word of n symbols takes at most n-1
// merges and O(n) pushes: O(n log n) in all.

// symbol is one element of the word being merged.
type symbol struct {
	start      int32 // byte offset in the word; the symbol ends where next starts
	id         int32 // token id, a pseudo id >= vocabulary size, or -1
	prev, next int32 // neighbours, -1 at the ends
}

// candidate is a pair of adjacent symbols a merge rule applies to.
type candidate struct {
	rank     int32
	left     int32 // index of the left symbol; orders equal ranks left to right
	idL, idR int32 // the symbols' ids when pushed, to detect stale entries
	id       int32 // the token the merge forms
}

// span is a word's byte range in the text being pre-tokenized.
type span struct{ start, end int }

// bpeState is per-call scratch memory, pooled so Encode allocates little.
type bpeState struct {
	syms  []symbol
	heap  []candidate
	spans []span
}

func less(a, b candidate) bool {
	return a.rank < b.rank || (a.rank == b.rank && a.left < b.left)
}

func (st *bpeState) push(c candidate) {
	h := append(st.heap, c)
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !less(h[i], h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
	st.heap = h
}

func (st *bpeState) pop() candidate {
	h := st.heap
	top := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h = h[:n]
	st.down(h, 0)
	st.heap = h
	return top
}

func (st *bpeState) down(h []candidate, i int) {
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && less(h[r], h[l]) {
			m = r
		}
		if !less(h[m], h[i]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
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
			h = append(h, candidate{rank: m.rank, left: int32(i), idL: syms[i].id, idR: syms[i+1].id, id: m.id})
		}
	}
	for i := len(h)/2 - 1; i >= 0; i-- {
		st.down(h, i)
	}
	st.heap = h

	for len(st.heap) > 0 {
		c := st.pop()
		l := &syms[c.left]
		if l.id != c.idL || l.next < 0 {
			continue
		}
		ri := l.next
		r := &syms[ri]
		if r.id != c.idR {
			continue
		}
		l.id = c.id
		l.next = r.next
		if r.next >= 0 {
			syms[r.next].prev = c.left
		}
		r.id = -1
		r.prev, r.next = -1, -1
		if l.prev >= 0 {
			p := &syms[l.prev]
			if m2, ok := t.rule(p.id, l.id); ok {
				st.push(candidate{rank: m2.rank, left: l.prev, idL: p.id, idR: l.id, id: m2.id})
			}
		}
		if l.next >= 0 {
			n := &syms[l.next]
			if m2, ok := t.rule(l.id, n.id); ok {
				st.push(candidate{rank: m2.rank, left: c.left, idL: l.id, idR: n.id, id: m2.id})
			}
		}
	}
}
