package kvcache

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loomllm/loom/runtime/backend"
)

// fakeBackend stores one int per cached position, so the test can check
// that every sequence reads back exactly what it stored.
type fakeBackend struct {
	backend.Backend // only the methods below are called
	store           [][]int
	copies          int
}

type fakeKV struct{ spec backend.KVSpec }

func (k *fakeKV) Spec() backend.KVSpec { return k.spec }
func (k *fakeKV) Free()                {}

func (f *fakeBackend) NewKVCache(spec backend.KVSpec) (backend.KVCache, error) {
	f.store = make([][]int, spec.Blocks)
	for i := range f.store {
		f.store[i] = make([]int, spec.BlockSize)
	}
	return &fakeKV{spec}, nil
}

func (f *fakeBackend) CopyKVBlock(_ backend.KVCache, dst, src int) {
	copy(f.store[dst], f.store[src])
	f.copies++
}

func newCache(t *testing.T, blocks, size, maxLen int) (*Cache, *fakeBackend) {
	f := &fakeBackend{}
	c, err := New(f, backend.KVSpec{Layers: 1, KVHeads: 1, HeadDim: 4, BlockSize: size, Blocks: blocks}, maxLen)
	require.NoError(t, err)
	return c, f
}

// write stores values for positions [start, start+len(v)) of s, as a
// forward pass would.
func write(f *fakeBackend, s *Seq, start int, v []int) {
	b := s.c.BlockSize()
	for i, x := range v {
		p := start + i
		f.store[s.Blocks()[p/b]][p%b] = x
	}
}

func read(f *fakeBackend, s *Seq) []int {
	b := s.c.BlockSize()
	out := []int{}
	for p := range s.Len() {
		out = append(out, f.store[s.Blocks()[p/b]][p%b])
	}
	return out
}

func TestGrowAndFree(t *testing.T) {
	c, f := newCache(t, 4, 4, 12)
	require.Equal(t, 3, c.Width())
	s := c.NewSeq()
	start, err := s.Grow(5)
	require.NoError(t, err)
	require.Zero(t, start)
	require.Len(t, s.Blocks(), 2)
	write(f, s, 0, []int{1, 2, 3, 4, 5})
	start, err = s.Grow(3)
	require.NoError(t, err)
	require.Equal(t, 5, start)
	require.Len(t, s.Blocks(), 2)
	require.Equal(t, 2, c.FreeBlocks())

	_, err = s.Grow(5)
	require.ErrorIs(t, err, ErrSeqFull)
	require.Equal(t, 8, s.Len(), "a failed Grow changes nothing")

	other := c.NewSeq()
	_, err = other.Grow(9)
	require.ErrorIs(t, err, ErrCacheFull)
	require.Zero(t, other.Len())
	require.Equal(t, 2, c.FreeBlocks())

	row := []int32{9, 9, 9}
	s.FillRow(row)
	require.Equal(t, []int32{s.Blocks()[0], s.Blocks()[1], 0}, row)

	s.Free()
	s.Free()
	require.Equal(t, 4, c.FreeBlocks())
	_, err = s.Grow(1)
	require.ErrorIs(t, err, ErrFreed)
	_, err = s.Fork()
	require.ErrorIs(t, err, ErrFreed)
	require.ErrorIs(t, s.Truncate(0), ErrFreed)
}

func TestForkCopiesOnWrite(t *testing.T) {
	c, f := newCache(t, 8, 4, 32)
	a := c.NewSeq()
	_, err := a.Grow(6)
	require.NoError(t, err)
	write(f, a, 0, []int{1, 2, 3, 4, 5, 6})
	b, err := a.Fork()
	require.NoError(t, err)
	require.Equal(t, a.Blocks(), b.Blocks())
	require.Equal(t, 6, c.FreeBlocks())

	require.Equal(t, 1, b.Need(1), "the shared partial block must be copied")
	start, err := b.Grow(1)
	require.NoError(t, err)
	write(f, b, start, []int{70})
	require.Equal(t, 1, f.copies)
	require.Equal(t, a.Blocks()[0], b.Blocks()[0], "full blocks stay shared")
	require.NotEqual(t, a.Blocks()[1], b.Blocks()[1])

	start, err = a.Grow(1) // a's last block is no longer shared: written in place
	require.NoError(t, err)
	write(f, a, start, []int{7})
	require.Equal(t, 1, f.copies)
	require.Equal(t, []int{1, 2, 3, 4, 5, 6, 7}, read(f, a))
	require.Equal(t, []int{1, 2, 3, 4, 5, 6, 70}, read(f, b))

	a.Free()
	b.Free()
	require.Equal(t, 8, c.FreeBlocks())
}

// TestRandomOperations runs random grows, forks, truncations and frees
// against a model of what each sequence must read back.
func TestRandomOperations(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 7))
	const blocks, size, maxLen = 64, 4, 40
	c, f := newCache(t, blocks, size, maxLen)
	type live struct {
		s    *Seq
		want []int
	}
	var seqs []*live
	next := 1
	for step := range 3000 {
		switch op := r.IntN(10); {
		case op < 2 || len(seqs) == 0:
			seqs = append(seqs, &live{s: c.NewSeq()})
		case op < 6:
			l := seqs[r.IntN(len(seqs))]
			n := 1 + r.IntN(9)
			need, free := l.s.Need(n), c.FreeBlocks()
			start, err := l.s.Grow(n)
			switch {
			case len(l.want)+n > maxLen:
				require.ErrorIs(t, err, ErrSeqFull)
			case need > free:
				require.ErrorIs(t, err, ErrCacheFull)
			default:
				require.NoError(t, err)
				require.Equal(t, free-need, c.FreeBlocks())
				v := make([]int, n)
				for i := range v {
					v[i] = next
					next++
				}
				write(f, l.s, start, v)
				l.want = append(l.want, v...)
			}
		case op < 7:
			l := seqs[r.IntN(len(seqs))]
			fk, err := l.s.Fork()
			require.NoError(t, err)
			seqs = append(seqs, &live{s: fk, want: append([]int(nil), l.want...)})
		case op < 8:
			l := seqs[r.IntN(len(seqs))]
			n := r.IntN(len(l.want) + 1)
			require.NoError(t, l.s.Truncate(n))
			l.want = l.want[:n]
		default:
			i := r.IntN(len(seqs))
			seqs[i].s.Free()
			seqs = append(seqs[:i], seqs[i+1:]...)
		}
		if step%20 != 0 {
			continue
		}
		for _, l := range seqs {
			require.Equal(t, len(l.want), l.s.Len())
			if len(l.want) > 0 {
				require.Equal(t, l.want, read(f, l.s))
			}
		}
	}
	for _, l := range seqs {
		l.s.Free()
	}
	require.Equal(t, blocks, c.FreeBlocks(), "every block comes back")
}

func TestNewRejectsBadSpec(t *testing.T) {
	_, err := New(&fakeBackend{}, backend.KVSpec{BlockSize: 16}, 10)
	require.ErrorIs(t, err, backend.ErrShape)
}

// TestPrefix: Publish records a prompt's full blocks; Lookup shares the
// longest recorded prefix (never the last token), stops at the first
// different block, and idle recorded blocks are taken back, least recently
// used first, only when no block is free.
func TestPrefix(t *testing.T) {
	c, _ := newCache(t, 8, 4, 64)
	prompt := []int32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
	a := c.NewSeq()
	_, err := a.Grow(len(prompt))
	require.NoError(t, err)
	require.NoError(t, a.Publish(prompt))
	held, idle := c.CachedBlocks()
	require.Equal(t, [2]int{2, 0}, [2]int{held, idle}, "two full blocks recorded, both held by a")

	b, n := c.Lookup(append(slices.Clone(prompt), 99))
	require.Equal(t, 8, n)
	require.Equal(t, a.Blocks()[:2], b.Blocks())
	one, n := c.Lookup(prompt[:8]) // the last token must be computed: one block
	require.Equal(t, 4, n)
	one.Free()
	other := slices.Clone(prompt)
	other[5] = 42
	d, n := c.Lookup(other)
	require.Equal(t, 4, n, "the second block differs")
	d.Free()
	e, n := c.Lookup([]int32{7, 7, 7, 7, 7})
	require.Zero(t, n)
	require.Empty(t, e.Blocks())

	a.Free()
	b.Free()
	held, idle = c.CachedBlocks()
	require.Equal(t, [2]int{2, 2}, [2]int{held, idle})
	require.Equal(t, 6, c.FreeBlocks())

	// A second prompt's blocks, used more recently.
	p2 := []int32{20, 21, 22, 23, 24}
	f := c.NewSeq()
	_, err = f.Grow(len(p2))
	require.NoError(t, err)
	require.NoError(t, f.Publish(p2))
	f.Free()
	// Six blocks needed, five free: the least recently used idle block
	// without successors goes (prompt's second); then all of them.
	g := c.NewSeq()
	_, err = g.Grow(6 * 4)
	require.NoError(t, err)
	held, _ = c.CachedBlocks()
	require.Equal(t, 2, held)
	x, n := c.Lookup(prompt)
	require.Equal(t, 4, n, "prompt's first block is still recorded")
	x.Free()
	x, n = c.Lookup(append(slices.Clone(p2), 0))
	require.Equal(t, 4, n, "p2's block is still recorded")
	x.Free()
	_, err = g.Grow(2 * 4)
	require.NoError(t, err)
	held, idle = c.CachedBlocks()
	require.Equal(t, [2]int{0, 0}, [2]int{held, idle})
	_, err = g.Grow(1)
	require.ErrorIs(t, err, ErrCacheFull)
	g.Free()
	require.Equal(t, 8, c.FreeBlocks())

	// Recorded blocks a sequence holds are never taken back.
	h := c.NewSeq()
	_, err = h.Grow(8)
	require.NoError(t, err)
	require.NoError(t, h.Publish([]int32{1, 2, 3, 4, 5, 6, 7, 8}))
	k := c.NewSeq()
	_, err = k.Grow(6 * 4)
	require.NoError(t, err)
	_, err = k.Grow(1)
	require.ErrorIs(t, err, ErrCacheFull)
	k.Free()
	h.Free()
	c.DropPrefixes()
	require.Equal(t, 8, c.FreeBlocks())
}

// TestPrefixRandom: random prompts over a small alphabet (so prefixes
// repeat), each position storing a value that depends on every token up to
// it, as keys and values do; sequences start from Lookup, grow, publish and
// free at random in a small pool. Every live sequence always reads back
// exactly the values of its own tokens: a cached block is never handed out
// for another prefix, nor reused while held.
func TestPrefixRandom(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 9))
	const blocks, size, maxLen = 24, 4, 32
	c, f := newCache(t, blocks, size, maxLen)
	value := func(tokens []int32) int { // what position len(tokens)-1 stores
		h := 17
		for _, t := range tokens {
			h = h*31 + int(t) + 1
		}
		return h
	}
	type live struct {
		s      *Seq
		tokens []int32
	}
	var seqs []*live
	lookups, hits := 0, 0
	for step := range 4000 {
		switch op := r.IntN(10); {
		case op < 4 || len(seqs) == 0:
			n := 1 + r.IntN(maxLen)
			tokens := make([]int32, n)
			for i := range tokens {
				tokens[i] = int32(r.IntN(2)) // two symbols: long shared prefixes
				if i > 12 {
					tokens[i] = int32(r.IntN(5))
				}
			}
			s, m := c.Lookup(tokens)
			lookups++
			if m > 0 {
				hits++
			}
			require.Equal(t, m, s.Len())
			require.Zero(t, m%size)
			require.Less(t, m, max(n, 1))
			start, err := s.Grow(n - m)
			if err != nil {
				require.ErrorIs(t, err, ErrCacheFull)
				s.Free()
				break
			}
			v := make([]int, n-m)
			for i := range v {
				v[i] = value(tokens[:start+i+1])
			}
			write(f, s, start, v)
			seqs = append(seqs, &live{s: s, tokens: tokens})
		case op < 7:
			l := seqs[r.IntN(len(seqs))]
			require.NoError(t, l.s.Publish(l.tokens))
		default:
			i := r.IntN(len(seqs))
			seqs[i].s.Free()
			seqs = append(seqs[:i], seqs[i+1:]...)
		}
		if step%10 != 0 {
			continue
		}
		for _, l := range seqs {
			want := make([]int, len(l.tokens))
			for p := range want {
				want[p] = value(l.tokens[:p+1])
			}
			require.Equal(t, want, read(f, l.s), "step %d", step)
		}
	}
	t.Logf("%d lookups, %d hits", lookups, hits)
	require.Positive(t, hits)
	for _, l := range seqs {
		l.s.Free()
	}
	held, idle := c.CachedBlocks()
	require.Equal(t, held, idle)
	require.Equal(t, blocks, c.FreeBlocks()+idle)
	c.DropPrefixes()
	require.Equal(t, blocks, c.FreeBlocks(), "every block comes back")
}
