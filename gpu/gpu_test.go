//go:build cuda

// The tests in this file need a GPU: gorgonia.org/cu exits the test binary
// at start-up where the CUDA driver finds none. Compile them anywhere with
// go test -tags cuda -c ./gpu/ and run them on the GPU machine (make
// device-bundle; scripts/check.sh).

package gpu_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/loomllm/loom/cpu"
	"github.com/loomllm/loom/gpu"
	"github.com/loomllm/loom/runtime/backend"
	"github.com/loomllm/loom/runtime/conformance"
	"github.com/loomllm/loom/runtime/quant"
	"github.com/stretchr/testify/require"
)

// open returns a fresh backend on device 0, closed when the test ends. It
// runs in debug mode, so a kernel fault names its kernel.
func open(tb testing.TB) *gpu.Backend {
	tb.Helper()
	return openWith(tb, gpu.Options{Debug: true})
}

// openWith returns a fresh backend with opt, closed when the test ends.
func openWith(tb testing.TB, opt gpu.Options) *gpu.Backend {
	tb.Helper()
	g, err := gpu.New(opt)
	require.NoError(tb, err)
	tb.Cleanup(func() { require.NoError(tb, g.Close()) })
	return g
}

// TestConformance runs every operation against the cpu backend.
func TestConformance(t *testing.T) {
	ref := cpu.New(cpu.Options{})
	t.Cleanup(func() { _ = ref.Close() })
	t.Logf("%s against %s", open(t).Name(), ref.Name())
	conformance.Run(t, func(t *testing.T) backend.Backend { return open(t) }, conformance.Options{Reference: ref})
}

// TestDevices lists the devices the way loom's probe prints them.
func TestDevices(t *testing.T) {
	ds, err := gpu.Devices()
	require.NoError(t, err)
	require.NotEmpty(t, ds)
	for _, d := range ds {
		t.Logf("cuda:%d %s, %d MiB, compute %d.%d, %d SMs, driver %d", d.Index, d.Name, d.TotalMemory>>20, d.Major, d.Minor, d.SMs, d.Driver)
		require.Positive(t, d.TotalMemory)
	}
	_, err = gpu.New(gpu.Options{Device: len(ds)})
	require.ErrorIs(t, err, backend.ErrNoDevice)
}

// TestOutOfMemory checks that requests that cannot fit fail with
// ErrOutOfMemory and a message naming the free memory, and leave the
// backend usable.
func TestOutOfMemory(t *testing.T) {
	g := open(t)
	_, err := g.Alloc(backend.F32, 1<<20, 1<<30) // 4 PiB
	require.ErrorIs(t, err, backend.ErrOutOfMemory)
	require.Contains(t, err.Error(), "free")
	t.Log(err)

	_, free := g.Memory()
	require.Positive(t, free)
	_, err = g.Alloc(backend.BF16, int(free/2/1024)+1, 1024) // just over the free memory
	require.ErrorIs(t, err, backend.ErrOutOfMemory)

	_, err = g.NewKVCache(backend.KVSpec{Layers: 1024, KVHeads: 64, HeadDim: 128, BlockSize: 256, Blocks: 1 << 16, DType: backend.F16})
	require.ErrorIs(t, err, backend.ErrOutOfMemory)

	x, err := g.Alloc(backend.F32, 1, 4)
	require.NoError(t, err)
	g.Copy(x, x)
	require.NoError(t, g.Sync(), "a refused allocation must not poison the backend")
}

// TestClosed checks that a closed backend reports ErrClosed.
func TestClosed(t *testing.T) {
	g, err := gpu.New(gpu.Options{})
	require.NoError(t, err)
	x, err := g.Alloc(backend.F32, 2, 3)
	require.NoError(t, err)
	require.NoError(t, g.Close())
	require.NoError(t, g.Close(), "Close twice")
	g.Copy(x, x)
	require.ErrorIs(t, g.Sync(), backend.ErrClosed)
}

// upload allocates a tensor of dt holding vals (rounded to dt).
func upload(tb testing.TB, g backend.Backend, dt backend.DType, rows, cols int, vals []float32) backend.Tensor {
	tb.Helper()
	x, err := g.Alloc(dt, rows, cols)
	require.NoError(tb, err)
	tb.Cleanup(func() { g.Free(x) })
	raw := make([]byte, x.Bytes())
	switch dt {
	case backend.F32:
		copy(raw, quant.F32Bytes(vals))
	case backend.BF16:
		quant.EncodeBF16(raw, vals)
	case backend.F16:
		quant.EncodeF16(raw, vals)
	case backend.Q8_0:
		quant.QuantizeQ8_0(raw, vals)
	default:
		tb.Fatalf("upload: %v", dt)
	}
	require.NoError(tb, g.Upload(x, raw))
	return x
}

func uploadI32(tb testing.TB, g backend.Backend, x backend.Tensor, vals ...int32) {
	tb.Helper()
	require.NoError(tb, g.Upload(x, quant.I32Bytes(vals)))
}

func randoms(rng *rand.Rand, n int, scale float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = scale * (2*rng.Float32() - 1)
	}
	return v
}

// decodeModel is one decoder layer and an output head of a tiny
// Llama-shaped model, enough to exercise every kind of kernel a decode
// step launches: gather, norm, GEMV on every weight type, RoPE, the KV
// store and split flash-decoding, SwiGLU, residual adds and ArgMax.
type decodeModel struct {
	table, norm, wqkv, wo, wgu, wdown, head, freqs  backend.Tensor
	ids, pos, seq, blocks                           backend.Tensor
	x, h, qkv, att, ffn, act, logits, next, scratch backend.Tensor
	cache                                           backend.KVCache
}

const (
	dmVocab, dmDim, dmHeads, dmKVHeads, dmHeadDim, dmHidden = 300, 256, 8, 2, 32, 512
	dmBlock, dmBlocks                                       = 16, 8
)

func newDecodeModel(t *testing.T, g backend.Backend, rng *rand.Rand) *decodeModel {
	qd, kvd := dmHeads*dmHeadDim, dmKVHeads*dmHeadDim
	alloc := func(rows, cols int) backend.Tensor {
		x, err := g.Alloc(backend.F32, rows, cols)
		require.NoError(t, err)
		t.Cleanup(func() { g.Free(x) })
		return x
	}
	allocI := func(rows, cols int) backend.Tensor {
		x, err := g.Alloc(backend.I32, rows, cols)
		require.NoError(t, err)
		t.Cleanup(func() { g.Free(x) })
		return x
	}
	m := &decodeModel{
		table: upload(t, g, backend.Q8_0, dmVocab, dmDim, randoms(rng, dmVocab*dmDim, 1)),
		norm:  upload(t, g, backend.F32, 1, dmDim, randoms(rng, dmDim, 1)),
		wqkv:  upload(t, g, backend.BF16, qd+2*kvd, dmDim, randoms(rng, (qd+2*kvd)*dmDim, 0.1)),
		wo:    upload(t, g, backend.F16, dmDim, qd, randoms(rng, dmDim*qd, 0.1)),
		wgu:   upload(t, g, backend.Q8_0, 2*dmHidden, dmDim, randoms(rng, 2*dmHidden*dmDim, 0.1)),
		wdown: upload(t, g, backend.F32, dmDim, dmHidden, randoms(rng, dmDim*dmHidden, 0.1)),
		head:  upload(t, g, backend.BF16, dmVocab, dmDim, randoms(rng, dmVocab*dmDim, 0.1)),
		ids:   allocI(1, 1), pos: allocI(1, 1), seq: allocI(1, 1), blocks: allocI(1, dmBlocks),
		x: alloc(1, dmDim), h: alloc(1, dmDim), qkv: alloc(1, qd+2*kvd), att: alloc(1, qd),
		ffn: alloc(1, 2*dmHidden), act: alloc(1, dmHidden), logits: alloc(1, dmVocab), next: allocI(1, 1),
	}
	freqs := make([]float32, dmHeadDim/2)
	for i := range freqs {
		freqs[i] = float32(math.Pow(10000, -float64(2*i)/dmHeadDim))
	}
	m.freqs = upload(t, g, backend.F32, 1, len(freqs), freqs)
	var err error
	m.cache, err = g.NewKVCache(backend.KVSpec{Layers: 1, KVHeads: dmKVHeads, HeadDim: dmHeadDim, BlockSize: dmBlock, Blocks: dmBlocks, DType: backend.BF16})
	require.NoError(t, err)
	t.Cleanup(m.cache.Free)
	uploadI32(t, g, m.seq, 0)
	uploadI32(t, g, m.blocks, 7, 2, 5, 0, 1, 3, 6, 4) // a shuffled block table
	return m
}

// step issues one decode step of the model (the input is ids/pos).
func (m *decodeModel) step(g backend.Backend) {
	qd, kvd := dmHeads*dmHeadDim, dmKVHeads*dmHeadDim
	g.Embed(m.x, m.table, m.ids)
	g.RMSNorm(m.h, m.x, m.norm, 1e-5)
	g.MatMul(m.qkv, m.h, m.wqkv)
	q, k, v := m.qkv.ColSlice(0, qd), m.qkv.ColSlice(qd, qd+kvd), m.qkv.ColSlice(qd+kvd, qd+2*kvd)
	g.RoPE(q, q, m.pos, m.freqs, dmHeadDim, false)
	g.RoPE(k, k, m.pos, m.freqs, dmHeadDim, false)
	g.Attention(m.att, q, k, v, m.cache, backend.Attn{Layer: 0, Pos: m.pos, Seq: m.seq, Blocks: m.blocks, Scale: 0.17677669})
	g.MatMul(m.h, m.att, m.wo)
	g.Add(m.x, m.x, m.h)
	g.RMSNorm(m.h, m.x, m.norm, 1e-5)
	g.MatMul(m.ffn, m.h, m.wgu)
	g.SwiGLU(m.act, m.ffn.ColSlice(0, dmHidden), m.ffn.ColSlice(dmHidden, 2*dmHidden))
	g.MatMul(m.h, m.act, m.wdown)
	g.Add(m.x, m.x, m.h)
	g.RMSNorm(m.h, m.x, m.norm, 1e-5)
	g.MatMul(m.logits, m.h, m.head)
	g.(backend.ArgMaxer).ArgMax(m.next, m.logits)
}

// TestGraph records a decode step once and replays it with new inputs
// (token, position: the KV cache grows each step), comparing every step's
// logits and argmax bit for bit with a second backend that runs the same
// operations directly.
func TestGraph(t *testing.T) {
	direct, graphed := open(t), open(t)
	md := newDecodeModel(t, direct, rand.New(rand.NewPCG(7, 1)))
	mg := newDecodeModel(t, graphed, rand.New(rand.NewPCG(7, 1)))
	calls := 0
	for i := 0; i < 40; i++ { // crosses block boundaries of the cache
		id := int32((i*37 + 11) % dmVocab)
		for _, mm := range []struct {
			g backend.Backend
			m *decodeModel
		}{{direct, md}, {graphed, mg}} {
			uploadI32(t, mm.g, mm.m.ids, id)
			uploadI32(t, mm.g, mm.m.pos, int32(i))
		}
		md.step(direct)
		require.NoError(t, graphed.Graph("decode", func() { calls++; mg.step(graphed) }))
		want, got := make([]byte, 4*dmVocab), make([]byte, 4*dmVocab)
		require.NoError(t, direct.Download(want, md.logits))
		require.NoError(t, graphed.Download(got, mg.logits))
		require.Equal(t, want, got, "step %d: logits", i)
		wn, gn := make([]byte, 4), make([]byte, 4)
		require.NoError(t, direct.Download(wn, md.next))
		require.NoError(t, graphed.Download(gn, mg.next))
		require.Equal(t, wn, gn, "step %d: argmax", i)
	}
	require.LessOrEqual(t, calls, 2, "the step is recorded once (twice when a workspace grew), then replayed")

	// Inside a recording, synchronous calls fail and poison the backend.
	bad := open(t)
	x, err := bad.Alloc(backend.F32, 1, 4)
	require.NoError(t, err)
	require.Error(t, bad.Graph("bad", func() { _ = bad.Download(make([]byte, 16), x) }))
	require.Error(t, bad.Sync())
}

// TestDecodeAllocs checks that a decode step, direct or replayed, and
// reading its result back allocate nothing on the Go heap (outside debug
// mode).
func TestDecodeAllocs(t *testing.T) {
	g := openWith(t, gpu.Options{})
	m := newDecodeModel(t, g, rand.New(rand.NewPCG(3, 4)))
	uploadI32(t, g, m.ids, 5)
	uploadI32(t, g, m.pos, 0)
	m.step(g) // grows the workspaces
	require.NoError(t, g.Sync())
	step := func() { m.step(g) }
	require.Zero(t, testing.AllocsPerRun(20, step), "allocations per direct decode step")
	require.NoError(t, g.Graph("decode", step))
	require.Zero(t, testing.AllocsPerRun(20, func() { _ = g.Graph("decode", step) }), "allocations per replayed step")
	next := make([]byte, 4)
	require.Zero(t, testing.AllocsPerRun(20, func() { _ = g.Download(next, m.next) }), "allocations per Download")
	require.NoError(t, g.Sync())
}

// TestHostMemory: page-locked host memory from AllocHost is zeroed, takes
// a download like Go memory, is freed by FreeHost or Close, and survives a
// FreeHost of foreign memory.
func TestHostMemory(t *testing.T) {
	g := open(t)
	vals := make([]float32, 3*1000)
	for i := range vals {
		vals[i] = float32(i%97) - 48
	}
	x := upload(t, g, backend.F32, 3, 1000, vals)
	h, err := g.AllocHost(4 * len(vals))
	require.NoError(t, err)
	require.Len(t, h, 4*len(vals))
	require.Zero(t, h[0]|h[len(h)-1])
	require.NoError(t, g.Download(h, x))
	require.Equal(t, vals, quant.BytesF32(h))
	g.FreeHost(make([]byte, 8)) // not ours: ignored
	g.FreeHost(h)
	_, err = g.AllocHost(0)
	require.ErrorIs(t, err, backend.ErrShape)
	_, err = g.AllocHost(1 << 20) // left for Close
	require.NoError(t, err)
}
