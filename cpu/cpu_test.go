package cpu

import (
	"github.com/loomllm/loom/runtime/quant"
	"github.com/stretchr/testify/require"
	"testing"

	"github.com/loomllm/loom/runtime/backend"
	"github.com/loomllm/loom/runtime/conformance"
)

func newBackend(opt Options) func(t *testing.T) backend.Backend {
	return func(t *testing.T) backend.Backend {
		b := New(opt)
		t.Cleanup(func() { b.Close() })
		return b
	}
}

// TestConformance runs the conformance suite on the SIMD and on the
// plain-Go paths against the suite's float64 reference, and once with the
// SIMD backend as the reference backend, the way the GPU tests use it;
// also with Options.ExactQuant. Those runs leave out the model-sized
// shapes, which exercise the same loops as the small ones.
func TestConformance(t *testing.T) {
	t.Run("simd", func(t *testing.T) {
		conformance.Run(t, newBackend(Options{}), conformance.Options{})
	})
	t.Run("generic", func(t *testing.T) {
		conformance.Run(t, newBackend(Options{Generic: true, Threads: 3}), conformance.Options{Short: true})
	})
	t.Run("simd-exact", func(t *testing.T) {
		conformance.Run(t, newBackend(Options{ExactQuant: true}), conformance.Options{Short: true})
	})
	t.Run("generic-vs-simd", func(t *testing.T) {
		ref := New(Options{Threads: 1})
		defer ref.Close()
		conformance.Run(t, newBackend(Options{Generic: true}), conformance.Options{Short: true, Reference: ref})
	})
}

// decodeStep issues one layer's worth of decode operations (one row per
// sequence), the shapes of a small Llama.
type decodeStep struct {
	b                                       *Backend
	x, h, q, k, v, att, g, u, logits        backend.Tensor
	norm, wq, wk, wv, wo, wg, wu, wd, embed backend.Tensor
	pos, seq, blocks, freqs, ids, next      backend.Tensor
	cache                                   backend.KVCache
}

func newDecodeStep(t testing.TB, b *Backend, rows int) *decodeStep {
	const dim, hidden, heads, kvHeads, headDim, vocab = 256, 688, 8, 2, 32, 320
	alloc := func(dt backend.DType, r, c int) backend.Tensor { return benchTensor(t, b, dt, r, c) }
	s := &decodeStep{b: b,
		x: alloc(backend.F32, rows, dim), h: alloc(backend.F32, rows, dim), q: alloc(backend.F32, rows, heads*headDim),
		k: alloc(backend.F32, rows, kvHeads*headDim), v: alloc(backend.F32, rows, kvHeads*headDim), att: alloc(backend.F32, rows, heads*headDim),
		g: alloc(backend.F32, rows, hidden), u: alloc(backend.F32, rows, hidden), logits: alloc(backend.F32, rows, vocab),
		norm: alloc(backend.F32, 1, dim), wq: alloc(backend.Q8_0, heads*headDim, dim), wk: alloc(backend.F16, kvHeads*headDim, dim),
		wv: alloc(backend.BF16, kvHeads*headDim, dim), wo: alloc(backend.Q4_0, dim, heads*headDim), wg: alloc(backend.F32, hidden, dim),
		wu: alloc(backend.Q8_0, hidden, dim), wd: alloc(backend.F16, dim, hidden), embed: alloc(backend.Q8_0, vocab, dim),
		pos: alloc(backend.I32, rows, 1), seq: alloc(backend.I32, rows, 1), blocks: alloc(backend.I32, rows, 4),
		freqs: alloc(backend.F32, 1, headDim/2), ids: alloc(backend.I32, rows, 1), next: alloc(backend.I32, rows, 1),
	}
	var err error
	s.cache, err = b.NewKVCache(backend.KVSpec{Layers: 1, KVHeads: kvHeads, HeadDim: headDim, BlockSize: 16, Blocks: 4 * rows, DType: backend.F16})
	require.NoError(t, err)
	tab := make([]int32, 4*rows)
	for i := range tab {
		tab[i] = int32(i)
	}
	pos := make([]int32, rows)
	seq := make([]int32, rows)
	for i := range seq {
		seq[i], pos[i] = int32(i), int32(40+i)
	}
	require.NoError(t, b.Upload(s.blocks, quant.I32Bytes(tab)))
	require.NoError(t, b.Upload(s.seq, quant.I32Bytes(seq)))
	require.NoError(t, b.Upload(s.pos, quant.I32Bytes(pos)))
	return s
}

func (s *decodeStep) run() {
	b := s.b
	b.Embed(s.x, s.embed, s.ids)
	b.RMSNorm(s.h, s.x, s.norm, 1e-5)
	b.MatMul(s.q, s.h, s.wq)
	b.MatMul(s.k, s.h, s.wk)
	b.MatMul(s.v, s.h, s.wv)
	b.RoPE(s.q, s.q, s.pos, s.freqs, 32, false)
	b.RoPE(s.k, s.k, s.pos, s.freqs, 32, true)
	b.Attention(s.att, s.q, s.k, s.v, s.cache, backend.Attn{Pos: s.pos, Seq: s.seq, Blocks: s.blocks, Scale: 0.17})
	b.MatMul(s.h, s.att, s.wo)
	b.Add(s.x, s.x, s.h)
	b.LayerNorm(s.h, s.x, s.norm, s.norm, 1e-5)
	b.MatMul(s.g, s.h, s.wg)
	b.MatMul(s.u, s.h, s.wu)
	b.SwiGLU(s.g, s.g, s.u)
	b.GELU(s.u, s.u)
	b.MatMul(s.h, s.g, s.wd)
	b.Copy(s.x, s.h)
	b.MatMul(s.logits, s.x, s.embed)
	b.ArgMax(s.next, s.logits)
}

// TestDecodeAllocs checks that a decode step (and a small prefill) allocate
// nothing once the scratch buffers have grown, on one and several threads.
func TestDecodeAllocs(t *testing.T) {
	for _, threads := range []int{1, 2, 4} {
		for _, rows := range []int{1, 8} {
			b := New(Options{Threads: threads})
			s := newDecodeStep(t, b, rows)
			s.run()
			require.NoError(t, b.Sync())
			allocs := testing.AllocsPerRun(20, s.run)
			require.NoError(t, b.Sync())
			require.Zero(t, allocs, "threads=%d rows=%d", threads, rows)
			b.Close()
		}
	}
}

// TestMeasureBandwidth checks the probe returns a plausible rate for odd
// sizes and thread counts.
func TestMeasureBandwidth(t *testing.T) {
	for _, c := range [][2]int{{1, 1}, {100 << 10, 3}, {4 << 20, 2}} {
		bw := MeasureBandwidth(c[0], c[1])
		require.Greater(t, bw, 1e8, "bytes=%d threads=%d", c[0], c[1])
		require.Less(t, bw, 1e13, "bytes=%d threads=%d", c[0], c[1])
	}
}

// TestSplitAllocs: the paths that split one row across the pool (ArgMax
// of a vocabulary, attention of one row against a long history in parts)
// allocate nothing once grown.
func TestSplitAllocs(t *testing.T) {
	b := New(Options{Threads: 2})
	defer b.Close()
	x := benchTensor(t, b, backend.F32, 1, 50000)
	ids := benchTensor(t, b, backend.I32, 1, 1)
	const hq, hkv, hd, block, kv = 2, 2, 64, 16, 1008
	c, err := b.NewKVCache(backend.KVSpec{Layers: 1, KVHeads: hkv, HeadDim: hd, BlockSize: block, Blocks: kv / block, DType: backend.F16})
	require.NoError(t, err)
	tab := make([]int32, kv/block)
	for i := range tab {
		tab[i] = int32(i)
	}
	q, k, v, out := benchTensor(t, b, backend.F32, 1, hq*hd), benchTensor(t, b, backend.F32, 1, hkv*hd), benchTensor(t, b, backend.F32, 1, hkv*hd), benchTensor(t, b, backend.F32, 1, hq*hd)
	pos, seq, bt := benchTensor(t, b, backend.I32, 1, 1), benchTensor(t, b, backend.I32, 1, 1), benchTensor(t, b, backend.I32, 1, kv/block)
	require.NoError(t, b.Upload(bt, quant.I32Bytes(tab)))
	require.NoError(t, b.Upload(pos, quant.I32Bytes([]int32{kv - 1})))
	run := func() {
		b.ArgMax(ids, x)
		b.Attention(out, q, k, v, c, backend.Attn{Pos: pos, Seq: seq, Blocks: bt, Scale: 0.125})
	}
	run()
	require.NoError(t, b.Sync())
	require.Zero(t, testing.AllocsPerRun(20, run))
	require.NoError(t, b.Sync())
}

// TestMatMulBatchInvariant: a row's product is bitwise the same whether it
// is multiplied alone, with the other rows, or in a group of a few, at 1
// and 2 threads (the register-blocked tiles, the AVX-512 blocks and the
// one-row kernels add in one order), for every weight type.
func TestMatMulBatchInvariant(t *testing.T) {
	for _, opt := range []Options{{Threads: 1}, {Threads: 2}, {Threads: 2, Generic: true}} {
		threads := opt.Threads
		be := New(opt)
		for _, dt := range []backend.DType{backend.F32, backend.F16, backend.BF16, backend.Q8_0, backend.Q4_0, backend.Q2_K, backend.Q3_K, backend.Q4_K, backend.Q5_K, backend.Q6_K, backend.IQ4_NL, backend.IQ4_XS} {
			const n, in, out = 11, 512, 70
			w := benchTensor(t, be, dt, out, in)
			x := benchTensor(t, be, backend.F32, n, in)
			y := benchTensor(t, be, backend.F32, n, out)
			be.MatMul(y, x, w)
			all := make([]byte, y.Bytes())
			require.NoError(t, be.Download(all, y))
			for _, g := range []int{1, 3, 4, 5} {
				for r0 := 0; r0 < n; r0 += g {
					r1 := min(r0+g, n)
					part := benchTensor(t, be, backend.F32, r1-r0, out)
					be.MatMul(part, x.Slice(r0, r1), w)
					got := make([]byte, part.Bytes())
					require.NoError(t, be.Download(got, part))
					require.Equal(t, all[r0*4*out:r1*4*out], got, "%v, %d threads: rows [%d,%d) in groups of %d", dt, threads, r0, r1, g)
					be.Free(part)
				}
			}
			be.Free(w)
			be.Free(x)
			be.Free(y)
		}
		require.NoError(t, be.Close())
	}
}
