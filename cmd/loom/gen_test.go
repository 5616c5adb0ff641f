package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loomllm/loom/internal/testdata"
	"github.com/loomllm/loom/model"
	"github.com/loomllm/loom/model/gguf"
	"github.com/loomllm/loom/model/loader"
	"github.com/loomllm/loom/model/synth"
	"github.com/loomllm/loom/runtime/backend"
)

// TestGenRoundTrip writes the tiny presets in every type with loom gen and
// reads them back: the same tensors, bit for bit, as synth generates in
// memory from the same seed.
func TestGenRoundTrip(t *testing.T) {
	for _, preset := range []string{"tiny", "tiny-gpt2"} {
		for _, dt := range synth.DTypes {
			path := filepath.Join(t.TempDir(), preset+".gguf")
			code, out, errOut := runLoom("gen", "--preset", preset, "--dtype", dt.String(), "--seed", "9", "-o", path)
			require.Zero(t, code, errOut)
			require.Contains(t, out, "wrote "+path)
			got, err := loader.Open(path)
			require.NoError(t, err)
			cfg, _ := synth.Preset(preset)
			want, err := synth.New(cfg, dt, model.TokenizerSpec{}, 9)
			require.NoError(t, err)
			require.Equal(t, want.Config, got.Config)
			require.Equal(t, len(want.Tensors), len(got.Tensors))
			for name, w := range want.Tensors {
				require.True(t, bytes.Equal(w.Data, got.Tensors[name].Data), "%s %v %s", preset, dt, name)
			}
			require.NoError(t, got.Close())
		}
	}
}

func TestGenFormats(t *testing.T) {
	dir := t.TempDir()
	vocab := testdata.Path(t, "tokenizers/ggml-vocab-llama-spm.gguf")

	// Explicit hyperparameters and a copied tokenizer.
	g := filepath.Join(dir, "custom.gguf")
	code, _, errOut := runLoom("gen", "--dim", "64", "--hidden", "128", "--layers", "1", "--heads", "2",
		"--kv-heads", "1", "--context", "64", "--rope-theta", "500000", "--tokenizer-from", vocab, "--dtype", "bf16", "-o", g)
	require.Zero(t, code, errOut)
	m, err := gguf.Load(g)
	require.NoError(t, err)
	require.Equal(t, model.Config{Arch: model.ArchLlama, Name: "synthetic", VocabSize: 32000, Dim: 64, Hidden: 128, Layers: 1,
		Heads: 2, KVHeads: 1, HeadDim: 32, Context: 64, NormEps: 1e-5, RopeTheta: 500000, RopeDims: 32}, m.Config)
	require.Len(t, m.Tokenizer.Tokens, 32000)
	require.Equal(t, "<s>", m.Tokenizer.Tokens[m.Tokenizer.BOS])
	require.Equal(t, backend.BF16, m.Tensors["blk.0.attn_q.weight"].DType)
	m.Close()

	// Hugging Face directory.
	h := filepath.Join(dir, "hf")
	code, _, errOut = runLoom("gen", "--preset", "tiny", "--format", "hf", "--dtype", "f16", "-o", h)
	require.Zero(t, code, errOut)
	m, err = loader.Open(h)
	require.NoError(t, err)
	require.True(t, m.Config.RopeNeoX)
	m.Close()

	// llama2.c checkpoint and tokenizer.bin, identical to the in-memory writer.
	c := filepath.Join(dir, "l2c", "model.bin")
	require.NoError(t, os.MkdirAll(filepath.Dir(c), 0o755))
	code, _, errOut = runLoom("gen", "--preset", "tiny", "--format", "llama2c", "--seed", "3", "-o", c)
	require.Zero(t, code, errOut)
	got, err := os.ReadFile(c)
	require.NoError(t, err)
	cfg, _ := synth.Preset("tiny")
	mem, err := synth.New(cfg, backend.F32, model.TokenizerSpec{}, 3)
	require.NoError(t, err)
	var want bytes.Buffer
	require.NoError(t, synth.WriteLlama2C(&want, mem))
	require.Equal(t, want.Bytes(), got)
	_, err = os.Stat(filepath.Join(dir, "l2c", "tokenizer.bin"))
	require.NoError(t, err)

	// Existing outputs are kept unless --force.
	code, _, errOut = runLoom("gen", "--preset", "tiny", "-o", g)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "exists")
	code, _, errOut = runLoom("gen", "--preset", "tiny", "--force", "-o", g)
	require.Zero(t, code, errOut)
}

func TestGenUsage(t *testing.T) {
	out := filepath.Join(t.TempDir(), "x")
	for _, args := range [][]string{
		{"--preset", "tiny"},                                 // no -o
		{"--preset", "llama9", "-o", out},                    // unknown preset
		{"--dim", "64", "-o", out},                           // missing hyperparameters
		{"--preset", "tiny", "--dtype", "iq2_xs", "-o", out}, // unknown type
		{"--preset", "tiny", "--format", "onnx", "-o", out},
		{"--preset", "tiny", "--format", "hf", "--dtype", "q8_0", "-o", out},
		{"--preset", "tiny", "--format", "llama2c", "--dtype", "bf16", "-o", out},
		{"--preset", "tiny", "extra", "-o", out},
	} {
		code, _, errOut := runLoom(append([]string{"gen"}, args...)...)
		require.Equal(t, 2, code, "%v: %s", args, errOut)
	}
	code, _, errOut := runLoom("gen", "--preset", "tiny", "--dtype", "q6_k", "-o", out)
	require.Equal(t, 1, code, errOut) // a real type synth cannot generate
	require.Contains(t, errOut, "q6_k")
}
