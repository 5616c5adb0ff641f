package tokenizer

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/loomllm/loom/internal/testdata"
	"github.com/loomllm/loom/model"
)

func stories(t testing.TB) *Tokenizer {
	tok, err := New(loadSpec(t, testdata.Path(t, "models/stories260K.gguf")))
	require.NoError(t, err)
	return tok
}

func TestStories260KEncode(t *testing.T) {
	tok := stories(t)
	require.Equal(t, 512, tok.VocabSize())
	require.Equal(t, int32(1), tok.BOS())
	require.Equal(t, int32(2), tok.EOS())
	require.Equal(t, []int32{1, 403, 407, 261, 378}, tok.Encode("Once upon a time", EncodeOptions{AddSpecial: true}))
	require.Equal(t, []int32{403, 407, 261, 378}, tok.Encode("Once upon a time", EncodeOptions{}))
	require.Equal(t, []int32{1}, tok.Encode("", EncodeOptions{AddSpecial: true}))
	require.True(t, tok.IsEndOfGeneration(2))
	require.False(t, tok.IsEndOfGeneration(403))
}

// TestStories260KGolden streams llama2.c's 200 greedy tokens after BOS and
// must print exactly what run.c printed.
func TestStories260KGolden(t *testing.T) {
	tok := stories(t)
	idsText, err := os.ReadFile(testdata.Path(t, "golden/stories260K_greedy_n200_ids.txt"))
	require.NoError(t, err)
	want, err := os.ReadFile(testdata.Path(t, "golden/stories260K_greedy_n200.txt"))
	require.NoError(t, err)
	ids := []int32{tok.BOS()}
	for _, f := range strings.Fields(string(idsText)) {
		id, err := strconv.Atoi(f)
		require.NoError(t, err)
		ids = append(ids, int32(id))
	}
	require.Len(t, ids, 201)
	s := tok.NewStream()
	var got strings.Builder
	for _, id := range ids {
		got.WriteString(s.Next(id))
	}
	got.WriteString(s.Flush())
	require.Equal(t, string(want), got.String())
	require.Equal(t, string(want), tok.Decode(ids))
}

// TestStreamUTF8 feeds byte tokens one at a time: nothing may come out until
// a character is complete.
func TestStreamUTF8(t *testing.T) {
	tok, _ := loadVocab(t, "ggml-vocab-llama-spm.gguf")
	text := "ok 🦙 ч 日本"
	ids := tok.Encode(text, EncodeOptions{AddSpecial: true})
	s := tok.NewStream()
	var got strings.Builder
	for _, id := range ids {
		out := s.Next(id)
		require.True(t, utf8.ValidString(out), "Next returned a split character %q", out)
		got.WriteString(out)
	}
	require.Empty(t, s.Flush())
	require.Equal(t, text, got.String())

	// A dangling lead byte is held, then given back by Flush.
	b0, _ := tok.TokenID("<0xF0>")
	require.Equal(t, "", s.Next(b0))
	require.Equal(t, "\xf0", s.Flush())
	// An invalid byte is not held forever.
	ff, _ := tok.TokenID("<0xFF>")
	require.Equal(t, "\xff", s.Next(ff))
}

func TestStreamSpaceRule(t *testing.T) {
	tok, _ := loadVocab(t, "ggml-vocab-llama-spm.gguf")
	hello, _ := tok.TokenID("▁Hello")
	world, _ := tok.TokenID("▁world")
	s := tok.NewStream()
	require.Equal(t, "", s.Next(tok.BOS()))
	require.Equal(t, "Hello", s.Next(hello))
	require.Equal(t, " world", s.Next(world))
	require.Equal(t, "", s.Next(tok.EOS()))
	require.Equal(t, "Hello", s.Next(hello), "the space after a control token is the prefix the encoder adds")
	// GPT-2 has no such rule.
	g, _ := loadVocab(t, "ggml-vocab-gpt-2.gguf")
	require.Equal(t, " Hello", g.Decode(g.Encode(" Hello", EncodeOptions{})))
}

func TestSpecialTokens(t *testing.T) {
	tok, _ := loadVocab(t, "ggml-vocab-phi-3.gguf")
	end, ok := tok.TokenID("<|end|>")
	require.True(t, ok)
	require.True(t, tok.IsEndOfGeneration(end))
	require.True(t, tok.IsEndOfGeneration(tok.EOS()))
	text := "<|user|>\nHi<|end|>"
	plain := tok.Encode(text, EncodeOptions{})
	require.NotContains(t, plain, end, "control tokens are not parsed by default")
	parsed := tok.Encode(text, EncodeOptions{ParseSpecial: true})
	require.Equal(t, end, parsed[len(parsed)-1])
	require.Less(t, len(parsed), len(plain))
	require.Equal(t, "\nHi", tok.Decode(parsed), "control tokens decode to nothing")

	g, _ := loadVocab(t, "ggml-vocab-gpt-2.gguf")
	eot := g.Encode("a<|endoftext|>b", EncodeOptions{ParseSpecial: true})
	require.Equal(t, []int32{64, 50256, 65}, eot)
	require.NotContains(t, g.Encode("a<|endoftext|>b", EncodeOptions{}), int32(50256))
	require.Equal(t, int32(50256), g.BOS())
}

func TestAddSpecial(t *testing.T) {
	spec := loadSpec(t, testdata.Path(t, "tokenizers/ggml-vocab-llama-spm.gguf"))
	spec.AddEOS = true
	tok, err := New(spec)
	require.NoError(t, err)
	ids := tok.Encode("Hello", EncodeOptions{AddSpecial: true})
	require.Equal(t, []int32{1, 15043, 2}, ids)
	require.Equal(t, "Hello", tok.Decode(ids))
}

// TestGPT2Files builds GPT-2 from OpenAI's encoder.json and vocab.bpe and
// checks it is the GGUF vocabulary.
func TestGPT2Files(t *testing.T) {
	enc, err := os.Open(testdata.Path(t, "tokenizers/gpt2/encoder.json"))
	require.NoError(t, err)
	defer enc.Close()
	bpe, err := os.Open(testdata.Path(t, "tokenizers/gpt2/vocab.bpe"))
	require.NoError(t, err)
	defer bpe.Close()
	files, err := NewGPT2(enc, bpe)
	require.NoError(t, err)
	spec := loadSpec(t, testdata.Path(t, "tokenizers/ggml-vocab-gpt-2.gguf"))
	ref, err := New(spec)
	require.NoError(t, err)
	require.Equal(t, ref.VocabSize(), files.VocabSize())
	for id := range int32(ref.VocabSize()) {
		require.Equal(t, ref.Piece(id), files.Piece(id))
	}
	require.Equal(t, ref.merges, files.merges)
	require.Equal(t, int32(50256), files.EOS())
	for _, c := range readVectors(t, testdata.Path(t, "tokenizers/ggml-vocab-gpt-2.gguf")) {
		got := files.Encode(c.text, EncodeOptions{})
		require.Equal(t, ref.Encode(c.text, EncodeOptions{}), got)
		require.Equal(t, c.text, files.Decode(got))
	}
}

func TestNewErrors(t *testing.T) {
	_, err := New(nil)
	require.ErrorIs(t, err, model.ErrMissing)
	_, err = New(&model.TokenizerSpec{})
	require.ErrorIs(t, err, model.ErrMissing)
	_, err = New(&model.TokenizerSpec{Model: "bert", Tokens: []string{"a"}})
	require.ErrorIs(t, err, model.ErrUnsupported)
	_, err = New(&model.TokenizerSpec{Model: "llama"})
	require.ErrorIs(t, err, model.ErrFormat)
	_, err = New(&model.TokenizerSpec{Model: "llama", Tokens: []string{"a"}, BOS: 5})
	require.ErrorIs(t, err, model.ErrFormat)
	_, err = New(&model.TokenizerSpec{Model: "llama", Tokens: []string{"a", "b"}, Scores: []float32{0}})
	require.ErrorIs(t, err, model.ErrFormat)
	_, err = New(&model.TokenizerSpec{Model: "gpt2", Pre: "no-such-pre", Tokens: []string{"a"}, BOS: -1, EOS: -1, EOT: -1, PAD: -1, UNK: -1})
	require.ErrorIs(t, err, model.ErrUnsupported)
	_, err = New(&model.TokenizerSpec{Model: "gpt2", Tokens: []string{"a"}, Merges: []string{"ab"}, BOS: -1, EOS: -1, EOT: -1, PAD: -1, UNK: -1})
	require.ErrorIs(t, err, model.ErrFormat)
}

// TestSmallSPM checks the merge order on a hand-made vocabulary: the pair
// forming the best-scored token merges first, leftmost on ties, and unknown
// characters fall back to bytes or UNK.
func TestSmallSPM(t *testing.T) {
	spec := &model.TokenizerSpec{
		Model:  "llama",
		Tokens: []string{"<unk>", "<s>", "</s>", "▁", "a", "b", "ab", "▁a", "▁ab", "bb", "<0x41>", "▁c"},
		Scores: []float32{0, 0, 0, -1, -1, -1, -2, -3, -4, -1.5, 0, -5},
		Types:  []int32{2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 6, 1},
		BOS:    1, EOS: 2, EOT: -1, PAD: -1, UNK: 0, AddBOS: true, AddSpacePrefix: true,
	}
	tok, err := New(spec)
	require.NoError(t, err)
	// "▁abb": bb (-1.5) beats ab (-2): ▁a + bb.
	require.Equal(t, []int32{7, 9}, tok.Encode("abb", EncodeOptions{}))
	// "▁ab": ab (-2) then ▁ab (-4).
	require.Equal(t, []int32{8}, tok.Encode("ab", EncodeOptions{}))
	// A: byte token; C: no byte token, so <unk>.
	require.Equal(t, []int32{3, 10, 0}, tok.Encode("AC", EncodeOptions{}))
	// "c" is no token, but "▁c" is: the merge still happens, and a lone
	// "c" is unknown.
	require.Equal(t, []int32{11, 0}, tok.Encode("cc", EncodeOptions{}))
	require.Equal(t, "abb", tok.Decode(tok.Encode("abb", EncodeOptions{AddSpecial: true})))
	require.Equal(t, "A▅", tok.Decode([]int32{3, 10, 0}))
	require.Equal(t, "", tok.Decode([]int32{-1, 99}))
	require.Equal(t, "", tok.Piece(99))
}

// TestConcurrentEncode: one Tokenizer serves many goroutines.
func TestConcurrentEncode(t *testing.T) {
	tok, _ := loadVocab(t, "ggml-vocab-gpt-2.gguf")
	texts := []string{englishText(5000), "Hello world", strings.Repeat("a", 3000), "日本語 🦙"}
	want := make([][]int32, len(texts))
	for i, s := range texts {
		want[i] = tok.Encode(s, EncodeOptions{})
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := range 8 {
		wg.Go(func() {
			for k := range 20 {
				i := (g + k) % len(texts)
				if got := tok.Encode(texts[i], EncodeOptions{}); !slices.Equal(got, want[i]) {
					errs <- texts[i][:min(20, len(texts[i]))]
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("concurrent Encode differs for %q", e)
	}
}
