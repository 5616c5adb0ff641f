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
	if k := s.need(n); k > len(c.free) {
		return 0, fmt.Errorf("kvcache: need %d blocks, %d of %d free: %w", k, len(c.free), c.spec.Blocks, ErrCacheFull)
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

// take pops a free block; the caller holds the lock and has checked.
func (c *Cache) take() int32 {
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
