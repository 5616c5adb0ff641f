package server

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/loomllm/loom/model/tokenizer"
	"github.com/loomllm/loom/runtime/sched"
)

// EmbeddingRequest is the body of POST /v1/embeddings.
type EmbeddingRequest struct {
	Model string `json:"model"`
	// Input is a string, a list of strings, a list of token ids, or a
	// list of lists of token ids: one embedding each.
	Input Prompt `json:"input"`
	// EncodingFormat is "float" (the default) or "base64" (the float32
	// values, little-endian, base64-encoded).
	EncodingFormat string `json:"encoding_format"`
	// Dimensions, if set, keeps the first Dimensions values of each
	// embedding, scaled back to unit length (for models trained for it,
	// such as Qwen3-Embedding's Matryoshka representations).
	Dimensions *int   `json:"dimensions"`
	User       string `json:"user"` // accepted, not used
}

// EmbeddingResponse is the answer of POST /v1/embeddings.
type EmbeddingResponse struct {
	Object string      `json:"object"` // "list"
	Data   []Embedding `json:"data"`
	Model  string      `json:"model"`
	Usage  struct {
		PromptTokens int `json:"prompt_tokens"`
		TotalTokens  int `json:"total_tokens"`
	} `json:"usage"`
}

// Embedding is one input's vector: []float32, or a base64 string.
type Embedding struct {
	Object    string `json:"object"` // "embedding"
	Index     int    `json:"index"`
	Embedding any    `json:"embedding"`
}

// maxEmbeddingInputs bounds the inputs of one request.
const maxEmbeddingInputs = 256

// embeddings answers POST /v1/embeddings: each input's final hidden
// states pooled as Config.Pooling says, at unit length.
func (s *Server) embeddings(w http.ResponseWriter, r *http.Request) {
	arrived := time.Now()
	var req EmbeddingRequest
	e := s.readModelRequest(w, r, &req, &req.Model)
	var prompts [][]int32
	if e == nil {
		prompts, e = s.parseEmbedding(&req)
	}
	if e != nil {
		s.fail(w, e)
		return
	}
	seqs := make([]sched.Seq, len(prompts))
	tokens := 0
	for i, p := range prompts {
		seqs[i] = sched.Seq{Prompt: p, Logprobs: -1, Embed: s.cfg.Pooling}
		tokens += len(p)
	}
	streams, err := s.cfg.Sched.Submit(r.Context(), seqs)
	if err != nil {
		if errors.Is(err, sched.ErrQueueFull) {
			w.Header().Set("Retry-After", "1")
		}
		s.fail(w, submitError(err))
		return
	}
	s.metrics.tokens(tokens, 0)
	resp := EmbeddingResponse{Object: "list", Model: s.cfg.ModelName, Data: make([]Embedding, len(streams))}
	resp.Usage.PromptTokens, resp.Usage.TotalTokens = tokens, tokens
	for i, st := range streams {
		var vec []float32
		for {
			evs, err := st.Next(r.Context(), nil)
			if err == nil && len(evs) > 0 {
				ev := evs[len(evs)-1]
				err = ev.Err
				vec = ev.Embedding
			}
			if err != nil {
				if e := eventError(err); e != nil {
					s.fail(w, e)
				}
				return
			}
			if vec != nil {
				break
			}
		}
		if d := req.Dimensions; d != nil {
			vec = unitLength(vec[:*d])
		}
		resp.Data[i] = Embedding{Object: "embedding", Index: i, Embedding: vec}
		if req.EncodingFormat == "base64" {
			b := make([]byte, 4*len(vec))
			for k, v := range vec {
				binary.LittleEndian.PutUint32(b[4*k:], math.Float32bits(v))
			}
			resp.Data[i].Embedding = base64.StdEncoding.EncodeToString(b)
		}
	}
	s.metrics.e2e.observe(time.Since(arrived).Seconds())
	writeJSON(w, http.StatusOK, resp)
}

// parseEmbedding validates an embedding request and returns its inputs'
// token ids.
func (s *Server) parseEmbedding(req *EmbeddingRequest) ([][]int32, *apiError) {
	switch s.cfg.Pooling {
	case "mean", "last", "cls":
	case "":
		return nil, badRequest("model", "this model does not say how to pool its tokens into an embedding; start loom serve with --pooling mean, last or cls")
	default:
		return nil, badRequest("model", "this model's pooling %q is not one loom does (mean, last, cls)", s.cfg.Pooling)
	}
	dim := s.cfg.Sched.Engine().Model().Config().Dim
	switch {
	case !req.Input.set || req.Input.count() == 0:
		return nil, badRequest("input", "input is required")
	case req.Input.count() > maxEmbeddingInputs:
		return nil, badRequest("input", "at most %d inputs per request, got %d", maxEmbeddingInputs, req.Input.count())
	case req.EncodingFormat != "" && req.EncodingFormat != "float" && req.EncodingFormat != "base64":
		return nil, badRequest("encoding_format", "encoding_format must be float or base64, got %q", req.EncodingFormat)
	case req.Dimensions != nil && (*req.Dimensions < 1 || *req.Dimensions > dim):
		return nil, badRequest("dimensions", "dimensions must be between 1 and %d, got %d", dim, *req.Dimensions)
	}
	tok := s.cfg.Tokenizer
	ctx := s.cfg.Sched.Engine().Context()
	var prompts [][]int32
	for _, text := range req.Input.Texts {
		if text == "" {
			return nil, badRequest("input", "input %d is empty", len(prompts))
		}
		prompts = append(prompts, tok.Encode(text, tokenizer.EncodeOptions{AddSpecial: true}))
	}
	for _, list := range req.Input.IDs {
		if len(list) == 0 {
			return nil, badRequest("input", "input %d is empty", len(prompts))
		}
		ids := make([]int32, len(list))
		for i, id := range list {
			if id < 0 || id >= int64(tok.VocabSize()) {
				return nil, badRequest("input", "token id %d is outside the vocabulary (0 to %d)", id, tok.VocabSize()-1)
			}
			ids[i] = int32(id)
		}
		prompts = append(prompts, ids)
	}
	for i, p := range prompts {
		if len(p) > ctx {
			return nil, &apiError{status: 400, typ: "invalid_request_error", param: "input", code: "context_length_exceeded",
				message: fmt.Sprintf("this model's maximum context length is %d tokens, but input %d has %d tokens", ctx, i, len(p))}
		}
	}
	return prompts, nil
}

// unitLength scales v to length 1 in place (a zero vector stays zero).
func unitLength(v []float32) []float32 {
	var n float64
	for _, x := range v {
		n += float64(x) * float64(x)
	}
	if n = math.Sqrt(n); n > 0 {
		for i := range v {
			v[i] = float32(float64(v[i]) / n)
		}
	}
	return v
}
