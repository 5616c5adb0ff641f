package constrain

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loomllm/loom/internal/testdata"
	"github.com/loomllm/loom/model/loader"
	"github.com/loomllm/loom/model/tokenizer"
)

// gpt2Texts is GPT-2's vocabulary as the bytes each token adds.
func gpt2Texts(tb testing.TB) []string {
	desc, err := loader.Open(testdata.Path(tb, "tokenizers/ggml-vocab-gpt-2.gguf"))
	require.NoError(tb, err)
	defer desc.Close()
	tok, err := tokenizer.New(&desc.Tokenizer)
	require.NoError(tb, err)
	texts := make([]string, tok.VocabSize())
	for id := range texts {
		texts[id] = tok.Text(int32(id))
	}
	return texts
}

// TestAllow: the trie walk allows exactly the tokens a token-by-token
// check allows, at states inside and outside strings.
func TestAllow(t *testing.T) {
	texts := gpt2Texts(t)
	v := NewVocab(texts)
	allow := make([]bool, len(texts))
	for _, prefix := range []string{"", "{", `{"a`, `{"a":`, `{"a": 1`, `{"a": [tr`, `{"a": "x\`, `{"a":{}`} {
		j, bad := feed(prefix)
		require.Equal(t, -1, bad)
		n := v.Allow(j, allow)
		count := 0
		for id, s := range texts {
			k := j
			ok := s != ""
			for i := 0; ok && i < len(s); i++ {
				ok = k.Feed(s[i])
			}
			require.Equal(t, ok, allow[id], "prefix %q, token %d %q", prefix, id, s)
			if ok {
				count++
			}
		}
		require.Equal(t, count, n, "prefix %q", prefix)
		require.Positive(t, n, "prefix %q", prefix)
	}
}

// BenchmarkAllow: one step's mask over GPT-2's 50257 tokens, inside a
// string (nearly every token allowed) and between tokens (few).
func BenchmarkAllow(b *testing.B) {
	texts := gpt2Texts(b)
	v := NewVocab(texts)
	allow := make([]bool, len(texts))
	for _, prefix := range []string{`{"key": "some text`, `{"key": 12, `} {
		j, _ := feed(prefix)
		b.Run(prefix, func(b *testing.B) {
			for b.Loop() {
				v.Allow(j, allow)
			}
		})
	}
}

// TestPrefixed: forced prefix tokens, then the inner constraint; a wrong
// token kills it.
func TestPrefixed(t *testing.T) {
	texts := []string{"", "<call>", `{"a":`, `1}`, `2}`, "x"}
	v := NewVocab(texts)
	s, err := CompileSchema([]byte(`{"type":"object","properties":{"a":{"type":"integer"}},"required":["a"]}`))
	require.NoError(t, err)
	allow := make([]bool, len(texts))
	q := NewPrefixed([]int32{1, 1}, NewSchemaTokens(v, s))
	for i, id := range []int32{1, 1, 2, 3} {
		n := q.Allow(allow)
		require.True(t, allow[id], "token %d", id)
		require.Equal(t, []int{1, 1, 1, 2}[i], n, "token %d", id) // the integer: 1} or 2}
		require.False(t, q.Done())
		q.Accept(id)
	}
	require.True(t, q.Done())
	require.Zero(t, q.Allow(allow))

	q = NewPrefixed([]int32{1}, NewSchemaTokens(v, s))
	q.Accept(5)
	require.Zero(t, q.Allow(allow))
	require.False(t, q.Done())
}
