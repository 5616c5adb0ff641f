package synth

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loomllm/loom/internal/testdata"
	"github.com/loomllm/loom/model"
	"github.com/loomllm/loom/model/gguf"
	"github.com/loomllm/loom/runtime/backend"
)

// readLlama2C parses a checkpoint the way run.c's read_checkpoint and
// memory_map_weights do, returning the config and named weight slices.
func readLlama2C(t *testing.T, b []byte) ([7]int32, map[string][]byte) {
	var h [7]int32
	for i := range h {
		h[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
	}
	dim, hidden, layers, heads, kvHeads, vocab, seq := int(h[0]), int(h[1]), int(h[2]), int(h[3]), int(h[4]), int(h[5]), int(h[6])
	shared := vocab > 0
	if vocab < 0 {
		vocab = -vocab
	}
	hs := dim / heads
	off := 28
	take := func(n int) []byte { s := b[off : off+4*n]; off += 4 * n; return s }
	w := map[string][]byte{"token_embd.weight": take(vocab * dim)}
	stack := func(kind string, n int) {
		for l := 0; l < layers; l++ {
			w["blk."+itoa(l)+"."+kind+".weight"] = take(n)
		}
	}
	stack("attn_norm", dim)
	stack("attn_q", dim*heads*hs)
	stack("attn_k", dim*kvHeads*hs)
	stack("attn_v", dim*kvHeads*hs)
	stack("attn_output", heads*hs*dim)
	stack("ffn_norm", dim)
	stack("ffn_gate", dim*hidden)
	stack("ffn_down", hidden*dim)
	stack("ffn_up", dim*hidden)
	w["output_norm.weight"] = take(dim)
	take(seq * hs / 2)
	take(seq * hs / 2)
	if !shared {
		w["output.weight"] = take(vocab * dim)
	}
	require.Equal(t, len(b), off, "file size")
	return h, w
}

func TestLlama2C(t *testing.T) {
	for _, tied := range []bool{false, true} {
		cfg, _ := Preset("tiny")
		cfg.TiedEmbeddings = tied
		m, err := New(cfg, backend.F32, model.TokenizerSpec{}, 11)
		require.NoError(t, err)
		var buf bytes.Buffer
		require.NoError(t, WriteLlama2C(&buf, m))
		h, w := readLlama2C(t, buf.Bytes())
		vocab := int32(512)
		if !tied {
			vocab = -512
		}
		require.Equal(t, [7]int32{64, 192, 2, 4, 2, vocab, 128}, h)
		require.Equal(t, len(m.Tensors), len(w))
		for name, tn := range m.Tensors {
			require.Equal(t, tn.Data, w[name], name)
		}
	}
	cfg, _ := Preset("tiny")
	m, err := New(cfg, backend.BF16, model.TokenizerSpec{}, 1)
	require.NoError(t, err)
	require.ErrorIs(t, WriteLlama2C(&bytes.Buffer{}, m), model.ErrUnsupported)
	cfg, _ = Preset("tiny-gpt2")
	m, err = New(cfg, backend.F32, model.TokenizerSpec{}, 1)
	require.NoError(t, err)
	require.ErrorIs(t, WriteLlama2C(&bytes.Buffer{}, m), model.ErrUnsupported)
}

// readTokenizerBin parses llama2.c's tokenizer.bin as build_tokenizer does.
func readTokenizerBin(b []byte, n int) (int, []string, []float32) {
	le := binary.LittleEndian
	longest := int(le.Uint32(b))
	off := 4
	var pieces []string
	var scores []float32
	for i := 0; i < n; i++ {
		scores = append(scores, math.Float32frombits(le.Uint32(b[off:])))
		l := int(le.Uint32(b[off+4:]))
		pieces = append(pieces, string(b[off+8:off+8+l]))
		off += 8 + l
	}
	if off != len(b) {
		return -1, nil, nil
	}
	return longest, pieces, scores
}

func TestLlama2CTokenizer(t *testing.T) {
	m, err := gguf.Load(testdata.Path(t, "models/stories260K.gguf"))
	require.NoError(t, err)
	defer m.Close()
	var buf bytes.Buffer
	require.NoError(t, WriteLlama2CTokenizer(&buf, &m.Tokenizer, 512))
	longest, pieces, scores := readTokenizerBin(buf.Bytes(), 512)
	require.Len(t, pieces, 512)
	require.Equal(t, "\n<s>\n", pieces[1])
	require.Equal(t, "<0x0A>", pieces[13])
	require.Equal(t, m.Tokenizer.Scores, scores)
	for i, p := range pieces {
		require.NotContains(t, p, "▁", i)
		require.LessOrEqual(t, len(p), longest)
	}

	buf.Reset()
	require.NoError(t, WriteLlama2CTokenizer(&buf, &model.TokenizerSpec{}, 300))
	_, pieces, _ = readTokenizerBin(buf.Bytes(), 300)
	require.Equal(t, "<0x41>", pieces[3+'A'])
	require.Equal(t, "tok299", pieces[299])
	require.Error(t, WriteLlama2CTokenizer(&buf, &m.Tokenizer, 511))
	require.Error(t, WriteLlama2CTokenizer(&buf, &model.TokenizerSpec{}, 100))
}
