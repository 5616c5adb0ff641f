package server

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loomllm/loom"
	"github.com/loomllm/loom/runtime/sched"
)

// TestPromptLookupServer: a server with prompt lookup (sched.Config
// PromptLookup) answers greedy completions, streamed and not, with the
// text the model makes alone, and the usage counts every token.
func TestPromptLookupServer(t *testing.T) {
	ts := startServer(t, serverOptions{seqs: 4, sched: sched.Config{MaxBatch: 2, PromptLookup: 4}})
	ref := loadModel(t, 1, 0)
	defer ref.Close()
	for _, prompt := range []string{"Once upon a time", "Lily and Tom went to the park. Lily"} {
		want, err := ref.GenerateText(context.Background(), prompt, loom.GenerateOptions{MaxTokens: 120})
		require.NoError(t, err)
		var resp CompletionResponse
		r := ts.post(t, "/v1/completions", greedy(prompt, 120), &resp)
		require.Equal(t, 200, r.StatusCode)
		require.Equal(t, want, resp.Choices[0].Text)
		require.Equal(t, 120, resp.Usage.CompletionTokens)

		body, err := json.Marshal(map[string]any{"model": "stories260K", "prompt": prompt, "max_tokens": 120, "temperature": 0, "stream": true})
		require.NoError(t, err)
		sr, err := http.Post(ts.url+"/v1/completions", "application/json", bytes.NewReader(body))
		require.NoError(t, err)
		require.Equal(t, 200, sr.StatusCode)
		var text strings.Builder
		for _, data := range sse(t, sr.Body) {
			if data == "[DONE]" {
				continue
			}
			var chunk CompletionResponse
			require.NoError(t, json.Unmarshal([]byte(data), &chunk))
			if len(chunk.Choices) > 0 {
				text.WriteString(chunk.Choices[0].Text)
			}
		}
		sr.Body.Close()
		require.Equal(t, want, text.String())
	}
}
