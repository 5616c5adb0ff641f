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
	texts []string // each token's bytes

	// Masks by automaton state: inside a long string every step asks the
	// same.
	mu          sync.Mutex
	jsonCache   map[JSON]allowed
	schemaCache map[State]allowed
}

// automaton is a byte automaton (*JSON, *State).
type automaton[S any] interface {
	*S
	Feed(b byte) bool
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
	v := &Vocab{nodes: []node{{}}, size: len(texts), texts: texts}
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

// TokenTexts is what NewVocabOf reads: a tokenizer's size and the bytes
// each token adds to a text.
type TokenTexts interface {
	VocabSize() int
	Text(id int32) string
}

// NewVocabOf builds the trie of a tokenizer's tokens.
func NewVocabOf(tok TokenTexts) *Vocab {
	texts := make([]string, tok.VocabSize())
	for id := range texts {
		texts[id] = tok.Text(int32(id))
	}
	return NewVocab(texts)
}

// Size is the number of tokens (the length Allow's mask needs).
func (v *Vocab) Size() int { return v.size }

// Allow sets allow[id] (len(allow) ≥ Size) to whether feeding token id's
// bytes to a copy of j leaves a prefix of an allowed text, and returns how
// many tokens it allowed.
func (v *Vocab) Allow(j JSON, allow []bool) int {
	return allowFrom(v, &v.jsonCache, j, allow, v.walkJSON)
}

// AllowSchema is Allow for a schema's State.
func (v *Vocab) AllowSchema(s State, allow []bool) int {
	return allowFrom(v, &v.schemaCache, s, allow, v.walkState)
}

// allowFrom returns the cached mask of state s, or walks the trie for it.
func allowFrom[S comparable](v *Vocab, cache *map[S]allowed, s S, allow []bool, walk func(int32, S, []bool) int) int {
	v.mu.Lock()
	if a, ok := (*cache)[s]; ok {
		v.mu.Unlock()
		copy(allow, a.mask)
		return a.count
	}
	v.mu.Unlock()
	clear(allow[:v.size])
	n := walk(0, s, allow)
	v.mu.Lock()
	if *cache == nil || len(*cache) >= maxCached {
		*cache = map[S]allowed{}
	}
	(*cache)[s] = allowed{slices.Clone(allow[:v.size]), n}
	v.mu.Unlock()
	return n
}

// walkJSON and walkState allow the tokens below trie node n that state
// s accepts. They are two copies of one loop, not one generic function: a
// method called through a type parameter makes each copied state escape to
// the heap, which measured 2.5 to 12 times slower.
func (v *Vocab) walkJSON(n int32, s JSON, allow []bool) int {
	count := 0
	for _, k := range v.nodes[n].kids {
		t := s
		if t.Feed(k.b) {
			count += v.allowIDs(k.node, allow) + v.walkJSON(k.node, t, allow)
		}
	}
	return count
}

func (v *Vocab) walkState(n int32, s State, allow []bool) int {
	count := 0
	for _, k := range v.nodes[n].kids {
		t := s
		if t.Feed(k.b) {
			count += v.allowIDs(k.node, allow) + v.walkState(k.node, t, allow)
		}
	}
	return count
}

// allowIDs allows the tokens that end at trie node n.
func (v *Vocab) allowIDs(n int32, allow []bool) int {
	for _, id := range v.nodes[n].ids {
		allow[id] = true
	}
	return len(v.nodes[n].ids)
}

// Tokens is a JSON automaton that follows a generation token by token: the
// generate.Constraint of OpenAI's response_format json_object.
type Tokens struct {
	v    *Vocab
	j    JSON
	dead bool
}

// NewTokens starts a JSON object constraint over a vocabulary.
func NewTokens(v *Vocab) *Tokens { return &Tokens{v: v} }

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
func (t *Tokens) Accept(id int32) { t.dead = t.dead || !accept(&t.j, t.v.texts, id) }

// Done reports whether the text so far is a whole JSON object.
func (t *Tokens) Done() bool { return !t.dead && t.j.Done() }

// accept feeds token id's text to s, reporting whether it stays allowed.
func accept[S any, P automaton[S]](s P, texts []string, id int32) bool {
	if id < 0 || int(id) >= len(texts) {
		return false
	}
	text := texts[id]
	for i := range len(text) {
		if !s.Feed(text[i]) {
			return false
		}
	}
	return true
}

// SchemaTokens is a Schema's State following a generation token by token:
// the generate.Constraint of OpenAI's response_format json_schema.
type SchemaTokens struct {
	v    *Vocab
	s    State
	dead bool
}

// NewSchemaTokens starts an instance of schema over a vocabulary.
func NewSchemaTokens(v *Vocab, schema *Schema) *SchemaTokens {
	return &SchemaTokens{v: v, s: schema.Start()}
}

// Allow sets allow[id] for the tokens that may come next and reports how
// many there are.
func (t *SchemaTokens) Allow(allow []bool) int {
	if t.dead {
		clear(allow)
		return 0
	}
	return t.v.AllowSchema(t.s, allow)
}

// Accept feeds token id's bytes.
func (t *SchemaTokens) Accept(id int32) { t.dead = t.dead || !accept(&t.s, t.v.texts, id) }

// Done reports whether the text so far is a whole instance of the schema.
func (t *SchemaTokens) Done() bool { return !t.dead && t.s.Done() }

// Constraint is what a generation asks of a constraint (the methods of
// runtime/generate.Constraint): Tokens, SchemaTokens and Prefixed have
// them.
type Constraint interface {
	Allow(allow []bool) int
	Accept(id int32)
	Done() bool
}

// Prefixed is a constraint in two parts: the tokens of prefix, in order,
// then whatever inner allows (a tool call's opening marker, then its
// JSON). Forcing token ids rather than text keeps special tokens such as
// <tool_call> whole.
type Prefixed struct {
	prefix []int32
	inner  Constraint
	pos    int // tokens of prefix accepted
	dead   bool
}

// NewPrefixed returns the constraint prefix, then inner.
func NewPrefixed(prefix []int32, inner Constraint) *Prefixed {
	return &Prefixed{prefix: prefix, inner: inner}
}

// Allow sets allow[id] for the tokens that may come next and reports how
// many there are.
func (q *Prefixed) Allow(allow []bool) int {
	switch {
	case q.dead:
		clear(allow)
		return 0
	case q.pos == len(q.prefix):
		return q.inner.Allow(allow)
	}
	clear(allow)
	if id := q.prefix[q.pos]; id >= 0 && int(id) < len(allow) {
		allow[id] = true
		return 1
	}
	return 0
}

// Accept records the token generated.
func (q *Prefixed) Accept(id int32) {
	switch {
	case q.dead:
	case q.pos == len(q.prefix):
		q.inner.Accept(id)
	case id != q.prefix[q.pos]:
		q.dead = true
	default:
		q.pos++
	}
}

// Done reports whether the prefix is written and inner is done.
func (q *Prefixed) Done() bool { return !q.dead && q.pos == len(q.prefix) && q.inner.Done() }
