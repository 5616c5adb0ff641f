package server

import (
	"net/http"

	"github.com/loomllm/loom/model/tokenizer"
)

// TokenizeRequest is the body of POST /tokenize (vLLM's shape): a prompt
// as the completions endpoint reads it, or chat messages as the chat
// endpoint renders them (with its tools and chat_template_kwargs).
type TokenizeRequest struct {
	Model  string  `json:"model"`
	Prompt *string `json:"prompt"`
	// AddSpecialTokens puts BOS first where the model wants it (default
	// true, as /v1/completions does); prompts only.
	AddSpecialTokens *bool `json:"add_special_tokens"`
	ChatRequest
}

// TokenizeResponse is the answer of POST /tokenize.
type TokenizeResponse struct {
	Count       int     `json:"count"`
	MaxModelLen int     `json:"max_model_len"`
	Tokens      []int32 `json:"tokens"`
}

// DetokenizeRequest is the body of POST /detokenize.
type DetokenizeRequest struct {
	Model  string  `json:"model"`
	Tokens []int64 `json:"tokens"`
}

// DetokenizeResponse is the answer of POST /detokenize.
type DetokenizeResponse struct {
	Prompt string `json:"prompt"`
}

// tokenize answers POST /tokenize: the token ids a prompt, or a chat
// conversation rendered with the model's template, becomes, so clients
// can count them against max_model_len.
func (s *Server) tokenize(w http.ResponseWriter, r *http.Request) {
	var req TokenizeRequest
	e := s.readModelRequest(w, r, &req, &req.Model)
	var ids []int32
	switch {
	case e != nil:
	case req.Prompt != nil && len(req.Messages) > 0:
		e = badRequest("prompt", "give prompt or messages, not both")
	case req.Prompt != nil:
		add := req.AddSpecialTokens == nil || *req.AddSpecialTokens
		ids = s.cfg.Tokenizer.Encode(*req.Prompt, tokenizer.EncodeOptions{AddSpecial: add})
	default:
		req.ChatRequest.Model = req.Model
		j := &job{chat: true, logprobs: -1}
		if e = s.parseChat(&req.ChatRequest, j); e == nil {
			ids = j.prompts[0]
		}
	}
	if e != nil {
		s.fail(w, e)
		return
	}
	if ids == nil {
		ids = []int32{}
	}
	writeJSON(w, http.StatusOK, TokenizeResponse{Count: len(ids), MaxModelLen: s.cfg.Sched.Engine().Context(), Tokens: ids})
}

// detokenize answers POST /detokenize: the text of token ids.
func (s *Server) detokenize(w http.ResponseWriter, r *http.Request) {
	var req DetokenizeRequest
	e := s.readModelRequest(w, r, &req, &req.Model)
	tok := s.cfg.Tokenizer
	ids := make([]int32, len(req.Tokens))
	for i, id := range req.Tokens {
		if e != nil {
			break
		}
		if id < 0 || id >= int64(tok.VocabSize()) {
			e = badRequest("tokens", "token id %d is outside the vocabulary (0 to %d)", id, tok.VocabSize()-1)
		}
		ids[i] = int32(id)
	}
	if e != nil {
		s.fail(w, e)
		return
	}
	writeJSON(w, http.StatusOK, DetokenizeResponse{Prompt: tok.Decode(ids)})
}

// readModelRequest decodes the body into v and checks the model it names
// (*model, a field of v).
func (s *Server) readModelRequest(w http.ResponseWriter, r *http.Request, v any, model *string) *apiError {
	body, e := s.readBody(w, r)
	if e == nil {
		e = decodeJSON(body, v)
	}
	if e == nil {
		e = s.checkModel(*model)
	}
	return e
}

// checkModel answers a request naming no model or another one.
func (s *Server) checkModel(name string) *apiError {
	switch name {
	case s.cfg.ModelName:
		return nil
	case "":
		return badRequest("model", "model is required (this server serves %q)", s.cfg.ModelName)
	}
	return s.unknownModel(name)
}
