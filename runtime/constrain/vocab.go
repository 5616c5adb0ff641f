package constrain

import (
	"slices"
	"sync"
)

// Vocab is a tokenizer's vocabulary as a trie of the tokens' bytes, for
// finding every token an automaton accepts next in one walk: a token is
// tried only if its prefixes were accepted, and tokens that share a prefix
// share its work. It is safe for concurrent use.
type Vocab struct {
	nodes []node
	size  int

	mu    sync.Mutex
	cache map[JSON]allowed // masks by automaton state: inside a long string every step asks the same
}

// allowed is a cached mask and its count.
type allowed struct {
	mask  []bool
	count int
}

// maxCached bounds the cache of masks (each one byte per token).
const maxCached = 256

type node struct {
	kids []kid   // by byte
	ids  []int32 // tokens whose bytes end here
}

type kid struct {
	b    byte
	node int32
}

// NewVocab builds the trie of texts[id], the bytes token id adds to a text
// ("" for tokens that add none, which are never allowed).
func NewVocab(texts []string) *Vocab {
	v := &Vocab{nodes: []node{{}}, size: len(texts)}
	for id, t := range texts {
		if t == "" {
			continue
		}
		n := int32(0)
		for i := range len(t) {
			b := t[i]
			k, ok := slices.BinarySearchFunc(v.nodes[n].kids, b, func(k kid, b byte) int { return int(k.b) - int(b) })
			if !ok {
				v.nodes = append(v.nodes, node{})
				v.nodes[n].kids = slices.Insert(v.nodes[n].kids, k, kid{b, int32(len(v.nodes) - 1)})
			}
			n = v.nodes[n].kids[k].node
		}
		v.nodes[n].ids = append(v.nodes[n].ids, int32(id))
	}
	return v
}

// Size is the number of tokens (the length Allow's mask needs).
func (v *Vocab) Size() int { return v.size }

// Allow sets allow[id] (len(allow) ≥ Size) to whether feeding token id's
// bytes to a copy of j leaves a prefix of an allowed text, and returns how
// many tokens it allowed.
func (v *Vocab) Allow(j JSON, allow []bool) int {
	v.mu.Lock()
	if a, ok := v.cache[j]; ok {
		v.mu.Unlock()
		copy(allow, a.mask)
		return a.count
	}
	v.mu.Unlock()
	clear(allow[:v.size])
	n := v.walk(0, j, allow)
	v.mu.Lock()
	if v.cache == nil || len(v.cache) >= maxCached {
		v.cache = map[JSON]allowed{}
	}
	v.cache[j] = allowed{slices.Clone(allow[:v.size]), n}
	v.mu.Unlock()
	return n
}

func (v *Vocab) walk(n int32, j JSON, allow []bool) int {
	count := 0
	for _, k := range v.nodes[n].kids {
		s := j
		if !s.Feed(k.b) {
			continue
		}
		for _, id := range v.nodes[k.node].ids {
			allow[id] = true
			count++
		}
		count += v.walk(k.node, s, allow)
	}
	return count
}

// Tokens is a JSON automaton that follows a generation token by token: the
// generate.Constraint of OpenAI's response_format json_object.
type Tokens struct {
	v     *Vocab
	texts []string
	j     JSON
	dead  bool
}

// NewTokens starts a JSON object constraint over a vocabulary (texts as
// for NewVocab, v built from them).
func NewTokens(v *Vocab, texts []string) *Tokens { return &Tokens{v: v, texts: texts} }

// Allow sets allow[id] for the tokens that may come next and reports how
// many there are.
func (t *Tokens) Allow(allow []bool) int {
	if t.dead {
		clear(allow)
		return 0
	}
	return t.v.Allow(t.j, allow)
}

// Accept feeds token id's bytes.
func (t *Tokens) Accept(id int32) {
	if id < 0 || int(id) >= len(t.texts) {
		t.dead = true
		return
	}
	s := t.texts[id]
	for i := range len(s) {
		if !t.j.Feed(s[i]) {
			t.dead = true
			return
		}
	}
}

// Done reports whether the text so far is a whole JSON object.
func (t *Tokens) Done() bool { return !t.dead && t.j.Done() }
