package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loomllm/loom/internal/testdata"
	"github.com/loomllm/loom/model"
	"github.com/loomllm/loom/model/gguf"
	"github.com/loomllm/loom/model/synth"
	"github.com/loomllm/loom/runtime/backend"
)

func TestInfoStories260K(t *testing.T) {
	path := testdata.Path(t, "models/stories260K.gguf")
	code, out, errOut := runLoom("info", path)
	require.Zero(t, code, errOut)
	for _, want := range []string{
		"stories260K.gguf (GGUF v3, 1.13 MiB)",
		"architecture  llama\n",
		"parameters    292.8K (292800)",
		"tensors       48, 1.12 MiB: f32 ×48 (1.12 MiB)",
		"vocabulary 512, embedding 64, feed-forward 172, layers 5",
		"8 heads, 4 key/value heads, head size 8",
		"theta 10000, 8 dims, interleaved",
		"context       2048",
		"llama (SentencePiece), 512 tokens, BOS 1, EOS 2, adds BOS",
	} {
		require.Contains(t, out, want)
	}

	code, out, errOut = runLoom("info", "--json", "--tensors", path)
	require.Zero(t, code, errOut)
	var r infoReport
	require.NoError(t, json.Unmarshal([]byte(out), &r))
	require.Equal(t, int64(292800), r.Params)
	require.Equal(t, 48, r.Count)
	require.Len(t, r.Tensors, 48)
	require.Equal(t, typeCount{Tensors: 48, Params: 292800, Bytes: 292800 * 4}, r.Types["f32"])
	require.Equal(t, 512, r.Tokenizer.Tokens)
	require.Equal(t, 5, r.Config.Layers)
	require.Empty(t, r.LoadError)
}

func TestInfoVocabularies(t *testing.T) {
	for file, want := range map[string]string{
		"ggml-vocab-llama-spm.gguf": "llama (SentencePiece), 32000 tokens, BOS 1, EOS 2, adds BOS",
		"ggml-vocab-gpt-2.gguf":     "gpt2 (byte-level BPE), pre-tokenizer gpt-2, 50257 tokens, 50000 merges, BOS 50256, EOS 50256, EOT 50256",
		"ggml-vocab-phi-3.gguf":     "llama (SentencePiece), 32064 tokens, BOS 1, EOS 32000, EOT 32007, adds BOS, chat template",
	} {
		code, out, errOut := runLoom("info", testdata.Path(t, "tokenizers/"+file))
		require.Zero(t, code, errOut)
		require.Contains(t, out, want, file)
		require.Contains(t, out, "none (a vocabulary-only file)", file)
	}
}

func TestInfoHFAndUnsupported(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "hf")
	code, _, errOut := runLoom("gen", "--preset", "tiny-gpt2", "--dtype", "bf16", "--format", "hf", "-o", dir)
	require.Zero(t, code, errOut)
	code, out, errOut := runLoom("info", dir)
	require.Zero(t, code, errOut)
	require.Contains(t, out, "Hugging Face directory")
	require.Contains(t, out, "architecture  gpt2\n")
	require.Contains(t, out, "tied to token_embd.weight")

	// A tensor type loom cannot run is still described.
	kvs := []gguf.KV{{Key: "general.architecture", Value: "llama"}}
	infos := []gguf.TensorInfo{{Name: "token_embd.weight", Type: 16, Dims: []uint64{256, 4}}}
	f, err := os.Create(filepath.Join(t.TempDir(), "iq2.gguf"))
	require.NoError(t, err)
	require.NoError(t, gguf.Write(f, kvs, infos, [][]byte{make([]byte, 4*66)}))
	require.NoError(t, f.Close())
	code, out, errOut = runLoom("info", f.Name())
	require.Zero(t, code, errOut)
	require.Contains(t, out, "iq2_xxs ×1")
	require.Contains(t, out, "loadable      no: ")

	// Malformed input and bad usage fail with the file named.
	bad := filepath.Join(t.TempDir(), "bad.gguf")
	require.NoError(t, os.WriteFile(bad, []byte("GGUF\x07\x00\x00\x00"), 0o644))
	code, _, errOut = runLoom("info", bad)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, bad)
	require.Contains(t, errOut, "version 7")
	code, _, _ = runLoom("info")
	require.Equal(t, 2, code)
}

// TestInfoLargeSparse describes a Llama-2-7B-shaped F16 file of 12.6 GiB
// that is one hole after its header: the answer must come well under a
// second, which it can only if the tensor data is never read.
func TestInfoLargeSparse(t *testing.T) {
	cfg, err := synth.Preset("llama2-7b")
	require.NoError(t, err)
	m, err := synth.Describe(cfg, backend.F16, model.TokenizerSpec{})
	require.NoError(t, err)
	kvs, infos, _, err := gguf.ModelLayout(m)
	require.NoError(t, err)
	header, align, err := gguf.Header(kvs, infos)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "llama2-7b-f16.gguf")
	require.NoError(t, os.WriteFile(path, header, 0o644))
	size := int64(len(header)) + gguf.DataSize(infos, align)
	require.NoError(t, os.Truncate(path, size))
	require.Greater(t, size, int64(12<<30))

	start := time.Now()
	code, out, errOut := runLoom("info", path)
	elapsed := time.Since(start)
	require.Zero(t, code, errOut)
	require.Contains(t, out, "parameters    6.74B")
	require.Contains(t, out, "tensors       291, 12.55 GiB: f16 ×226 (12.55 GiB), f32 ×65 (1.02 MiB)")
	require.Less(t, elapsed, 500*time.Millisecond, "loom info took %v", elapsed)
	t.Logf("loom info on a %.1f GiB file: %v", float64(size)/(1<<30), elapsed)
}
