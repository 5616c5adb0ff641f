package gguf

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loomllm/loom/internal/testdata"
	"github.com/loomllm/loom/model"
	"github.com/loomllm/loom/runtime/backend"
	"github.com/loomllm/loom/runtime/quant"
)

func TestLoadStories260K(t *testing.T) {
	m, err := Load(testdata.Path(t, "models/stories260K.gguf"))
	require.NoError(t, err)
	defer m.Close()
	c := m.Config
	require.Equal(t, model.Config{
		Arch: model.ArchLlama, Name: "llama", VocabSize: 512, Dim: 64, Hidden: 172, Layers: 5,
		Heads: 8, KVHeads: 4, HeadDim: 8, Context: 2048, NormEps: 1e-5,
		RopeTheta: 10000, RopeDims: 8, TiedEmbeddings: false,
	}, c)
	require.Len(t, m.Tensors, 3+5*9)
	q, err := m.Tensor("blk.0.attn_k.weight", 32, 64)
	require.NoError(t, err)
	require.Equal(t, backend.F32, q.DType)
	require.Len(t, q.Data, 32*64*4)
	// The weights are trained values: finite and not all zero.
	w := quant.BytesF32(q.Data)
	nonzero := 0
	for _, v := range w {
		require.False(t, v != v, "NaN")
		if v != 0 {
			nonzero++
		}
	}
	require.Greater(t, nonzero, len(w)/2)

	tok := m.Tokenizer
	require.Equal(t, "llama", tok.Model)
	require.Len(t, tok.Tokens, 512)
	require.Len(t, tok.Scores, 512)
	require.Len(t, tok.Types, 512)
	require.Equal(t, "<s>", tok.Tokens[tok.BOS])
	require.Equal(t, "</s>", tok.Tokens[tok.EOS])
	require.Equal(t, 0, tok.UNK)
	require.Equal(t, -1, tok.PAD) // stored as 0xFFFFFFFF
	require.True(t, tok.AddBOS)
	require.True(t, tok.AddSpacePrefix)
	require.Equal(t, "llama", m.Meta["general.architecture"])
	require.NotContains(t, m.Meta, "tokenizer.ggml.tokens")
	require.NoError(t, m.Close())
}

func TestLoadVocabularies(t *testing.T) {
	cases := []struct {
		file     string
		arch     string
		model    string
		n        int
		bos, eos int
		eot      int
		addBOS   bool
		merges   bool
		chat     bool
	}{
		{"ggml-vocab-llama-spm.gguf", "llama", "llama", 32000, 1, 2, -1, true, false, false},
		{"ggml-vocab-gpt-2.gguf", "gpt2", "gpt2", 50257, 50256, 50256, 50256, false, true, false},
		{"ggml-vocab-phi-3.gguf", "llama", "llama", 32064, 1, 32000, 32007, true, false, true},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			m, err := Load(testdata.Path(t, "tokenizers/"+c.file))
			require.NoError(t, err)
			defer m.Close()
			require.Empty(t, m.Tensors)
			require.Equal(t, c.arch, m.Config.Arch)
			tok := m.Tokenizer
			require.Equal(t, c.model, tok.Model)
			require.Len(t, tok.Tokens, c.n)
			require.Equal(t, c.bos, tok.BOS)
			require.Equal(t, c.eos, tok.EOS)
			require.Equal(t, c.eot, tok.EOT)
			require.Equal(t, c.addBOS, tok.AddBOS)
			require.Equal(t, c.merges, len(tok.Merges) > 0)
			require.Equal(t, c.chat, tok.ChatTemplate != "")
			if c.model == "gpt2" {
				require.Equal(t, "gpt-2", tok.Pre)
				require.Equal(t, "Ġ t", tok.Merges[0])
				require.False(t, tok.AddSpacePrefix)
			}
		})
	}
}

// BenchmarkParseVocab parses the GPT-2 vocabulary file (50257 tokens and
// 50000 merges as strings) and maps it to a model description.
func BenchmarkParseVocab(b *testing.B) {
	data, err := os.ReadFile(testdata.Path(b, "tokenizers/ggml-vocab-gpt-2.gguf"))
	require.NoError(b, err)
	b.SetBytes(int64(len(data)))
	for i := 0; i < b.N; i++ {
		f, err := Parse("gpt2", data)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := f.Model(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/file")
}
