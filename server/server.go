// Package server is loom's OpenAI-compatible HTTP server: the handlers of
// /v1/completions, /v1/chat/completions, /v1/embeddings and /v1/models, server-sent event
// streaming, a health check, Prometheus metrics and bearer-token auth, in
// front of a continuous-batching scheduler (package runtime/sched).
//
// # Endpoints
//
//	POST /v1/completions       text completion (prompt: text or token ids, one or several)
//	POST /v1/chat/completions  chat completion, the prompt rendered with the model's chat template
//	GET  /v1/models            the served model (also GET /v1/models/{id})
//	POST /v1/embeddings        one vector per input: final hidden states pooled (Config.Pooling), unit length
//	POST /tokenize             token ids of a prompt, or of chat messages as rendered (vLLM's shape)
//	POST /detokenize           the text of token ids
//	GET  /health               200 {"status":"ok"}; 503 when the engine failed or the server drains
//	GET  /metrics              Prometheus text format
//
// Requests and responses follow OpenAI's API: model, max_tokens
// (max_completion_tokens), temperature, top_p, n, stream and
// stream_options.include_usage, stop, seed, presence_penalty,
// frequency_penalty, logit_bias, logprobs (completions: 0 to 5 top
// alternatives, echo; chat: logprobs with top_logprobs 0 to 20),
// response_format (text, json_object, json_schema), plus vLLM's top_k,
// min_p, repetition_penalty, ignore_eos, min_tokens, stop_token_ids and
// chat_template_kwargs, and for chat tools with tool_choice auto, none,
// required or a named function, parallel_tool_calls, and messages carrying
// tool_calls and tool_call_id (tools.go: the model's template describes the
// tools, and the reply's calls, in the syntax that template teaches, come
// back as tool_calls). Responses carry usage and finish_reason: "stop" (an
// end-of-generation token or a stop string), "length" (max_tokens or the
// context) or "tool_calls"; with Config.SplitReasoning a chat reply's
// think block comes back as reasoning_content. Defaults are
// OpenAI's: temperature 1, top_p 1, n 1, max_tokens 16 for completions
// and the rest of the context for chat. Log probabilities are the model's
// own distribution, before penalties and temperature (vLLM's default),
// with -9999 standing for minus infinity.
//
// A streamed response is a series of "data: {json}" server-sent events,
// one per generated token, flushed as each token is produced, then
// "data: [DONE]". A failure after the stream started is sent as a "data:
// {"error": ...}" event before [DONE].
//
// # Prompts and special tokens
//
// A completion prompt's text never has special tokens parsed: "<|im_end|>"
// in a prompt is text. A chat prompt is rendered from the messages with
// the chat template (chat.ChatML for models without one) and tokenized
// with special tokens parsed, which the template needs; as in Hugging
// Face, vLLM and llama.cpp, that includes special-token text inside
// message contents. BOS is added when the vocabulary asks for it and the
// rendered prompt does not start with it.
//
// # Errors
//
// Every error is OpenAI's JSON ({"error": {"message", "type", "param",
// "code"}}): 400 for malformed JSON, wrong types, out-of-range values,
// prompts that do not fit the context (code "context_length_exceeded")
// and requests that could never fit the KV cache; 401 for a missing or
// wrong API key; 404 for an unknown model or path; 405 for a wrong
// method; 413 for a body over the limit; 429 with Retry-After when the
// queue is full; 503 while shutting down or after an engine failure; 500
// otherwise. The request decoder is fuzzed: no input makes it panic.
//
// # Auth
//
// With Config.APIKey set, /v1/ endpoints need "Authorization: Bearer
// <key>"; keys are compared by their SHA-256 digests in constant time.
// /health and /metrics stay open for probes and scrapers.
package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/loomllm/loom/model/chat"
	"github.com/loomllm/loom/model/tokenizer"
	"github.com/loomllm/loom/runtime/constrain"
	"github.com/loomllm/loom/runtime/sched"
)

// ErrConfig reports an invalid Config.
var ErrConfig = errors.New("invalid server configuration")

// Config configures a Server.
type Config struct {
	// Sched runs the requests; its engine's model is the one served.
	Sched *sched.Scheduler
	// Tokenizer is the model's tokenizer.
	Tokenizer *tokenizer.Tokenizer
	// ModelName is the model's id in /v1/models; requests must name it.
	ModelName string
	// Template is the chat template; nil means chat.ChatML.
	Template *chat.Template
	// APIKey, if set, is the bearer token /v1/ endpoints require.
	APIKey string
	// MaxBodyBytes bounds a request body; 0 means 4 MiB.
	MaxBodyBytes int64
	// Metrics collects the metrics; nil makes new ones (without the
	// scheduler's step histograms, which need sched.Config.OnStep).
	Metrics *Metrics
	// Logger logs requests at debug level and failures; nil discards.
	Logger *slog.Logger
	// SplitReasoning returns a chat reply's think block (Qwen3,
	// DeepSeek-R1 style: up to "</think>") as reasoning_content and only
	// the rest as content, when the chat template writes think tags
	// (reasoning.go). Requests with logprobs keep the whole text.
	SplitReasoning bool
	// Pooling is how /v1/embeddings pools a text's final hidden states:
	// "mean", "last" or "cls" (sched.Seq.Embed); "" answers embedding
	// requests with an error saying so.
	Pooling string
}

// Server is an http.Handler serving the OpenAI API for one model.
type Server struct {
	cfg  Config
	tmpl *chat.Template

	thinking  bool             // SplitReasoning, and the template writes think tags
	toolsOnce sync.Once        // the template's tool call syntax, read on first use
	tools     toolFormat       // (see detectToolFormat)
	vocabOnce sync.Once        // the vocabulary of response_format, built on first use
	vocab     *constrain.Vocab // the tokens' bytes as a trie
	schemaMu  sync.Mutex
	schemas   map[string]*constrain.Schema // compiled response_format schemas by their text
	keySum    [32]byte
	metrics   *Metrics
	log       *slog.Logger
	created   int64
	bos, eos  string
	draining  atomic.Bool

	texts func() []string // each token's text, for log probabilities
}

// New returns a server for cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Sched == nil || cfg.Tokenizer == nil || cfg.ModelName == "" {
		return nil, fmt.Errorf("server: %w: a scheduler, a tokenizer and a model name are required", ErrConfig)
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 4 << 20
	}
	s := &Server{cfg: cfg, tmpl: cfg.Template, metrics: cfg.Metrics, log: cfg.Logger, created: time.Now().Unix()}
	if s.tmpl == nil {
		var err error
		if s.tmpl, err = chat.Parse(chat.ChatML); err != nil {
			return nil, err
		}
	}
	s.thinking = cfg.SplitReasoning && usesThinking(s.tmpl.Source())
	if s.metrics == nil {
		s.metrics = NewMetrics()
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if cfg.APIKey != "" {
		s.keySum = sha256.Sum256([]byte(cfg.APIKey))
	}
	tok := cfg.Tokenizer
	if id := tok.BOS(); id >= 0 {
		s.bos = tok.Piece(id)
	}
	if id := tok.EOS(); id >= 0 {
		s.eos = tok.Piece(id)
	}
	s.texts = sync.OnceValue(func() []string { return tokenTexts(tok) })
	return s, nil
}

// tokenTexts returns each token's text as it appears in generated text
// (a leading space kept: the token is decoded after a byte token).
func tokenTexts(tok *tokenizer.Tokenizer) []string {
	out := make([]string, tok.VocabSize())
	space, hasSpace := tok.TokenID("<0x20>")
	for id := range out {
		st := tok.NewStream()
		if hasSpace {
			st.Next(space)
		}
		out[id] = st.Next(int32(id)) + st.Flush()
	}
	return out
}

// statusWriter records the status code for the metrics and logs.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the flusher.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ServeHTTP routes a request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	endpoint := s.route(sw, r)
	if sw.code == 0 {
		sw.code = http.StatusOK
	}
	s.metrics.request(endpoint, sw.code)
	s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", sw.code, "duration", time.Since(start))
}

// route dispatches a request and returns the endpoint name for the metrics.
func (s *Server) route(w http.ResponseWriter, r *http.Request) string {
	path := r.URL.Path
	method := func(m string) bool {
		if r.Method == m || m == http.MethodGet && r.Method == http.MethodHead {
			return true
		}
		w.Header().Set("Allow", m)
		s.fail(w, &apiError{status: http.StatusMethodNotAllowed, typ: "invalid_request_error",
			message: fmt.Sprintf("%s %s is not allowed (use %s)", r.Method, path, m)})
		return false
	}
	switch {
	case path == "/health":
		if method(http.MethodGet) {
			s.health(w)
		}
		return path
	case path == "/metrics":
		if method(http.MethodGet) {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
			s.metrics.write(w, s.cfg.Sched.Stats())
		}
		return path
	case strings.HasPrefix(path, "/v1/"), path == "/tokenize", path == "/detokenize":
		if !s.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="loom"`)
			s.fail(w, &apiError{status: http.StatusUnauthorized, typ: "invalid_request_error", code: "invalid_api_key",
				message: "missing or invalid API key: send Authorization: Bearer <key>"})
			return "/v1/"
		}
	}
	switch {
	case path == "/v1/completions":
		if method(http.MethodPost) {
			s.completions(w, r)
		}
	case path == "/v1/chat/completions":
		if method(http.MethodPost) {
			s.chatCompletions(w, r)
		}
	case path == "/v1/embeddings":
		if method(http.MethodPost) {
			s.embeddings(w, r)
		}
	case path == "/tokenize":
		if method(http.MethodPost) {
			s.tokenize(w, r)
		}
	case path == "/detokenize":
		if method(http.MethodPost) {
			s.detokenize(w, r)
		}
	case path == "/v1/models":
		if method(http.MethodGet) {
			writeJSON(w, http.StatusOK, ModelList{Object: "list", Data: []Model{s.model()}})
		}
	case strings.HasPrefix(path, "/v1/models/"):
		if method(http.MethodGet) {
			if id := strings.TrimPrefix(path, "/v1/models/"); id != s.cfg.ModelName {
				s.fail(w, s.unknownModel(id))
			} else {
				writeJSON(w, http.StatusOK, s.model())
			}
		}
		return "/v1/models/"
	default:
		s.fail(w, &apiError{status: http.StatusNotFound, typ: "invalid_request_error", code: "not_found",
			message: fmt.Sprintf("no endpoint %s %s", r.Method, path)})
		return "other"
	}
	return path
}

func (s *Server) model() Model {
	return Model{ID: s.cfg.ModelName, Object: "model", Created: s.created, OwnedBy: "loom",
		MaxModelLen: s.cfg.Sched.Engine().Context()}
}

func (s *Server) unknownModel(name string) *apiError {
	return &apiError{status: http.StatusNotFound, typ: "invalid_request_error", param: "model", code: "model_not_found",
		message: fmt.Sprintf("the model %q does not exist; this server serves %q", name, s.cfg.ModelName)}
}

func (s *Server) health(w http.ResponseWriter) {
	switch err := s.cfg.Sched.Err(); {
	case err != nil:
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "error", "error": err.Error()})
	case s.draining.Load():
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "draining"})
	default:
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}
}

// authorized checks the bearer token in constant time (of its digest).
func (s *Server) authorized(r *http.Request) bool {
	if s.cfg.APIKey == "" {
		return true
	}
	key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	sum := sha256.Sum256([]byte(strings.TrimSpace(key)))
	return subtle.ConstantTimeCompare(sum[:], s.keySum[:]) == 1 && ok
}

// bodyTimeout bounds the time a client may take to send its request body
// (the server has no overall read timeout, which would cut streams).
const bodyTimeout = time.Minute

// readBody reads a request body up to the limit.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *apiError) {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(bodyTimeout))
	defer func() { _ = rc.SetReadDeadline(time.Time{}) }()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return nil, &apiError{status: http.StatusRequestEntityTooLarge, typ: "invalid_request_error",
			message: fmt.Sprintf("request body over %d bytes", s.cfg.MaxBodyBytes)}
	case err != nil:
		return nil, badRequest("", "reading the request body: %v", err)
	}
	return body, nil
}

// fail writes an error response.
func (s *Server) fail(w http.ResponseWriter, e *apiError) {
	if e.status >= 500 {
		s.log.Error("request failed", "status", e.status, "error", e.message)
	}
	writeJSON(w, e.status, errorBody(e))
}

func errorBody(e *apiError) ErrorBody {
	body := ErrorBody{Error: ErrorDetail{Message: e.message, Type: e.typ}}
	if e.param != "" {
		body.Error.Param = &e.param
	}
	if e.code != "" {
		body.Error.Code = &e.code
	}
	return body
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := jsonEncode(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"message":"encoding the response failed","type":"internal_error","param":null,"code":null}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// newID returns a random response id with the prefix.
func newID(prefix string) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// Run serves on ln until ctx ends, then shuts down gracefully: it stops
// accepting connections, lets in-flight requests finish for up to grace,
// then cancels what is left, and returns nil. It closes the scheduler;
// the caller closes the model afterwards.
func (s *Server) Run(ctx context.Context, ln net.Listener, grace time.Duration) error {
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	select {
	case err := <-served:
		_ = s.cfg.Sched.Close(context.Background())
		return fmt.Errorf("server: %w", err)
	case <-ctx.Done():
	}
	s.draining.Store(true)
	s.log.Info("shutting down", "grace", grace)
	dctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Past the grace period the scheduler ends what is left, so the
		// handlers return and Shutdown below can finish.
		if err := s.cfg.Sched.Close(dctx); err != nil {
			s.log.Warn("requests cancelled at the end of the grace period")
		}
	}()
	if err := hs.Shutdown(dctx); err != nil {
		// Handlers are ending (their sequences were cancelled); give
		// them a moment to write their last bytes, then close.
		sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = hs.Shutdown(sctx)
		scancel()
		_ = hs.Close()
	}
	wg.Wait()
	<-served
	return nil
}
