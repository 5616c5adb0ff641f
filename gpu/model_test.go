//go:build cuda

package gpu_test

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/loomllm/loom"
	"github.com/loomllm/loom/cpu"
	"github.com/loomllm/loom/gpu"
	"github.com/loomllm/loom/internal/testdata"
	"github.com/loomllm/loom/model"
	"github.com/loomllm/loom/model/arch"
	"github.com/loomllm/loom/model/synth"
	"github.com/loomllm/loom/runtime/backend"
	"github.com/loomllm/loom/runtime/generate"
	"github.com/loomllm/loom/runtime/kvcache"
	"github.com/stretchr/testify/require"
)

// TestGoldenStories260K: llama2.c's published greedy output for the
// trained stories260K model, byte for byte, generated on the GPU (CUDA
// graphs, on-device argmax, F16 KV cache), and the 200 ids.
func TestGoldenStories260K(t *testing.T) {
	path := testdata.Path(t, "models/stories260K.gguf")
	want, err := os.ReadFile(testdata.Path(t, "golden/stories260K_greedy_n200.txt"))
	require.NoError(t, err)
	idsText, err := os.ReadFile(testdata.Path(t, "golden/stories260K_greedy_n200_ids.txt"))
	require.NoError(t, err)
	var wantIDs []int32
	for _, f := range strings.Fields(string(idsText)) {
		n, err := strconv.Atoi(f)
		require.NoError(t, err)
		wantIDs = append(wantIDs, int32(n))
	}

	m, err := loom.Load(path, loom.Options{Device: "cuda"})
	require.NoError(t, err)
	defer m.Close()
	require.Contains(t, m.Info().Device, "cuda")
	var text strings.Builder
	var ids []int32
	for tok, err := range m.Generate(context.Background(), "", loom.GenerateOptions{MaxTokens: 200, Temperature: 0}) {
		require.NoError(t, err)
		text.WriteString(tok.Text)
		ids = append(ids, tok.ID)
	}
	require.Equal(t, wantIDs, ids)
	require.Equal(t, string(want), text.String())
}

// wholeModel is a synthetic model shape the GPU must agree on with the CPU.
type wholeModel struct {
	name string
	cfg  model.Config
	dt   backend.DType
	// Relative logit tolerances: decode rows (GEMV and flash-decoding, all
	// F32 arithmetic) and a prefill of the whole prompt, where the GPU
	// rounds activations to 16 bits for the tensor-core GEMM (16-bit and
	// quantized weights) and rounds q and the softmax weights to 16 bits
	// in the tensor-core prefill attention (F16 cache, ≥ 64 rows; see
	// kernels/ABI.md §4). Summation order alone moves these random
	// three-layer models' logits by up to 5e-4 (the CPU's SIMD against its
	// generic path). Measured on an H200 (2026-11-27): decode ≤ 6.7e-4 over
	// the prompt and up to 2.1e-3 after 92 greedy steps (GPT-2, F32),
	// prefill 1.2e-3 to 6.2e-3 (F32, Q8_0, F16 weights) and 3.6e-2 (BF16).
	decodeTol, prefillTol float64
}

func wholeModels() []wholeModel {
	llama3 := model.Config{Arch: model.ArchLlama, VocabSize: 4096, Dim: 512, Hidden: 1408, Layers: 3, Heads: 8, KVHeads: 2,
		HeadDim: 64, Context: 1024, NormEps: 1e-5, RopeTheta: 500000, RopeDims: 64,
		RopeScaling: model.RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalContext: 256}}
	gpt2 := model.Config{Arch: model.ArchGPT2, VocabSize: 4096, Dim: 256, Hidden: 1024, Layers: 3, Heads: 4, KVHeads: 4,
		HeadDim: 64, Context: 1024, NormEps: 1e-5, RopeDims: 64, TiedEmbeddings: true}
	return []wholeModel{
		{"llama3-shape/f32", llama3, backend.F32, 2e-3, 1e-2},
		{"llama3-shape/bf16", llama3, backend.BF16, 2e-3, 6e-2},
		{"llama3-shape/q8_0", llama3, backend.Q8_0, 5e-3, 6e-2},
		{"gpt2-shape/f32", gpt2, backend.F32, 5e-3, 1e-2},
		{"gpt2-shape/f16", gpt2, backend.F16, 2e-3, 6e-2},
	}
}

// TestWholeModelsAgainstCPU runs synthetic Llama-3- and GPT-2-shaped
// models on the GPU and on the CPU with the same F16 KV cache: logits agree
// at every prompt position (one decode step per position) and for a whole
// prompt prefilled at once, and greedy decoding gives identical tokens for
// 256 steps.
func TestWholeModelsAgainstCPU(t *testing.T) {
	for _, wm := range wholeModels() {
		t.Run(wm.name, func(t *testing.T) {
			desc, err := synth.New(wm.cfg, wm.dt, model.TokenizerSpec{}, 7)
			require.NoError(t, err)
			ref := cpu.New(cpu.Options{ExactQuant: true})
			t.Cleanup(func() { _ = ref.Close() })
			g, err := gpu.New(gpu.Options{})
			require.NoError(t, err)
			t.Cleanup(func() { _ = g.Close() })
			ce := engine(t, ref, desc)
			ge := engine(t, g, desc)

			rng := rand.New(rand.NewPCG(11, uint64(len(wm.name))))
			prompt := make([]int32, 72) // ≥ 64 rows: the tensor-core prefill attention
			for i := range prompt {
				prompt[i] = int32(rng.IntN(wm.cfg.VocabSize))
			}

			// Every position, as decode steps.
			cs, gs := ce.Cache().NewSeq(), ge.Cache().NewSeq()
			worst := 0.0
			var lastC []float32
			for i, tok := range prompt {
				cl := logitsStep(t, ce, cs, []int32{tok})
				gl := logitsStep(t, ge, gs, []int32{tok})
				lastC = cl
				e := relErr(gl, cl)
				worst = max(worst, e)
				require.LessOrEqual(t, e, wm.decodeTol, "position %d: relative logit error %.3g", i, e)
			}
			t.Logf("decode: worst relative logit error over %d positions %.3g", len(prompt), worst)

			// The whole prompt in one step (prefill kernels).
			cp, gp := ce.Cache().NewSeq(), ge.Cache().NewSeq()
			cl := logitsStep(t, ce, cp, prompt)
			gl := logitsStep(t, ge, gp, prompt)
			e := relErr(gl, cl)
			t.Logf("prefill of %d tokens: relative logit error %.3g", len(prompt), e)
			require.LessOrEqual(t, e, wm.prefillTol)
			cp.Free()
			gp.Free()

			// 256 greedy steps, both backends fed the CPU's tokens (so one
			// near-tie cannot send the two down different paths): the
			// logits agree within the decode tolerance and the GPU's
			// greedy token is the CPU's, or, where the CPU's top two
			// logits are closer than twice the largest elementwise
			// difference, one whose CPU logit is within that distance of
			// the maximum (either is then a correct greedy choice).
			same, ties := 0, 0
			tok := argmax(lastC)
			for i := range 256 {
				cl := logitsStep(t, ce, cs, []int32{tok})
				gl := logitsStep(t, ge, gs, []int32{tok})
				e := relErr(gl, cl)
				require.LessOrEqual(t, e, wm.decodeTol, "greedy step %d: relative logit error %.3g", i, e)
				c, g := argmax(cl), argmax(gl)
				if c == g {
					same++
				} else {
					d := maxAbsDiff(gl, cl)
					require.GreaterOrEqual(t, float64(cl[g]), float64(cl[c])-2*d,
						"greedy step %d: gpu picks %d, cpu %d; cpu logits %.6g vs %.6g, largest difference %.3g", i, g, c, cl[g], cl[c], d)
					ties++
				}
				tok = c
			}
			t.Logf("greedy: %d of 256 steps pick the same token, %d near-ties", same, ties)
		})
	}
}

func engine(t *testing.T, be backend.Backend, desc *model.Model) *generate.Engine {
	net, err := arch.New(be, desc, arch.Options{MaxRows: 128, MaxOut: 4})
	require.NoError(t, err)
	t.Cleanup(net.Close)
	e, err := generate.NewEngine(be, net, generate.EngineOptions{Context: 512, Blocks: 4 * 512 / 16, KVType: backend.F16})
	require.NoError(t, err)
	t.Cleanup(e.Close)
	return e
}

// logitsStep appends toks to seq and returns a copy of the last token's logits.
func logitsStep(t *testing.T, e *generate.Engine, seq *kvcache.Seq, toks []int32) []float32 {
	t.Helper()
	jobs := []generate.Job{{Seq: seq, Tokens: toks, Want: generate.WantLogits}}
	require.NoError(t, e.Step(jobs))
	return append([]float32(nil), jobs[0].Logits...)
}

// argmaxStep appends tok to seq and returns the id of the largest logit.
func argmaxStep(t *testing.T, e *generate.Engine, seq *kvcache.Seq, tok int32) int32 {
	t.Helper()
	jobs := []generate.Job{{Seq: seq, Tokens: []int32{tok}, Want: generate.WantArgMax}}
	require.NoError(t, e.Step(jobs))
	return jobs[0].ID
}

// relErr is ||got-want|| / ||want||, +Inf when got has a NaN.
func relErr(got, want []float32) float64 {
	var d, n float64
	for i := range want {
		if math.IsNaN(float64(got[i])) {
			return math.Inf(1)
		}
		x := float64(got[i]) - float64(want[i])
		d += x * x
		n += float64(want[i]) * float64(want[i])
	}
	return math.Sqrt(d / n)
}

func argmax(v []float32) int32 {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return int32(best)
}

// maxAbsDiff is the largest |got[i]-want[i]|.
func maxAbsDiff(got, want []float32) float64 {
	d := 0.0
	for i := range want {
		d = max(d, math.Abs(float64(got[i])-float64(want[i])))
	}
	return d
}

// TestResultRowsAgainstCPU: the step results beyond one row of logits per
// job, on the GPU against the CPU in one step of mixed jobs: hidden states
// of several rows (embeddings, no logits computed for them), logits of
// several rows (a prompt's log probabilities) and an argmax; then a step
// of hidden states alone (no logits at all, as a recorded graph when it is
// one row).
func TestResultRowsAgainstCPU(t *testing.T) {
	wm := wholeModels()[0]
	desc, err := synth.New(wm.cfg, wm.dt, model.TokenizerSpec{}, 5)
	require.NoError(t, err)
	ref := cpu.New(cpu.Options{ExactQuant: true})
	t.Cleanup(func() { _ = ref.Close() })
	g, err := gpu.New(gpu.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = g.Close() })
	mk := func(be backend.Backend) *generate.Engine {
		net, err := arch.New(be, desc, arch.Options{MaxRows: 128, MaxOut: 8})
		require.NoError(t, err)
		t.Cleanup(net.Close)
		e, err := generate.NewEngine(be, net, generate.EngineOptions{Context: 512, Blocks: 4 * 512 / 16, KVType: backend.F16})
		require.NoError(t, err)
		t.Cleanup(e.Close)
		return e
	}
	engines := []*generate.Engine{mk(ref), mk(g)}
	rng := rand.New(rand.NewPCG(3, 4))
	prompt := make([]int32, 12)
	for i := range prompt {
		prompt[i] = int32(rng.IntN(wm.cfg.VocabSize))
	}
	var res [2][]generate.Job
	for i, e := range engines {
		c := e.Cache()
		jobs := []generate.Job{
			{Seq: c.NewSeq(), Tokens: prompt, Want: generate.WantHidden, Outs: 4},
			{Seq: c.NewSeq(), Tokens: prompt[:3], Want: generate.WantLogits, Outs: 3},
			{Seq: c.NewSeq(), Tokens: prompt[:5], Want: generate.WantArgMax},
		}
		require.NoError(t, e.Step(jobs))
		for k := range jobs {
			jobs[k].Hidden = append([]float32(nil), jobs[k].Hidden...)
			jobs[k].Logits = append([]float32(nil), jobs[k].Logits...)
		}
		res[i] = jobs
	}
	require.Len(t, res[1][0].Hidden, 4*wm.cfg.Dim)
	require.LessOrEqual(t, relErr(res[1][0].Hidden, res[0][0].Hidden), wm.prefillTol, "hidden states")
	require.Len(t, res[1][1].Logits, 3*wm.cfg.VocabSize)
	require.LessOrEqual(t, relErr(res[1][1].Logits, res[0][1].Logits), wm.prefillTol, "logit rows")
	require.Equal(t, res[0][2].ID, res[1][2].ID)

	// Hidden states alone: one row (a graph), then four.
	for _, n := range []int{1, 4} {
		var got [2][]float32
		for i, e := range engines {
			jobs := []generate.Job{{Seq: res[i][0].Seq, Tokens: prompt[:n], Want: generate.WantHidden, Outs: n}}
			require.NoError(t, e.Step(jobs))
			got[i] = append([]float32(nil), jobs[0].Hidden...)
		}
		require.LessOrEqual(t, relErr(got[1], got[0]), wm.decodeTol, "%d hidden rows alone", n)
	}
}
