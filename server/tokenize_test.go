package server

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loomllm/loom/model/tokenizer"
)

// TestTokenize: /tokenize gives a prompt's ids as /v1/completions reads
// it, and a conversation's as /v1/chat/completions renders it (its usage
// counts the same); /detokenize turns ids back into text; bad input gets
// the usual errors, and the API key guards both.
func TestTokenize(t *testing.T) {
	ts := startServer(t, serverOptions{})
	tok := ts.model.Tokenizer()
	var tr TokenizeResponse
	r := ts.post(t, "/tokenize", map[string]any{"model": "stories260K", "prompt": "Once upon a time"}, &tr)
	require.Equal(t, 200, r.StatusCode)
	want := tok.Encode("Once upon a time", tokenizer.EncodeOptions{AddSpecial: true})
	require.Equal(t, want, tr.Tokens)
	require.Equal(t, len(want), tr.Count)
	require.Equal(t, 512, tr.MaxModelLen)
	r = ts.post(t, "/tokenize", map[string]any{"model": "stories260K", "prompt": "Once upon a time", "add_special_tokens": false}, &tr)
	require.Equal(t, 200, r.StatusCode)
	require.Equal(t, want[1:], tr.Tokens, "no BOS")

	msgs := []map[string]any{{"role": "system", "content": "Tell a story."}, {"role": "user", "content": "Once upon a time"}}
	r = ts.post(t, "/tokenize", map[string]any{"model": "stories260K", "messages": msgs}, &tr)
	require.Equal(t, 200, r.StatusCode)
	var chat ChatResponse
	r = ts.post(t, "/v1/chat/completions", map[string]any{"model": "stories260K", "messages": msgs, "max_tokens": 1}, &chat)
	require.Equal(t, 200, r.StatusCode)
	require.Equal(t, chat.Usage.PromptTokens, tr.Count)

	var dr DetokenizeResponse
	r = ts.post(t, "/detokenize", map[string]any{"model": "stories260K", "tokens": want}, &dr)
	require.Equal(t, 200, r.StatusCode)
	require.Equal(t, tok.Decode(want), dr.Prompt)

	for _, c := range []struct {
		path, body string
		status     int
	}{
		{"/tokenize", `{"model": "other", "prompt": "x"}`, 404},
		{"/tokenize", `{"prompt": "x"}`, 400},
		{"/tokenize", `{"model": "stories260K", "prompt": "x", "messages": [{"role": "user", "content": "y"}]}`, 400},
		{"/tokenize", `{"model": "stories260K", "messages": []}`, 400},
		{"/detokenize", `{"model": "stories260K", "tokens": [1, 99999]}`, 400},
		{"/detokenize", `{"model": "stories260K", "tokens": "x"}`, 400},
	} {
		var e ErrorBody
		r := ts.post(t, c.path, c.body, &e)
		require.Equal(t, c.status, r.StatusCode, c.body)
		require.NotEmpty(t, e.Error.Message, c.body)
	}

	locked := startServer(t, serverOptions{apiKey: "k"})
	r = locked.post(t, "/tokenize", map[string]any{"model": "stories260K", "prompt": "x"}, nil)
	require.Equal(t, 401, r.StatusCode)
}
