// Package kvcache keeps the block tables of a paged key/value cache: which
// fixed-size blocks of one backend.KVCache pool hold which positions of
// which sequence.
//
// The pool has NumBlocks blocks of BlockSize positions each (all layers,
// keys and values). A sequence (Seq) owns a list of blocks, its block
// table: position p lives in block Blocks()[p/BlockSize] at offset
// p%BlockSize. Sequences grow one step at a time (Grow), before the forward
// pass that stores those positions, and give their blocks back when they
// finish (Free), so many sequences of different lengths share one pool
// without fragmentation.
//
// Blocks are reference-counted. Fork makes a second sequence that shares
// every block of the first (beam search; a shared prompt prefix). Stored
// positions are never rewritten, so sharing full blocks is free; the
// partly filled last block is copied on write: the first Grow of a
// sequence whose last block is shared and partly filled moves it to a
// fresh block with backend.Backend.CopyKVBlock, which is queued on the
// backend before the forward pass that writes into it.
//
// Errors: Grow fails with ErrCacheFull when the pool lacks free blocks and
// with ErrSeqFull when the sequence would exceed MaxLen; it then changes
// nothing, so a scheduler can retry the sequence later. Using a sequence
// after Free fails with ErrFreed.
//
// A Cache and its sequences are safe for concurrent use (one mutex), so a
// request handler may free a cancelled sequence while a scheduler plans the
// next step.
package kvcache

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/loomllm/loom/runtime/backend"
)

// Sentinel errors, wrapped with the numbers involved.
var (
	// ErrCacheFull reports that the pool has too few free blocks.
	ErrCacheFull = errors.New("kv cache full")
	// ErrSeqFull reports a sequence that would grow beyond MaxLen.
	ErrSeqFull = errors.New("sequence at the cache's maximum length")
	// ErrFreed reports use of a sequence after Free.
	ErrFreed = errors.New("sequence already freed")
)

// Cache allocates the blocks of a backend.KVCache to sequences.
type Cache struct {
	mu     sync.Mutex
	be     backend.Backend
	kv     backend.KVCache
	spec   backend.KVSpec
	maxLen int
	refs   []int32 // references to each block; 0 = free
	free   []int32 // stack of free blocks

	// Prefix cache (see Publish and Lookup): full blocks of published
	// prompts by the hash of their tokens and all before them; the cache
	// holds one reference to each.
	prefix map[uint64]*prefixEntry
	clock  uint64 // for least-recently-used eviction
}

// prefixEntry is one cached full block: its tokens, the entry of the block
// before it (nil for a sequence's first), and its use.
type prefixEntry struct {
	hash   uint64
	parent *prefixEntry
	kids   []*prefixEntry
	tokens []int32
	block  int32
	used   uint64
}

// New allocates a cache of spec.Blocks blocks on be, for sequences of at
// most maxLen positions (which sets the width of the block table, Width).
func New(be backend.Backend, spec backend.KVSpec, maxLen int) (*Cache, error) {
	if spec.Blocks <= 0 || spec.BlockSize <= 0 || maxLen <= 0 {
		return nil, fmt.Errorf("kvcache: %d blocks of %d positions for sequences of %d: %w",
			spec.Blocks, spec.BlockSize, maxLen, backend.ErrShape)
	}
	kv, err := be.NewKVCache(spec)
	if err != nil {
		return nil, fmt.Errorf("kvcache: %d blocks of %d positions (%d MiB): %w",
			spec.Blocks, spec.BlockSize, int64(spec.Blocks)*int64(spec.BytesPerBlock())>>20, err)
	}
	c := &Cache{be: be, kv: kv, spec: spec, maxLen: maxLen,
		refs: make([]int32, spec.Blocks), free: make([]int32, spec.Blocks)}
	for i := range c.free { // hand out low blocks first
		c.free[i] = int32(spec.Blocks - 1 - i)
	}
	return c, nil
}

// KV is the backend cache the blocks belong to, for Backend.Attention.
func (c *Cache) KV() backend.KVCache { return c.kv }

// Spec is the backend cache's description.
func (c *Cache) Spec() backend.KVSpec { return c.spec }

// BlockSize is the number of positions per block.
func (c *Cache) BlockSize() int { return c.spec.BlockSize }

// NumBlocks is the number of blocks in the pool.
func (c *Cache) NumBlocks() int { return c.spec.Blocks }

// MaxLen is the most positions one sequence may hold.
func (c *Cache) MaxLen() int { return c.maxLen }

// Width is the number of entries of a block-table row: enough blocks for
// MaxLen positions.
func (c *Cache) Width() int { return (c.maxLen + c.spec.BlockSize - 1) / c.spec.BlockSize }

// FreeBlocks is the number of blocks no sequence holds.
func (c *Cache) FreeBlocks() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.free)
}

// CachedBlocks is the number of blocks the prefix cache holds (see
// Publish), and how many of those no sequence uses, which Grow takes back
// when no block is free.
func (c *Cache) CachedBlocks() (held, idle int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.prefix), c.evictable()
}

// Close frees the backend cache. Sequences are unusable afterwards.
func (c *Cache) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.kv != nil {
		c.kv.Free()
		c.kv = nil
	}
}

// Seq is one sequence's block table and length.
type Seq struct {
	c      *Cache
	blocks []int32
	n      int
	freed  bool
}

// NewSeq returns an empty sequence. It holds no blocks until it grows.
func (c *Cache) NewSeq() *Seq {
	return &Seq{c: c, blocks: make([]int32, 0, c.Width())}
}

// Len is the number of positions the sequence holds.
func (s *Seq) Len() int {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.n
}

// Blocks is the block table: Blocks()[i] holds positions [i·B, (i+1)·B).
// The slice is the sequence's own; do not modify it, and copy it before
// the sequence next changes.
func (s *Seq) Blocks() []int32 {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.blocks
}

// FillRow writes the block table into row (len(row) ≥ the blocks held)
// and pads the rest of row with block 0, giving one row of the I32 block
// table Backend.Attention reads.
func (s *Seq) FillRow(row []int32) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	n := copy(row, s.blocks)
	clear(row[n:])
}

// Need returns the number of free blocks Grow(n) would take.
func (s *Seq) Need(n int) int {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.need(n)
}

func (s *Seq) need(n int) int {
	b := s.c.spec.BlockSize
	k := (s.n+n+b-1)/b - len(s.blocks)
	if s.n%b != 0 && n > 0 && s.c.refs[s.blocks[len(s.blocks)-1]] > 1 {
		k++ // copy on write of the shared last block
	}
	return max(k, 0)
}

// Grow extends the sequence by n positions, taking blocks from the pool as
// needed, and returns the first new position. The caller then stores keys
// and values for positions start..start+n-1 (a forward pass). On error
// nothing changes.
func (s *Seq) Grow(n int) (start int, err error) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case s.freed:
		return 0, ErrFreed
	case n < 0:
		return 0, fmt.Errorf("kvcache: grow by %d: %w", n, backend.ErrShape)
	case s.n+n > c.maxLen:
		return 0, fmt.Errorf("kvcache: %d + %d positions exceed %d: %w", s.n, n, c.maxLen, ErrSeqFull)
	}
	if k := s.need(n); k > len(c.free) && k > c.available() { // available scans the prefix cache: only when short
		return 0, fmt.Errorf("kvcache: need %d blocks, %d of %d free: %w", k, c.available(), c.spec.Blocks, ErrCacheFull)
	}
	b := c.spec.BlockSize
	if last := len(s.blocks) - 1; s.n%b != 0 && n > 0 && c.refs[s.blocks[last]] > 1 {
		nb := c.take()
		c.be.CopyKVBlock(c.kv, int(nb), int(s.blocks[last]))
		c.refs[s.blocks[last]]--
		s.blocks[last] = nb
	}
	for len(s.blocks)*b < s.n+n {
		s.blocks = append(s.blocks, c.take())
	}
	start = s.n
	s.n += n
	return start, nil
}

// available is the number of blocks Grow can take: the free ones and the
// cached prefix blocks only the prefix cache holds. The caller holds the
// lock.
func (c *Cache) available() int { return len(c.free) + c.evictable() }

// take pops a free block, evicting a cached prefix block when none is
// free; the caller holds the lock and has checked available.
func (c *Cache) take() int32 {
	if len(c.free) == 0 {
		c.evict()
	}
	id := c.free[len(c.free)-1]
	c.free = c.free[:len(c.free)-1]
	c.refs[id] = 1
	return id
}

// release drops one reference to a block; the caller holds the lock.
func (c *Cache) release(id int32) {
	if c.refs[id]--; c.refs[id] == 0 {
		c.free = append(c.free, id)
	}
}

// Truncate shortens the sequence to n positions (n ≤ Len), giving back
// blocks it no longer needs. Positions n.. are forgotten and may be
// stored again.
func (s *Seq) Truncate(n int) error {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.freed {
		return ErrFreed
	}
	if n < 0 || n > s.n {
		return fmt.Errorf("kvcache: truncate %d positions to %d: %w", s.n, n, backend.ErrShape)
	}
	keep := (n + c.spec.BlockSize - 1) / c.spec.BlockSize
	for _, id := range s.blocks[keep:] {
		c.release(id)
	}
	s.blocks = s.blocks[:keep]
	s.n = n
	return nil
}

// Fork returns a new sequence holding the same positions, sharing every
// block with s. Either may grow independently afterwards.
func (s *Seq) Fork() (*Seq, error) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.freed {
		return nil, ErrFreed
	}
	f := &Seq{c: c, blocks: make([]int32, len(s.blocks), c.Width()), n: s.n}
	copy(f.blocks, s.blocks)
	for _, id := range s.blocks {
		c.refs[id]++
	}
	return f, nil
}

// Free gives the sequence's blocks back to the pool. Freeing twice is
// harmless.
func (s *Seq) Free() {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.freed {
		return
	}
	for _, id := range s.blocks {
		c.release(id)
	}
	s.blocks, s.n, s.freed = nil, 0, true
}

// Prefix caching.
//
// Publish records the full blocks of a sequence's prompt; Lookup starts a
// new sequence on the longest recorded prefix of its prompt, sharing those
// blocks, so their positions need no forward pass. A block's keys and
// values depend on every token before it, so an entry is found by the hash
// of all the tokens up to its end and checked token by token, parent by
// parent. The cache holds one reference to each recorded block; a block
// only the cache holds is taken back, least recently used first, when Grow
// finds no free block. Stored positions are never rewritten (see Fork), so
// sharing them is safe.

// chain returns the hash of a block's tokens after the hash of those
// before it (FNV-1a over the token bytes).
func chain(h uint64, tokens []int32) uint64 {
	for _, t := range tokens {
		for i := 0; i < 32; i += 8 {
			h ^= uint64(byte(uint32(t) >> i))
			h *= 1099511628211
		}
	}
	return h
}

const fnvOffset = 14695981039346656037

// Publish records the full blocks of s that hold tokens, its first
// len(tokens) positions (stored already, or queued on the backend before
// any later step reads them), for Lookup. Blocks recorded before, by s or
// another sequence with the same tokens, are kept as they are.
func (s *Seq) Publish(tokens []int32) error {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.freed {
		return ErrFreed
	}
	if c.prefix == nil {
		c.prefix = map[uint64]*prefixEntry{}
	}
	b := c.spec.BlockSize
	full := min(len(tokens), s.n) / b
	var parent *prefixEntry
	h := uint64(fnvOffset)
	for i := range full {
		tk := tokens[i*b : (i+1)*b]
		h = chain(h, tk)
		c.clock++
		if e := c.prefix[h]; e != nil {
			if e.parent != parent || !slices.Equal(e.tokens, tk) {
				return nil // a hash collision: stop recording here
			}
			e.used = c.clock
			parent = e
			continue
		}
		e := &prefixEntry{hash: h, parent: parent, tokens: append([]int32(nil), tk...), block: s.blocks[i], used: c.clock}
		c.prefix[h] = e
		c.refs[e.block]++
		if parent != nil {
			parent.kids = append(parent.kids, e)
		}
		parent = e
	}
	return nil
}

// Lookup returns a new sequence holding the longest recorded prefix of
// tokens (whole blocks, sharing them; at most len(tokens)−1 positions, so
// the last token is still computed and gives logits) and the number of
// positions it holds: grow it from there. With nothing recorded it is an
// empty sequence and 0.
func (c *Cache) Lookup(tokens []int32) (*Seq, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := &Seq{c: c, blocks: make([]int32, 0, c.Width())}
	if len(c.prefix) == 0 || len(tokens) < 2 {
		return s, 0
	}
	b := c.spec.BlockSize
	var parent *prefixEntry
	h := uint64(fnvOffset)
	for i := range (len(tokens) - 1) / b {
		tk := tokens[i*b : (i+1)*b]
		h = chain(h, tk)
		e := c.prefix[h]
		if e == nil || e.parent != parent || !slices.Equal(e.tokens, tk) {
			break
		}
		c.clock++
		e.used = c.clock
		c.refs[e.block]++
		s.blocks = append(s.blocks, e.block)
		parent = e
	}
	s.n = len(s.blocks) * b
	return s, s.n
}

// evictable counts the recorded blocks no sequence holds (each evict
// frees at least one of them). The caller holds the lock.
func (c *Cache) evictable() int {
	n := 0
	for _, e := range c.prefix {
		if c.refs[e.block] == 1 {
			n++
		}
	}
	return n
}

// evict frees at least one block while evictable is positive: it drops
// the least recently used recorded block that no sequence holds, preferring
// one that no other recorded block follows. Dropping a block also drops
// the recorded blocks after it, which Lookup could no longer reach (their
// blocks stay with the sequences that hold them). The caller holds the
// lock.
func (c *Cache) evict() {
	var leaf, any *prefixEntry
	for _, e := range c.prefix {
		if c.refs[e.block] != 1 {
			continue
		}
		if any == nil || e.used < any.used {
			any = e
		}
		if len(e.kids) == 0 && (leaf == nil || e.used < leaf.used) {
			leaf = e
		}
	}
	if leaf != nil {
		any = leaf
	}
	if any == nil {
		return
	}
	if p := any.parent; p != nil {
		p.kids = slices.DeleteFunc(p.kids, func(k *prefixEntry) bool { return k == any })
	}
	c.drop(any)
}

// drop forgets e and the recorded blocks after it, releasing the cache's
// reference to each. The caller holds the lock.
func (c *Cache) drop(e *prefixEntry) {
	for _, k := range e.kids {
		c.drop(k)
	}
	delete(c.prefix, e.hash)
	c.release(e.block)
}

// DropPrefixes forgets every recorded prefix, releasing the blocks only
// the prefix cache held.
func (c *Cache) DropPrefixes() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.prefix {
		c.release(e.block)
	}
	c.prefix = nil
}
