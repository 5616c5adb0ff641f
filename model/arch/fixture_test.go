package arch

import (
	"encoding/json"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loomllm/loom/cpu"
	"github.com/loomllm/loom/internal/testdata"
	"github.com/loomllm/loom/model"
	"github.com/loomllm/loom/model/gguf"
	"github.com/loomllm/loom/model/hf"
	"github.com/loomllm/loom/model/tokenizer"
	"github.com/loomllm/loom/runtime/backend"
	"github.com/loomllm/loom/runtime/quant"
)

// Fixtures from an independent implementation (Hugging Face transformers)
// for synthetic models with real vocabularies: see
// ../testdata/README.md for how they are made.

// fixture is one model's file in ../testdata/fixtures: the inputs written
// by TestWriteFixtureModels and the outputs make_fixtures.py adds.
type fixture struct {
	Name      string       `json:"name"`
	Config    model.Config `json:"config"`
	QKVBias   bool         `json:"qkv_bias"`
	DType     string       `json:"dtype"`
	Seed      uint64       `json:"seed"`
	Prompt    []int32      `json:"prompt_ids"`
	Steps     int          `json:"steps"`
	EmbedHead []float32    `json:"embed_head"` // token_embd row 0, first values, as loom made it

	// Outputs of transformers.
	Transformers string      `json:"transformers"`
	HFEmbedHead  []float32   `json:"hf_embed_head"` // the same values as transformers loaded them
	Stride       int         `json:"stride"`        // logits kept for ids 0, stride, 2·stride, ...
	Logits       [][]float32 `json:"logits"`        // per prompt position, the strided ids
	TopIDs       [][]int32   `json:"top_ids"`       // per prompt position, the 8 most likely ids
	LogSumExp    []float64   `json:"logsumexp"`     // per prompt position, over the whole vocabulary
	Greedy       []int32     `json:"greedy_ids"`    // greedy continuation of the prompt
	Margins      []float32   `json:"greedy_margins"`
}

// fixtureModels are the synthetic models the fixtures cover: GPT-2 with
// GPT-2's vocabulary, a Llama-3-shaped model (grouped-query attention,
// theta 500000, Llama 3.1 frequency scaling, untied output) with Llama's
// SentencePiece vocabulary, a Qwen2-shaped one (Q/K/V biases) and a
// Qwen3-shaped one (per-head Q/K norm, heads of 32 over a width of 64).
var fixtureModels = []struct {
	name, vocab, prompt string
	cfg                 model.Config
	bias                bool
}{
	{"gpt2", "tokenizers/ggml-vocab-gpt-2.gguf", "Once upon a time, a little robot named Bolt",
		model.Config{Arch: model.ArchGPT2, Dim: 64, Hidden: 256, Layers: 2, Heads: 4, KVHeads: 4, HeadDim: 16,
			Context: 128, NormEps: 1e-5, TiedEmbeddings: true}, false},
	{"llama3", "tokenizers/ggml-vocab-llama-spm.gguf", "Once upon a time, a little robot named Bolt",
		model.Config{Arch: model.ArchLlama, Dim: 64, Hidden: 160, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 16, RopeDims: 16,
			Context: 256, NormEps: 1e-5, RopeTheta: 500000,
			RopeScaling: model.RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalContext: 8192}}, false},
	{"qwen2", "tokenizers/ggml-vocab-llama-spm.gguf", "The quick brown fox jumps over the lazy dog",
		model.Config{Arch: model.ArchLlama, Dim: 64, Hidden: 96, Layers: 2, Heads: 4, KVHeads: 1, HeadDim: 16, RopeDims: 16,
			Context: 256, NormEps: 1e-6, RopeTheta: 1e6, TiedEmbeddings: true}, true},
	{"qwen3", "tokenizers/ggml-vocab-llama-spm.gguf", "The quick brown fox jumps over the lazy dog",
		model.Config{Arch: model.ArchLlama, Dim: 64, Hidden: 96, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 32, RopeDims: 32,
			Context: 256, NormEps: 1e-6, RopeTheta: 1e6, TiedEmbeddings: true, RopeNeoX: true, QKNorm: true}, false},
}

// fixtureModel makes a fixture model's weights (F16 matrices, F32
// vectors) from seed alone: each tensor from its own PCG stream keyed by
// its name, mapped to uniform values by fixed arithmetic, so the weights
// do not change when other code does.
func fixtureModel(cfg model.Config, bias bool, seed uint64) *model.Model {
	return buildModel(cfg, bias, !cfg.TiedEmbeddings, backend.F16, func(name string, v []float32, scale, mean float64) {
		h := fnv.New64a()
		h.Write([]byte(name))
		r := rand.NewPCG(seed, h.Sum64())
		half := scale * math.Sqrt(3) // uniform on [-half, half] has standard deviation scale
		for i := range v {
			u := float64(r.Uint64()>>11) / (1 << 53)
			v[i] = float32(mean + half*(2*u-1))
		}
	})
}

const fixtureSeed, fixtureSteps = 7, 24

// TestWriteFixtureModels writes the fixture models as Hugging Face
// directories, with loom_fixture.json (the inputs), into
// $LOOM_WRITE_FIXTURE_MODELS, for make_fixtures.py. It does nothing
// otherwise.
func TestWriteFixtureModels(t *testing.T) {
	dir := os.Getenv("LOOM_WRITE_FIXTURE_MODELS")
	if dir == "" {
		t.Skip("set LOOM_WRITE_FIXTURE_MODELS to a folder to write the fixture models")
	}
	for _, fm := range fixtureModels {
		vocab, err := gguf.Load(testdata.Path(t, fm.vocab))
		require.NoError(t, err)
		tok, err := tokenizer.New(&vocab.Tokenizer)
		require.NoError(t, err)
		cfg := fm.cfg
		cfg.VocabSize = len(vocab.Tokenizer.Tokens)
		m := fixtureModel(cfg, fm.bias, fixtureSeed)
		out := filepath.Join(dir, fm.name)
		require.NoError(t, hf.Write(out, m))
		head := make([]float32, 8)
		require.NoError(t, quant.Dequantize(backend.F16, head, m.Tensors["token_embd.weight"].Data))
		f := fixture{Name: fm.name, Config: m.Config, QKVBias: fm.bias, DType: "f16", Seed: fixtureSeed, Steps: fixtureSteps, EmbedHead: head,
			Prompt: tok.Encode(fm.prompt, tokenizer.EncodeOptions{AddSpecial: true})}
		if fm.cfg.Arch == model.ArchGPT2 { // GPT-2 adds no BOS: start from <|endoftext|> like its training data
			f.Prompt = append([]int32{tok.EOS()}, f.Prompt...)
		}
		b, err := json.MarshalIndent(f, "", "  ")
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(out, "loom_fixture.json"), b, 0o644))
	}
}

// TestFixtures checks loom's logits at every prompt position and its
// greedy continuation against transformers' on the same weights.
func TestFixtures(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "fixtures", "*.json"))
	if len(files) == 0 {
		t.Skip("no fixtures in model/testdata/fixtures (see model/testdata/README.md)")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			raw, err := os.ReadFile(file)
			require.NoError(t, err)
			var f fixture
			require.NoError(t, json.Unmarshal(raw, &f))
			require.NotEmpty(t, f.Logits, "the fixture has no outputs: run make_fixtures.py")
			dt, err := backend.ParseDType(f.DType)
			require.NoError(t, err)
			require.Equal(t, backend.F16, dt)
			m := fixtureModel(f.Config, f.QKVBias, f.Seed)
			head := make([]float32, len(f.EmbedHead))
			require.NoError(t, quant.Dequantize(dt, head, m.Tensors["token_embd.weight"].Data[:len(head)*dt.BlockBytes()]))
			require.Equal(t, f.EmbedHead, head, "fixtureModel no longer makes the weights the fixture was made from: regenerate it")
			require.InDeltaSlice(t, f.EmbedHead, f.HFEmbedHead, 1e-7, "transformers loaded other weights")

			be := cpu.New(cpu.Options{})
			defer be.Close()
			net, err := New(be, m, Options{MaxRows: 1, MaxOut: 1})
			require.NoError(t, err)
			defer net.Close()
			run := newRunner(t, be, net, len(f.Prompt)+f.Steps+1)
			worst := 0.0
			for p, tok := range f.Prompt {
				logits := run.step([]int32{tok})[0]
				got := make([]float32, 0, len(f.Logits[p]))
				for id := 0; id < len(logits); id += f.Stride {
					got = append(got, logits[id])
				}
				e := relErr32(got, f.Logits[p])
				worst = max(worst, e)
				require.Less(t, e, 1e-4, "position %d", p)
				require.Equal(t, f.TopIDs[p], topIDs(logits, len(f.TopIDs[p])), "position %d", p)
				require.InDelta(t, f.LogSumExp[p], logSumExp(logits), 1e-3, "position %d", p)
			}
			t.Logf("%s: largest relative difference of the logits %.2g over %d positions (transformers %s)",
				f.Name, worst, len(f.Prompt), f.Transformers)

			// Greedy continuation: identical while transformers' choice is
			// clear (a near tie may go either way, and then the texts part).
			run2 := newRunner(t, be, net, len(f.Prompt)+f.Steps+1)
			var logits []float32
			for _, tok := range f.Prompt {
				logits = run2.step([]int32{tok})[0]
			}
			for i, want := range f.Greedy {
				got := topIDs(logits, 1)[0]
				if got != want {
					require.Less(t, f.Margins[i], float32(1e-3), "step %d: loom %d, transformers %d", i, got, want)
					t.Logf("step %d: near tie (margin %.2g), stopping the comparison", i, f.Margins[i])
					break
				}
				logits = run2.step([]int32{got})[0]
			}
		})
	}
}

func relErr32(got, want []float32) float64 {
	var d, n float64
	for i := range want {
		d += (float64(got[i]) - float64(want[i])) * (float64(got[i]) - float64(want[i]))
		n += float64(want[i]) * float64(want[i])
	}
	return math.Sqrt(d / n)
}

// topIDs returns the ids of the k largest logits, largest first.
func topIDs(logits []float32, k int) []int32 {
	ids := make([]int32, 0, k)
	used := map[int32]bool{}
	for range k {
		best := int32(-1)
		for id, v := range logits {
			if !used[int32(id)] && (best < 0 || v > logits[best]) {
				best = int32(id)
			}
		}
		used[best] = true
		ids = append(ids, best)
	}
	return ids
}

func logSumExp(logits []float32) float64 {
	m := math.Inf(-1)
	for _, v := range logits {
		m = max(m, float64(v))
	}
	var s float64
	for _, v := range logits {
		s += math.Exp(float64(v) - m)
	}
	return m + math.Log(s)
}
