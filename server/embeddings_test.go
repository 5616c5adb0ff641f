package server

import (
	"encoding/base64"
	"encoding/binary"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestEmbeddings: /v1/embeddings returns one unit vector per input, in
// order, the same for a text alone or among others and for its token ids;
// base64 carries the same floats; dimensions truncates to unit length;
// bad inputs get 400s naming the field.
func TestEmbeddings(t *testing.T) {
	ts := startServer(t, serverOptions{pooling: "mean"})
	embed := func(body map[string]any) EmbeddingResponse {
		body["model"] = "stories260K"
		var resp EmbeddingResponse
		r := ts.post(t, "/v1/embeddings", body, &resp)
		require.Equal(t, 200, r.StatusCode)
		return resp
	}
	texts := []string{"Once upon a time", "The cat sat on the mat", strings.Repeat("Lily went to the park. ", 8)}
	many := embed(map[string]any{"input": texts})
	require.Equal(t, "list", many.Object)
	require.Len(t, many.Data, 3)
	vec := func(e Embedding) []float64 {
		var v []float64
		for _, x := range e.Embedding.([]any) {
			v = append(v, x.(float64))
		}
		return v
	}
	norm := func(v []float64) float64 {
		var n float64
		for _, x := range v {
			n += x * x
		}
		return math.Sqrt(n)
	}
	for i, d := range many.Data {
		require.Equal(t, i, d.Index)
		require.Len(t, vec(d), 64)
		require.InDelta(t, 1, norm(vec(d)), 1e-5)
	}
	require.Greater(t, many.Usage.PromptTokens, 20)
	require.Equal(t, many.Usage.PromptTokens, many.Usage.TotalTokens)
	alone := embed(map[string]any{"input": texts[1]})
	require.InDeltaSlice(t, vec(many.Data[1]), vec(alone.Data[0]), 1e-5, "the same alone or batched")
	require.NotEqual(t, vec(many.Data[0]), vec(many.Data[1]))

	var tk TokenizeResponse
	require.Equal(t, 200, ts.post(t, "/tokenize", map[string]any{"model": "stories260K", "prompt": texts[1]}, &tk).StatusCode)
	ids := embed(map[string]any{"input": [][]int32{tk.Tokens}})
	require.InDeltaSlice(t, vec(alone.Data[0]), vec(ids.Data[0]), 1e-6, "token ids give the same")

	b64 := embed(map[string]any{"input": texts[1], "encoding_format": "base64"})
	raw, err := base64.StdEncoding.DecodeString(b64.Data[0].Embedding.(string))
	require.NoError(t, err)
	require.Len(t, raw, 4*64)
	for k, want := range vec(alone.Data[0]) {
		require.InDelta(t, want, math.Float32frombits(binary.LittleEndian.Uint32(raw[4*k:])), 1e-7)
	}

	short := embed(map[string]any{"input": texts[1], "dimensions": 16})
	require.Len(t, vec(short.Data[0]), 16)
	require.InDelta(t, 1, norm(vec(short.Data[0])), 1e-5)

	for body, param := range map[string]string{
		`{"model": "stories260K"}`:                                                       "input",
		`{"model": "stories260K", "input": ""}`:                                          "input",
		`{"model": "stories260K", "input": [[1, 99999]]}`:                                "input",
		`{"model": "stories260K", "input": "x", "encoding_format": "int8"}`:              "encoding_format",
		`{"model": "stories260K", "input": "x", "dimensions": 65}`:                       "dimensions",
		`{"model": "stories260K", "input": "` + strings.Repeat("once upon ", 400) + `"}`: "input",
		`{"model": "gpt-4", "input": "x"}`:                                               "model",
	} {
		var e ErrorBody
		r := ts.post(t, "/v1/embeddings", body, &e)
		require.Contains(t, []int{400, 404}, r.StatusCode, body)
		require.Equal(t, param, *e.Error.Param, body)
	}
	require.Zero(t, ts.sched.Stats().BlocksUsed)
}
