package arch

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loomllm/loom/cpu"
	"github.com/loomllm/loom/model"
	"github.com/loomllm/loom/model/gguf"
	"github.com/loomllm/loom/model/loader"
	"github.com/loomllm/loom/runtime/backend"
	"github.com/loomllm/loom/runtime/conformance"
	"github.com/loomllm/loom/runtime/kvcache"
	"github.com/loomllm/loom/runtime/quant"
)

func newRand(t testing.TB) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	t.Logf("random seed %d", seed)
	return rand.New(rand.NewPCG(seed, 3))
}

// runner drives one sequence through a model, chunk by chunk.
type runner struct {
	t     *testing.T
	be    backend.Backend
	m     Model
	cache *kvcache.Cache
	seq   *kvcache.Seq
	in    Batch
}

func newRunner(t *testing.T, be backend.Backend, m Model, maxLen int) *runner {
	cache, err := kvcache.New(be, m.KVSpec(4, (maxLen+3)/4, backend.F32), maxLen)
	require.NoError(t, err)
	t.Cleanup(cache.Close)
	alloc := func(rows, cols int) backend.Tensor {
		x, err := be.Alloc(backend.I32, rows, cols)
		require.NoError(t, err)
		return x
	}
	r := &runner{t: t, be: be, m: m, cache: cache, seq: cache.NewSeq()}
	r.in = Batch{Tokens: alloc(m.MaxRows(), 1), Pos: alloc(m.MaxRows(), 1), Seq: alloc(m.MaxRows(), 1),
		Blocks: alloc(1, cache.Width()), Out: alloc(m.MaxOut(), 1), Cache: cache.KV()}
	return r
}

// step feeds tokens and returns the logits of every one of them.
func (r *runner) step(tokens []int32) [][]float32 {
	t, n := r.t, len(tokens)
	start, err := r.seq.Grow(n)
	require.NoError(t, err)
	pos, seq, out := make([]int32, n), make([]int32, n), make([]int32, n)
	for i := range pos {
		pos[i], out[i] = int32(start+i), int32(i)
	}
	row := make([]int32, r.cache.Width())
	r.seq.FillRow(row)
	up := func(dst backend.Tensor, v []int32) backend.Tensor {
		dst = dst.Slice(0, len(v))
		require.NoError(t, r.be.Upload(dst, quant.I32Bytes(v)))
		return dst
	}
	require.NoError(t, r.be.Upload(r.in.Blocks, quant.I32Bytes(row)))
	b := Batch{Tokens: up(r.in.Tokens, tokens), Pos: up(r.in.Pos, pos), Seq: up(r.in.Seq, seq),
		Blocks: r.in.Blocks, Out: up(r.in.Out, out), Cache: r.in.Cache}
	logits, err := r.m.Forward(b)
	require.NoError(t, err)
	raw := make([]byte, logits.Rows()*logits.RowBytes())
	require.NoError(t, r.be.Download(raw, logits))
	f := quant.BytesF32(raw)
	v := r.m.Config().VocabSize
	res := make([][]float32, n)
	for i := range res {
		res[i] = f[i*v : (i+1)*v]
	}
	return res
}

func relErr(got []float32, want []float64) float64 {
	w := make([]float32, len(want))
	for i := range want {
		w[i] = float32(want[i])
	}
	return conformance.RelErr(got, w)
}

// refFreqs is RoPE's inverse frequencies in float64, unscaled.
func refFreqs(c model.Config) []float64 {
	f := make([]float64, c.RopeDims/2)
	for i := range f {
		f[i] = math.Pow(c.RopeTheta, -float64(2*i)/float64(c.RopeDims))
	}
	return f
}

var shapes = []struct {
	name   string
	cfg    model.Config
	bias   bool
	untied bool
}{
	{"llama-gqa", model.Config{Arch: model.ArchLlama, VocabSize: 67, Dim: 48, Hidden: 72, Layers: 2, Heads: 6, KVHeads: 2,
		Context: 64, NormEps: 1e-5, RopeTheta: 10000}, false, false},
	{"llama-neox-untied", model.Config{Arch: model.ArchLlama, VocabSize: 50, Dim: 32, Hidden: 40, Layers: 3, Heads: 4, KVHeads: 4,
		Context: 64, NormEps: 1e-6, RopeTheta: 500000, RopeNeoX: true}, false, true},
	{"qwen2-bias-partial-rope", model.Config{Arch: model.ArchLlama, VocabSize: 40, Dim: 32, Hidden: 24, Layers: 2, Heads: 4, KVHeads: 1,
		HeadDim: 16, RopeDims: 8, Context: 64, NormEps: 1e-6, RopeTheta: 1e6, RopeNeoX: true}, true, true},
	{"qwen3-qknorm-headdim", model.Config{Arch: model.ArchLlama, VocabSize: 45, Dim: 32, Hidden: 40, Layers: 2, Heads: 4, KVHeads: 2,
		HeadDim: 16, Context: 64, NormEps: 1e-6, RopeTheta: 1e6, RopeNeoX: true, QKNorm: true}, false, false},
	{"gpt2", model.Config{Arch: model.ArchGPT2, VocabSize: 70, Dim: 32, Hidden: 128, Layers: 2, Heads: 4, KVHeads: 4,
		Context: 40, NormEps: 1e-5}, true, false},
}

// TestForwardMatchesReference runs each architecture on the CPU backend
// (a prefill chunk, then one token at a time) and compares the logits at
// every position with the float64 reference.
func TestForwardMatchesReference(t *testing.T) {
	r := newRand(t)
	for _, sh := range shapes {
		t.Run(sh.name, func(t *testing.T) {
			desc := randModel(r, sh.cfg, sh.bias, sh.untied)
			be := cpu.New(cpu.Options{Threads: 2})
			defer be.Close()
			m, err := New(be, desc, Options{MaxRows: 16, MaxOut: 16})
			require.NoError(t, err)
			defer m.Close()
			c := m.Config()
			tokens := make([]int32, 24)
			for i := range tokens {
				tokens[i] = int32(r.IntN(c.VocabSize))
			}
			want := newRef(desc).forward(tokens, refFreqs(c))
			run := newRunner(t, be, m, 32)
			got := run.step(tokens[:11]) // prefill, odd length
			for _, tok := range tokens[11:] {
				got = append(got, run.step([]int32{tok})...)
			}
			for p := range tokens {
				require.Less(t, relErr(got[p], want[p]), 1e-5, "position %d", p)
			}
		})
	}
}

// TestQ8Weights loads the same model with weights quantized to Q8_0: the
// logits stay within the quantized tolerance.
func TestQ8Weights(t *testing.T) {
	r := newRand(t)
	cfg := shapes[0].cfg
	cfg.Dim, cfg.Hidden, cfg.HeadDim = 64, 96, 0
	cfg.Heads, cfg.KVHeads = 4, 2
	desc := randModel(r, cfg, false, false)
	// ExactQuant: only the weights are quantized here; the CPU's default
	// 8-bit activations would add their own error on top.
	be := cpu.New(cpu.Options{ExactQuant: true})
	defer be.Close()
	tokens := []int32{1, 5, 9, 2, 44, 3}
	var logits [2][][]float32
	for i, conv := range []backend.DType{backend.F32, backend.Q8_0} {
		m, err := New(be, desc, Options{MaxRows: 8, MaxOut: 8, Convert: conv})
		require.NoError(t, err)
		logits[i] = newRunner(t, be, m, 8).step(tokens)
		m.Close()
	}
	for p := range tokens {
		e := conformance.RelErr(logits[1][p], logits[0][p])
		require.Less(t, e, 5e-2, "position %d", p) // end to end through two layers, not one op
		require.Greater(t, e, 0.0, "quantization changes something")
	}
}

func TestTraceAndProgress(t *testing.T) {
	r := newRand(t)
	desc := randModel(r, shapes[0].cfg, false, false)
	be := cpu.New(cpu.Options{})
	defer be.Close()
	var layers []int
	var last, total int64
	m, err := New(be, desc, Options{MaxRows: 4, MaxOut: 2,
		Trace:    func(l int, x backend.Tensor) { layers = append(layers, l) },
		Progress: func(done, tot int64) { last, total = done, tot }})
	require.NoError(t, err)
	defer m.Close()
	require.Equal(t, total, last, "progress reaches the total")
	require.Positive(t, total)
	newRunner(t, be, m, 8).step([]int32{1, 2})
	require.Equal(t, []int{0, 1, 2}, layers)
}

func TestBadModels(t *testing.T) {
	r := newRand(t)
	be := cpu.New(cpu.Options{})
	defer be.Close()
	good := shapes[0].cfg
	for _, mod := range []func(c *model.Config){
		func(c *model.Config) { c.Heads = 5 },
		func(c *model.Config) { c.Dim = -1 },
		func(c *model.Config) { c.Layers = 1 << 30 },
		func(c *model.Config) { c.RopeDims = 7 },
		func(c *model.Config) { c.Arch = "mamba" },
	} {
		c := good
		mod(&c)
		_, err := New(be, &model.Model{Config: c, Tensors: map[string]*model.Tensor{}}, Options{})
		require.Error(t, err)
	}
	// A missing tensor and a wrong shape.
	desc := randModel(r, good, false, false)
	delete(desc.Tensors, "blk.1.ffn_up.weight")
	_, err := New(be, desc, Options{})
	require.ErrorIs(t, err, model.ErrMissing)
	desc = randModel(r, good, false, false)
	desc.Tensors["blk.0.attn_k.weight"].Rows++
	_, err = New(be, desc, Options{})
	require.ErrorIs(t, err, model.ErrFormat)

	m, err := New(be, randModel(r, good, false, false), Options{MaxRows: 2, MaxOut: 1})
	require.NoError(t, err)
	defer m.Close()
	run := newRunner(t, be, m, 8)
	_, err = m.Forward(Batch{Tokens: run.in.Tokens, Pos: run.in.Pos, Seq: run.in.Seq, Out: run.in.Out, Cache: run.in.Cache})
	require.NoError(t, err)
	_, err = m.Forward(Batch{Tokens: run.in.Tokens, Out: run.in.Out})
	require.ErrorIs(t, err, backend.ErrShape)
}

// TestLlama3Freqs checks the Llama 3.1 frequency scaling against values
// computed independently from Hugging Face's definition (float64).
func TestLlama3Freqs(t *testing.T) {
	c := model.Config{RopeTheta: 500000, RopeDims: 128, RopeScaling: model.RopeScaling{
		Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalContext: 8192}}
	f := ropeFreqs(c, nil)
	// High frequencies unchanged (0, 20), the band blended (30), low
	// frequencies divided by 8 (40, 63).
	for _, tc := range []struct {
		i    int
		want float64
	}{{0, 1}, {20, 0.016560440080994446}, {30, 0.0013718935677611381}, {40, 3.428102195952591e-05}, {63, 3.068925988914511e-07}} {
		require.InEpsilon(t, tc.want, float64(f[tc.i]), 1e-6, "i=%d", tc.i)
	}
}

// TestKQuantWeights: a model stored in Q4_K and Q6_K (as llama.cpp's
// Q4_K_M mixes them) loads without widening to F32: the CPU keeps both as
// stored (under a quarter of the F32 memory, the logits of the same
// weights dequantized to F32), and a backend without them gets them
// requantized to Q8_0 (within 8-bit requantization of those logits).
func TestKQuantWeights(t *testing.T) {
	r := newRand(t)
	cfg := model.Config{Arch: model.ArchLlama, VocabSize: 300, Dim: 256, Hidden: 512, Layers: 2, Heads: 4, KVHeads: 2,
		Context: 64, NormEps: 1e-5, RopeTheta: 10000}
	kq := randModel(r, cfg, false, true)
	deq := randModel(r, cfg, false, true) // kq's weights, dequantized, as F32 (filled below)
	for name, tk := range kq.Tensors {
		if tk.Rows == 1 {
			deq.Tensors[name] = tk // norms stay F32
			continue
		}
		dt := backend.Q4_K
		if strings.Contains(name, "ffn_down") || name == "output.weight" {
			dt = backend.Q6_K
		}
		f := quant.BytesF32(tk.Data)
		rb, err := dt.RowBytes(tk.Cols)
		require.NoError(t, err)
		q := make([]byte, tk.Rows*rb)
		if dt == backend.Q4_K {
			quant.QuantizeQ4_K(q, f)
		} else {
			quant.QuantizeQ6_K(q, f)
		}
		back := make([]float32, len(f))
		require.NoError(t, quant.Dequantize(dt, back, q))
		*tk = model.Tensor{Name: name, DType: dt, Rows: tk.Rows, Cols: tk.Cols, Data: q}
		deq.Tensors[name] = &model.Tensor{Name: name, DType: backend.F32, Rows: tk.Rows, Cols: tk.Cols, Data: quant.F32Bytes(back)}
	}
	tokens := []int32{1, 5, 9, 2, 44, 3, 250}
	var f32 int64 // the matrices' bytes in F32
	for _, tk := range kq.Tensors {
		if tk.Rows > 1 {
			f32 += 4 * int64(tk.Rows*tk.Cols)
		}
	}
	run := func(desc *model.Model, noK bool) ([][]float32, int64) {
		cb := cpu.New(cpu.Options{ExactQuant: true}) // weights only: no 8-bit activations on top
		defer cb.Close()
		var be backend.Backend = cb
		if noK {
			be = noKQuants{cb}
		}
		m, err := New(be, desc, Options{MaxRows: 8, MaxOut: 8})
		require.NoError(t, err)
		defer m.Close()
		used, _ := cb.Memory()
		return newRunner(t, be, m, 8).step(tokens), used
	}
	want, _ := run(deq, false)
	// The CPU multiplies both types as stored: the same logits.
	got, used := run(kq, false)
	require.Less(t, float64(used), 0.25*float64(f32), "K-quant weights kept as stored (%d bytes in all), not F32 (%d)", used, f32)
	for p := range tokens {
		require.Less(t, conformance.RelErr(got[p], want[p]), 1e-5, "position %d", p)
	}
	// A backend without them gets Q8_0.
	got, used = run(kq, true)
	require.Less(t, float64(used), 0.35*float64(f32), "K-quant weights requantized to Q8_0 (%d bytes in all), not F32 (%d)", used, f32)
	for p := range tokens {
		e := conformance.RelErr(got[p], want[p])
		require.Less(t, e, 2e-2, "position %d", p)
		require.Greater(t, e, 0.0, "requantization changes something")
	}
}

// noKQuants is the CPU backend without the K-quant weight types, as the
// GPU backend is.
type noKQuants struct{ *cpu.Backend }

func (b noKQuants) SupportsWeights(dt backend.DType) bool {
	return dt != backend.Q4_K && dt != backend.Q6_K && b.Backend.SupportsWeights(dt)
}

// plainBackend hides the CPU backend's optional interfaces (HostMapper
// among them): every weight is allocated and copied.
type plainBackend struct{ backend.Backend }

// TestMapApart: on a backend that maps host memory, Q/K/V and gate/up of
// a large model stay separate mapped weights (no copy: the backend
// allocates none of them) and give bitwise the logits of the concatenated
// copies.
func TestMapApart(t *testing.T) {
	r := newRand(t)
	cfg := model.Config{Arch: model.ArchLlama, VocabSize: 64, Dim: 1024, Hidden: 1024, Layers: 1, Heads: 8, KVHeads: 8,
		Context: 32, NormEps: 1e-5, RopeTheta: 10000}
	desc := randModel(r, cfg, false, false)
	tokens := []int32{1, 5, 9, 2}
	var logits [2][][]float32
	var used [2]int64
	for i := range 2 {
		cb := cpu.New(cpu.Options{Threads: 2})
		var be backend.Backend = cb
		if i == 1 {
			be = plainBackend{cb}
		}
		m, err := New(be, desc, Options{MaxRows: 4, MaxOut: 4})
		require.NoError(t, err)
		used[i], _ = cb.Memory()
		logits[i] = newRunner(t, be, m, 8).step(tokens)
		m.Close()
		require.NoError(t, cb.Close())
	}
	const matrix = 4 << 20 // one 1024×1024 F32 weight
	require.Less(t, used[0], int64(matrix), "mapped: q, k, v, gate, up, o, down not copied")
	require.Greater(t, used[1], int64(7*matrix), "plain: every matrix allocated")
	require.Equal(t, logits[1], logits[0])
}

// fuse returns m with Phi-3's layout: each layer's Q, K and V rows in one
// attn_qkv.weight, its gate and up rows in one ffn_up.weight.
func fuse(m *model.Model) *model.Model {
	f := &model.Model{Config: m.Config, Tensors: map[string]*model.Tensor{}, Path: m.Path}
	f.Config.FusedWeights = true
	maps.Copy(f.Tensors, m.Tensors)
	cat := func(name string, parts ...string) {
		t := &model.Tensor{Name: name, DType: m.Tensors[parts[0]].DType, Cols: m.Tensors[parts[0]].Cols}
		for _, p := range parts {
			t.Rows += m.Tensors[p].Rows
			t.Data = append(t.Data, m.Tensors[p].Data...)
			delete(f.Tensors, p)
		}
		f.Tensors[name] = t
	}
	for l := range m.Config.Layers {
		p := fmt.Sprintf("blk.%d.", l)
		cat(p+"attn_qkv.weight", p+"attn_q.weight", p+"attn_k.weight", p+"attn_v.weight")
		cat(p+"ffn_up.weight", p+"ffn_gate.weight", p+"ffn_up.weight")
	}
	return f
}

// TestFusedWeights: a model in Phi-3's fused layout (attn_qkv, gate and
// up in ffn_up) computes what the same weights do as separate tensors,
// loaded directly and through a written "phi3" GGUF file; its sliding
// window bounds the context.
func TestFusedWeights(t *testing.T) {
	r := newRand(t)
	cfg := shapes[1].cfg // NeoX, as Phi-3
	cfg.KVHeads = 2
	plain := randModel(r, cfg, false, true)
	fused := fuse(plain)
	fused.Config.SlidingWindow = 40

	path := filepath.Join(t.TempDir(), "phi3.gguf")
	f, err := os.Create(path)
	require.NoError(t, err)
	require.NoError(t, gguf.WriteModel(f, fused))
	require.NoError(t, f.Close())
	file, err := loader.Open(path)
	require.NoError(t, err)
	defer file.Close()
	require.True(t, file.Config.FusedWeights)
	require.Equal(t, 40, file.Config.SlidingWindow)
	require.Equal(t, "phi3", file.Meta["general.architecture"])

	be := cpu.New(cpu.Options{Threads: 2})
	defer be.Close()
	tokens := []int32{1, 7, 3, 22, 9, 4, 30, 2}
	var logits [3][][]float32
	for i, desc := range []*model.Model{plain, fused, file} {
		m, err := New(be, desc, Options{MaxRows: 8, MaxOut: 8})
		require.NoError(t, err)
		logits[i] = newRunner(t, be, m, 16).step(tokens)
		if i > 0 {
			require.Equal(t, 40, m.MaxContext())
		}
		m.Close()
	}
	for p := range tokens {
		require.Less(t, conformance.RelErr(logits[1][p], logits[0][p]), 1e-6, "position %d", p)
		require.Equal(t, logits[1][p], logits[2][p], "position %d: the file holds the same model", p)
	}

	delete(fused.Tensors, "blk.0.attn_qkv.weight")
	_, err = New(be, fused, Options{MaxRows: 8, MaxOut: 8})
	require.ErrorContains(t, err, "blk.0.attn_qkv.weight")
}
