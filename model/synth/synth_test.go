package synth

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loomllm/loom/internal/testdata"
	"github.com/loomllm/loom/model"
	"github.com/loomllm/loom/model/gguf"
	"github.com/loomllm/loom/runtime/backend"
	"github.com/loomllm/loom/runtime/quant"
)

// TestPresetsDescribe lays out every preset in every type as a GGUF header
// and parses it back: shapes, types and sizes survive, and each preset has
// the parameter count of the published model.
func TestPresetsDescribe(t *testing.T) {
	params := map[string]float64{ // published sizes, in millions of parameters
		"llama3-8b": 8030, "llama2-7b": 6738, "tinyllama-1.1b": 1100, "qwen2-0.5b": 494,
		"gpt2-124m": 124, "stories15m": 15.2, "stories110m": 110,
	}
	for _, name := range Presets() {
		cfg, err := Preset(name)
		require.NoError(t, err)
		for _, dt := range DTypes {
			m, err := Describe(cfg, dt, model.TokenizerSpec{})
			require.NoError(t, err, "%s %v", name, dt)
			kvs, infos, _, err := gguf.ModelLayout(m)
			require.NoError(t, err)
			hdr, _, err := gguf.Header(kvs, infos)
			require.NoError(t, err)
			// A sparse file: the header, then a hole as large as the data.
			path := filepath.Join(t.TempDir(), name+".gguf")
			require.NoError(t, os.WriteFile(path, hdr, 0o644))
			require.NoError(t, os.Truncate(path, int64(len(hdr))+gguf.DataSize(infos, gguf.DefaultAlignment)))
			got, err := gguf.Load(path)
			require.NoError(t, err)
			require.Equal(t, m.Config, got.Config, name)
			n := 0
			for tn, w := range m.Tensors {
				g := got.Tensors[tn]
				require.NotNil(t, g, tn)
				require.Equal(t, [3]int{int(w.DType), w.Rows, w.Cols}, [3]int{int(g.DType), g.Rows, g.Cols}, tn)
				n += w.Rows * w.Cols
			}
			if p, ok := params[name]; ok {
				require.InEpsilon(t, p, float64(n)/1e6, 0.02, "%s has %d parameters", name, n)
			}
			require.NoError(t, got.Close())
		}
	}
	_, err := Preset("llama9")
	require.ErrorIs(t, err, model.ErrUnsupported)
	_, err = Describe(presets["tiny"], backend.Q6_K, model.TokenizerSpec{})
	require.ErrorIs(t, err, model.ErrUnsupported)
}

// TestRoundTrip writes the small presets in every type to a GGUF file and
// reads them back bit for bit.
func TestRoundTrip(t *testing.T) {
	for _, name := range []string{"tiny", "tiny-gpt2", "stories15m"} {
		for _, dt := range DTypes {
			cfg, _ := Preset(name)
			m, err := New(cfg, dt, model.TokenizerSpec{}, 42)
			require.NoError(t, err)
			path := filepath.Join(t.TempDir(), "m.gguf")
			fd, err := os.Create(path)
			require.NoError(t, err)
			require.NoError(t, gguf.WriteModel(fd, m))
			require.NoError(t, fd.Close())
			got, err := gguf.Load(path)
			require.NoError(t, err)
			require.Equal(t, m.Config, got.Config)
			require.Equal(t, len(m.Tensors), len(got.Tensors))
			for n, w := range m.Tensors {
				g := got.Tensors[n]
				require.Equal(t, w.DType, g.DType, n)
				require.True(t, bytes.Equal(w.Data, g.Data), "%s %v: tensor %s differs", name, dt, n)
			}
			require.NoError(t, got.Close())
		}
	}
}

// TestTypesAgree: F16 and BF16 weights are the F32 weights rounded, so
// models of different types from one seed are the same model.
func TestTypesAgree(t *testing.T) {
	cfg, _ := Preset("tiny")
	f32, err := New(cfg, backend.F32, model.TokenizerSpec{}, 5)
	require.NoError(t, err)
	for _, dt := range []backend.DType{backend.F16, backend.BF16} {
		m, err := New(cfg, dt, model.TokenizerSpec{}, 5)
		require.NoError(t, err)
		for name, w := range f32.Tensors {
			g := m.Tensors[name]
			if g.DType == backend.F32 {
				require.Equal(t, w.Data, g.Data, name)
				continue
			}
			want := make([]byte, len(g.Data))
			if dt == backend.F16 {
				quant.EncodeF16(want, quant.BytesF32(w.Data))
			} else {
				quant.EncodeBF16(want, quant.BytesF32(w.Data))
			}
			require.Equal(t, want, g.Data, "%v %s", dt, name)
		}
	}
}

func TestDeterministic(t *testing.T) {
	cfg, _ := Preset("tiny")
	a, err := New(cfg, backend.BF16, model.TokenizerSpec{}, 1)
	require.NoError(t, err)
	old := runtime.GOMAXPROCS(1)
	b, err := New(cfg, backend.BF16, model.TokenizerSpec{}, 1)
	runtime.GOMAXPROCS(old)
	require.NoError(t, err)
	c, err := New(cfg, backend.BF16, model.TokenizerSpec{}, 2)
	require.NoError(t, err)
	for n := range a.Tensors {
		require.Equal(t, a.Tensors[n].Data, b.Tensors[n].Data, n)
		require.NotEqual(t, a.Tensors[n].Data, c.Tensors[n].Data, n)
	}
}

// TestScales checks each segment's sample mean and standard deviation.
func TestScales(t *testing.T) {
	for _, preset := range []string{"stories15m", "tiny-gpt2", "tiny"} {
		cfg, _ := Preset(preset)
		m, err := New(cfg, backend.F32, model.TokenizerSpec{}, 7)
		require.NoError(t, err)
		for name, tn := range m.Tensors {
			all := quant.BytesF32(tn.Data)
			for _, sg := range segments(&m.Config, name, tn) {
				v := all[sg.r0*tn.Cols : sg.r1*tn.Cols]
				var s, ss float64
				for _, x := range v {
					s += float64(x)
					ss += float64(x) * float64(x)
				}
				mean := s / float64(len(v))
				std := math.Sqrt(ss/float64(len(v)) - mean*mean)
				if sg.signs { // magnitudes are center ± half
					s, ss = 0, 0
					for _, x := range v {
						a := math.Abs(float64(x))
						s += a
						ss += a * a
					}
					mean = s / float64(len(v))
					std = math.Sqrt(ss/float64(len(v)) - mean*mean)
				}
				n := float64(len(v))
				require.InDelta(t, sg.center, mean, 4*float64(sg.half)/math.Sqrt(n), name)
				require.InEpsilon(t, float64(sg.half)/math.Sqrt(3), std, max(0.05, 3/math.Sqrt(n)), name)
			}
		}
	}
}

func TestTokenizerFrom(t *testing.T) {
	voc, err := gguf.Load(testdata.Path(t, "tokenizers/ggml-vocab-llama-spm.gguf"))
	require.NoError(t, err)
	defer voc.Close()
	cfg, _ := Preset("tiny")
	m, err := Describe(cfg, backend.Q8_0, voc.Tokenizer)
	require.NoError(t, err)
	require.Equal(t, 32000, m.Config.VocabSize)
	require.Equal(t, 32000, m.Tensors["token_embd.weight"].Rows)
	require.Equal(t, backend.F32, m.Tensors["output_norm.weight"].DType)
}

// TestGreedyNotDegenerate runs greedy decoding on the tiny preset, with
// untied and tied embeddings and several seeds, through a plain reference
// forward pass: the tokens must follow the context, not settle on one.
func TestGreedyNotDegenerate(t *testing.T) {
	for _, tied := range []bool{false, true} {
		for seed := uint64(1); seed <= 3; seed++ {
			cfg, _ := Preset("tiny")
			cfg.TiedEmbeddings = tied
			m, err := New(cfg, backend.F32, model.TokenizerSpec{}, seed)
			require.NoError(t, err)
			f := newRef(m)
			tok, seen, repeats := 1, map[int]bool{}, 0
			var out []int
			for pos := 0; pos < 48; pos++ {
				logits := f.step(tok, pos)
				var s, ss float64
				for _, x := range logits {
					s += float64(x)
					ss += float64(x) * float64(x)
				}
				mean := s / float64(len(logits))
				std := math.Sqrt(ss/float64(len(logits)) - mean*mean)
				require.InDelta(t, 3, std, 1.5, "logit spread at position %d", pos)
				next := argmax(logits)
				if next == tok {
					repeats++
				}
				tok = next
				out = append(out, tok)
				seen[tok] = true
			}
			t.Logf("tied %v seed %d: %d distinct, %d repeats", tied, seed, len(seen), repeats)
			require.Greater(t, len(seen), 30, "tied %v seed %d: greedy tokens %v", tied, seed, out)
			require.LessOrEqual(t, repeats, 2, "tied %v seed %d: greedy tokens %v", tied, seed, out)
		}
	}
}

func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

// ref is a plain llama forward pass over F32 weights (interleaved RoPE).
type ref struct {
	m    *model.Model
	c    model.Config
	k, v [][][]float32 // [layer][pos] → kv vector
}

func newRef(m *model.Model) *ref {
	return &ref{m: m, c: m.Config, k: make([][][]float32, m.Config.Layers), v: make([][][]float32, m.Config.Layers)}
}

func (r *ref) w(name string) []float32 { return quant.BytesF32(r.m.Tensors[name].Data) }

func matvec(w []float32, x []float32, rows int) []float32 {
	cols := len(x)
	out := make([]float32, rows)
	for o := 0; o < rows; o++ {
		var s float32
		for i := 0; i < cols; i++ {
			s += w[o*cols+i] * x[i]
		}
		out[o] = s
	}
	return out
}

func rmsnorm(x, w []float32, eps float32) []float32 {
	var ss float32
	for _, v := range x {
		ss += v * v
	}
	inv := 1 / float32(math.Sqrt(float64(ss/float32(len(x))+eps)))
	out := make([]float32, len(x))
	for i := range x {
		out[i] = x[i] * inv * w[i]
	}
	return out
}

func rope(x []float32, pos, hd int, theta float64) {
	for h := 0; h < len(x)/hd; h++ {
		for i := 0; i < hd/2; i++ {
			ang := float64(pos) * math.Pow(theta, -float64(2*i)/float64(hd))
			c, s := float32(math.Cos(ang)), float32(math.Sin(ang))
			a, b := x[h*hd+2*i], x[h*hd+2*i+1]
			x[h*hd+2*i], x[h*hd+2*i+1] = a*c-b*s, a*s+b*c
		}
	}
}

func (r *ref) step(tok, pos int) []float32 {
	c := r.c
	hd := c.HeadDim
	x := append([]float32(nil), r.w("token_embd.weight")[tok*c.Dim:(tok+1)*c.Dim]...)
	for l := 0; l < c.Layers; l++ {
		p := func(s string) []float32 { return r.w("blk." + itoa(l) + "." + s) }
		xn := rmsnorm(x, p("attn_norm.weight"), c.NormEps)
		q := matvec(p("attn_q.weight"), xn, c.Heads*hd)
		k := matvec(p("attn_k.weight"), xn, c.KVHeads*hd)
		v := matvec(p("attn_v.weight"), xn, c.KVHeads*hd)
		rope(q, pos, hd, c.RopeTheta)
		rope(k, pos, hd, c.RopeTheta)
		r.k[l], r.v[l] = append(r.k[l], k), append(r.v[l], v)
		att := make([]float32, c.Heads*hd)
		for h := 0; h < c.Heads; h++ {
			g := h / (c.Heads / c.KVHeads)
			scores := make([]float64, pos+1)
			mx := math.Inf(-1)
			for j := 0; j <= pos; j++ {
				var s float32
				for i := 0; i < hd; i++ {
					s += q[h*hd+i] * r.k[l][j][g*hd+i]
				}
				scores[j] = float64(s) / math.Sqrt(float64(hd))
				mx = math.Max(mx, scores[j])
			}
			var sum float64
			for j := range scores {
				scores[j] = math.Exp(scores[j] - mx)
				sum += scores[j]
			}
			for j := range scores {
				for i := 0; i < hd; i++ {
					att[h*hd+i] += float32(scores[j]/sum) * r.v[l][j][g*hd+i]
				}
			}
		}
		o := matvec(p("attn_output.weight"), att, c.Dim)
		for i := range x {
			x[i] += o[i]
		}
		xn = rmsnorm(x, p("ffn_norm.weight"), c.NormEps)
		gate := matvec(p("ffn_gate.weight"), xn, c.Hidden)
		up := matvec(p("ffn_up.weight"), xn, c.Hidden)
		for i := range gate {
			gate[i] = gate[i] / (1 + float32(math.Exp(float64(-gate[i])))) * up[i]
		}
		d := matvec(p("ffn_down.weight"), gate, c.Dim)
		for i := range x {
			x[i] += d[i]
		}
	}
	x = rmsnorm(x, r.w("output_norm.weight"), c.NormEps)
	out := "output.weight"
	if c.TiedEmbeddings {
		out = "token_embd.weight"
	}
	return matvec(r.w(out), x, c.VocabSize)
}

func itoa(i int) string { return strconv.Itoa(i) }

func BenchmarkFill(b *testing.B) {
	for _, dt := range []backend.DType{backend.BF16, backend.Q8_0} {
		b.Run(dt.String(), func(b *testing.B) {
			cfg, _ := Preset("stories110m")
			m, err := New(cfg, dt, model.TokenizerSpec{}, 1)
			require.NoError(b, err)
			n := 0
			for _, t := range m.Tensors {
				n += len(t.Data)
			}
			b.SetBytes(int64(n))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				require.NoError(b, Fill(m, uint64(i)))
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
		})
	}
}

// TestKQuants: synthetic Q4_K and Q5_K matrices dequantize to 16 or 32
// levels evenly spread over about [-half, half] (mean near 0), like the
// F32 weights of the same tensor; rows that are not whole blocks fall back
// to Q8_0.
func TestKQuants(t *testing.T) {
	cfg, _ := Preset("stories110m") // dim 768, hidden 2048: whole blocks
	ref, err := New(cfg, backend.F32, model.TokenizerSpec{}, 9)
	require.NoError(t, err)
	for _, dt := range []backend.DType{backend.Q4_K, backend.Q5_K} {
		m, err := New(cfg, dt, model.TokenizerSpec{}, 9)
		require.NoError(t, err)
		for _, name := range []string{"blk.0.attn_q.weight", "blk.3.ffn_down.weight", "token_embd.weight"} {
			w := m.Tensors[name]
			require.Equal(t, dt, w.DType, name)
			v := make([]float32, w.Rows*w.Cols)
			require.NoError(t, quant.Dequantize(w.DType, v, w.Data))
			f := quant.BytesF32(ref.Tensors[name].Data)
			var mean, fmax, vmax float64
			levels := map[float32]bool{}
			for i, x := range v {
				mean += float64(x)
				vmax = max(vmax, math.Abs(float64(x)))
				fmax = max(fmax, math.Abs(float64(f[i])))
				levels[x] = true
			}
			mean /= float64(len(v))
			require.InDelta(t, 0, mean, fmax/100, "%v %s", dt, name)
			require.InEpsilon(t, fmax, vmax, 0.1, "%v %s: range like the F32 weights'", dt, name)
			want := 16
			if dt == backend.Q5_K {
				want = 32
			}
			require.Len(t, levels, want, "%v %s", dt, name)
		}
		tiny, err := Describe(presets["tiny"], dt, model.TokenizerSpec{})
		require.NoError(t, err)
		require.Equal(t, backend.Q8_0, tiny.Tensors["blk.0.attn_q.weight"].DType, "64 columns: not whole %v blocks", dt)
	}
}
