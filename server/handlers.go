package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/loomllm/loom/model/chat"
	"github.com/loomllm/loom/model/tokenizer"
	"github.com/loomllm/loom/runtime/constrain"
	"github.com/loomllm/loom/runtime/generate"
	"github.com/loomllm/loom/runtime/sample"
	"github.com/loomllm/loom/runtime/sched"
)

// Limits on request fields.
const (
	maxN           = 128 // choices per request (the batch size bounds it further)
	maxStops       = 16
	maxStopBytes   = 512
	maxPrompts     = 128
	maxMessages    = 4096
	maxCompletionN = 5 // logprobs of the completions API
)

// job is a validated generation request, common to both endpoints.
type job struct {
	endpoint   string
	chat       bool
	arrived    time.Time
	prompts    [][]int32
	n          int
	opt        generate.Options
	seed       *int64
	logprobs   int // -1: none
	stream     bool
	withUsage  bool
	defaultMax int        // max_tokens when absent; 0: the rest of the context
	tools      toolFormat // the call syntax to look for in chat replies; toolsUnknown: none
	think      int        // split chat replies' reasoning: 0 no, thinkMaybe+1 (a block may open) or thinkIn+1 (the prompt opened it)
	choice     toolChoice // tool_choice and parallel_tool_calls
	echo       bool       // completions: the prompt precedes each choice's text (and its tokens the log probabilities)
}

func (s *Server) completions(w http.ResponseWriter, r *http.Request) {
	j := &job{endpoint: "/v1/completions", arrived: time.Now(), logprobs: -1, defaultMax: 16}
	body, e := s.readBody(w, r)
	if e == nil {
		var req CompletionRequest
		if e = decodeJSON(body, &req); e == nil {
			e = s.parseCompletion(&req, j)
		}
	}
	if e != nil {
		s.fail(w, e)
		return
	}
	s.generate(w, r, j)
}

func (s *Server) chatCompletions(w http.ResponseWriter, r *http.Request) {
	j := &job{endpoint: "/v1/chat/completions", chat: true, arrived: time.Now(), logprobs: -1}
	body, e := s.readBody(w, r)
	if e == nil {
		var req ChatRequest
		if e = decodeJSON(body, &req); e == nil {
			e = s.parseChat(&req, j)
		}
	}
	if e != nil {
		s.fail(w, e)
		return
	}
	s.generate(w, r, j)
}

// parseCompletion validates a completion request into j.
func (s *Server) parseCompletion(req *CompletionRequest, j *job) *apiError {
	if e := s.parseSampling(&req.samplingFields, j); e != nil {
		return e
	}
	switch {
	case req.Suffix != "":
		return badRequest("suffix", "suffix is not supported")
	case req.BestOf != nil && *req.BestOf != j.n:
		return badRequest("best_of", "best_of must equal n (%d) when set", j.n)
	case !req.Prompt.set || req.Prompt.count() == 0:
		return badRequest("prompt", "prompt is required")
	case req.Prompt.count() > maxPrompts:
		return badRequest("prompt", "at most %d prompts per request, got %d", maxPrompts, req.Prompt.count())
	}
	if req.Logprobs != nil {
		if *req.Logprobs < 0 || *req.Logprobs > maxCompletionN {
			return badRequest("logprobs", "logprobs must be between 0 and %d, got %d", maxCompletionN, *req.Logprobs)
		}
		j.logprobs = *req.Logprobs
	}
	j.echo = req.Echo
	if e := s.parseResponseFormat(req.ResponseFormat, j); e != nil {
		return e
	}
	tok := s.cfg.Tokenizer
	for _, text := range req.Prompt.Texts {
		ids := tok.Encode(text, tokenizer.EncodeOptions{AddSpecial: true})
		if len(ids) == 0 {
			if tok.BOS() < 0 {
				return badRequest("prompt", "the prompt is empty and the model has no BOS token to start from")
			}
			ids = []int32{tok.BOS()}
		}
		j.prompts = append(j.prompts, ids)
	}
	for _, list := range req.Prompt.IDs {
		if len(list) == 0 {
			return badRequest("prompt", "a token-id prompt is empty")
		}
		ids := make([]int32, len(list))
		for i, id := range list {
			if id < 0 || id >= int64(tok.VocabSize()) {
				return badRequest("prompt", "token id %d is outside the vocabulary (0 to %d)", id, tok.VocabSize()-1)
			}
			ids[i] = int32(id)
		}
		j.prompts = append(j.prompts, ids)
	}
	return nil
}

// parseChat validates a chat request into j, rendering the prompt.
func (s *Server) parseChat(req *ChatRequest, j *job) *apiError {
	if req.MaxCompletionTokens != nil {
		req.MaxTokens = req.MaxCompletionTokens
	}
	if e := s.parseSampling(&req.samplingFields, j); e != nil {
		return e
	}
	switch {
	case len(req.Messages) == 0:
		return badRequest("messages", "messages must not be empty")
	case len(req.Messages) > maxMessages:
		return badRequest("messages", "at most %d messages, got %d", maxMessages, len(req.Messages))
	}
	if e := s.parseResponseFormat(req.ResponseFormat, j); e != nil {
		return e
	}
	if req.Logprobs {
		j.logprobs = 0
		if req.TopLogprobs != nil {
			if *req.TopLogprobs < 0 || *req.TopLogprobs > sched.MaxTopLogprobs {
				return badRequest("top_logprobs", "top_logprobs must be between 0 and %d, got %d", sched.MaxTopLogprobs, *req.TopLogprobs)
			}
			j.logprobs = *req.TopLogprobs
		}
	} else if req.TopLogprobs != nil && *req.TopLogprobs > 0 {
		return badRequest("top_logprobs", "top_logprobs needs logprobs: true")
	}
	tools, decls, choice, e := parseTools(req.Tools, req.ToolChoice, req.ParallelToolCalls)
	if e != nil {
		return e
	}
	vars := req.ChatTemplateKwargs
	if tools != nil {
		if j.opt.NewConstraint != nil {
			return badRequest("tools", "tools and response_format %s do not go together", req.ResponseFormat.Type)
		}
		if req.Logprobs {
			return badRequest("logprobs", "logprobs and tools do not go together")
		}
		j.choice = choice
		if j.tools = s.toolFormat(); j.tools == toolsUnknown {
			return badRequest("tools", "this model's chat template does not describe tools in a call syntax loom reads (Hermes/Qwen <tool_call>, Mistral [TOOL_CALLS], Llama 3 JSON)")
		}
		vars = maps.Clone(vars)
		if vars == nil {
			vars = map[string]any{}
		}
		vars["tools"] = tools
	}
	msgs := make([]chat.Message, len(req.Messages))
	for i, m := range req.Messages {
		if m.Role == "" || len(m.Role) > 64 {
			return badRequest(fmt.Sprintf("messages[%d].role", i), "messages[%d] needs a role", i)
		}
		msgs[i] = chat.Message{Role: m.Role, Content: string(m.Content), Name: m.Name, ToolCallID: m.ToolCallID}
		if len(m.ToolCalls) > 0 {
			msgs[i].ToolCalls = templateCalls(m.ToolCalls)
		}
	}
	ids, prompt, err := chat.EncodeText(s.tmpl, s.cfg.Tokenizer, msgs, chat.Options{BOS: s.bos, EOS: s.eos, AddGenerationPrompt: true,
		Vars: vars, MaxOutput: int(4 * s.cfg.MaxBodyBytes)})
	if err == nil && s.thinking && !req.Logprobs {
		j.think = thinkMaybe + 1
		if promptOpensThinking(prompt) {
			j.think = thinkIn + 1
		}
	}
	if err != nil {
		var ex *chat.Exception
		switch {
		case errors.As(err, &ex):
			return badRequest("messages", "%s", ex.Message)
		case errors.Is(err, chat.ErrEmpty):
			return badRequest("messages", "the rendered prompt is empty")
		}
		return badRequest("messages", "the chat template cannot render these messages: %v", err)
	}
	if choice.forced() {
		// The reply is a call: the constraint writes the call syntax's
		// tokens and holds the JSON to the function's parameters.
		if j.think == thinkIn+1 {
			return badRequest("tool_choice", "this prompt opens a reasoning block, which a forced call would cut short; set chat_template_kwargs {\"enable_thinking\": false} or use tool_choice auto")
		}
		newConstraint, e := s.callConstraint(j.tools, decls, choice)
		if e != nil {
			return e
		}
		j.opt.NewConstraint = newConstraint
	}
	j.prompts = [][]int32{ids}
	return nil
}

// maxStopTokenIDs bounds stop_token_ids.
const maxStopTokenIDs = 64

// endTokens returns what ends a choice: the model's end tokens (none with
// ignore_eos) and stop_token_ids.
func endTokens(model func(int32) bool, f *samplingFields, vocab int) (func(int32) bool, *apiError) {
	if len(f.StopTokenIDs) > maxStopTokenIDs {
		return nil, badRequest("stop_token_ids", "at most %d stop_token_ids, got %d", maxStopTokenIDs, len(f.StopTokenIDs))
	}
	stop := map[int32]bool{}
	for _, id := range f.StopTokenIDs {
		if id < 0 || id >= int64(vocab) {
			return nil, badRequest("stop_token_ids", "token id %d is outside the vocabulary (0 to %d)", id, vocab-1)
		}
		stop[int32(id)] = true
	}
	switch {
	case len(stop) == 0 && !f.IgnoreEOS:
		return model, nil
	case f.IgnoreEOS:
		return func(id int32) bool { return stop[id] }, nil
	}
	return func(id int32) bool { return stop[id] || model(id) }, nil
}

// parseSampling validates the fields both endpoints share.
func (s *Server) parseSampling(f *samplingFields, j *job) *apiError {
	if f.Model != s.cfg.ModelName {
		if f.Model == "" {
			return badRequest("model", "model is required (this server serves %q)", s.cfg.ModelName)
		}
		return s.unknownModel(f.Model)
	}
	for _, e := range []*apiError{
		checkRange("temperature", f.Temperature, 0, 2),
		checkRange("top_p", f.TopP, math.SmallestNonzeroFloat64, 1),
		checkRange("min_p", f.MinP, 0, 1),
		checkRange("presence_penalty", f.PresencePenalty, -2, 2),
		checkRange("frequency_penalty", f.FrequencyPenalty, -2, 2),
		checkRange("repetition_penalty", f.RepPenalty, math.SmallestNonzeroFloat64, 10),
	} {
		if e != nil {
			return e
		}
	}
	vocab := s.cfg.Tokenizer.VocabSize()
	o := sample.Options{Temperature: 1, RepeatLastN: -1}
	get := func(p *float64, dst *float32) {
		if p != nil {
			*dst = float32(*p)
		}
	}
	get(f.Temperature, &o.Temperature)
	get(f.TopP, &o.TopP)
	get(f.MinP, &o.MinP)
	get(f.PresencePenalty, &o.PresencePenalty)
	get(f.FrequencyPenalty, &o.FrequencyPenalty)
	get(f.RepPenalty, &o.RepeatPenalty)
	if f.TopK != nil {
		if *f.TopK < -1 || *f.TopK > vocab {
			return badRequest("top_k", "top_k must be -1 (off) or between 0 and %d, got %d", vocab, *f.TopK)
		}
		o.TopK = max(*f.TopK, 0)
	}
	var e *apiError
	if o.LogitBias, e = logitBias(f.LogitBias, vocab); e != nil {
		return e
	}
	j.n = 1
	if f.N != nil {
		if *f.N < 1 || *f.N > maxN {
			return badRequest("n", "n must be between 1 and %d, got %d", maxN, *f.N)
		}
		j.n = *f.N
	}
	if f.MaxTokens != nil && *f.MaxTokens < 1 {
		return badRequest("max_tokens", "max_tokens must be at least 1, got %d", *f.MaxTokens)
	}
	if len(f.Stop) > maxStops {
		return badRequest("stop", "at most %d stop strings, got %d", maxStops, len(f.Stop))
	}
	for _, st := range f.Stop {
		if len(st) > maxStopBytes {
			return badRequest("stop", "stop strings are at most %d bytes", maxStopBytes)
		}
	}
	if f.StreamOptions != nil && !f.Stream {
		return badRequest("stream_options", "stream_options needs stream: true")
	}
	tok := s.cfg.Tokenizer
	isEnd, e := endTokens(tok.IsEndOfGeneration, f, vocab)
	if e != nil {
		return e
	}
	j.opt = generate.Options{Sampling: o, Stop: f.Stop, IsEnd: isEnd,
		NewDecoder: func() generate.Decoder { return tok.NewStream() }}
	if f.MinTokens != nil {
		if *f.MinTokens < 0 || f.MaxTokens != nil && *f.MinTokens > *f.MaxTokens {
			return badRequest("min_tokens", "min_tokens must be between 0 and max_tokens, got %d", *f.MinTokens)
		}
		j.opt.MinTokens = *f.MinTokens
	}
	if f.MaxTokens != nil {
		j.opt.MaxTokens = *f.MaxTokens
		j.defaultMax = -1
	}
	j.seed = f.Seed
	j.stream = f.Stream
	j.withUsage = f.StreamOptions != nil && f.StreamOptions.IncludeUsage
	return nil
}

// id returns a new response id.
func (j *job) id() string {
	if j.chat {
		return newID("chatcmpl-")
	}
	return newID("cmpl-")
}

// choice is the state of one generated sequence in a response.
type choice struct {
	prompt   []sched.PromptLogprob // the prompt's log probabilities (echo)
	echoed   bool                  // a stream has sent the prompt (echo)
	text     strings.Builder
	events   []sched.Event // token events, kept for log probabilities
	offset   int           // completions text_offset of the next token
	last     time.Time     // the previous token's time
	stats    generate.Stats
	finished bool
}

// choiceStats lists the choices' statistics, in order.
func choiceStats(choices []choice) []generate.Stats {
	st := make([]generate.Stats, len(choices))
	for i := range choices {
		st[i] = choices[i].stats
	}
	return st
}

// generate submits a validated job and writes the response.
func (s *Server) generate(w http.ResponseWriter, r *http.Request, j *job) {
	ctxLen := s.cfg.Sched.Engine().Context()
	seqs := make([]sched.Seq, 0, len(j.prompts)*j.n)
	for _, p := range j.prompts {
		opt := j.opt
		param := "prompt"
		if j.chat {
			param = "messages"
		}
		if len(p) >= ctxLen {
			s.fail(w, &apiError{status: 400, typ: "invalid_request_error", param: param, code: "context_length_exceeded",
				message: fmt.Sprintf("this model's maximum context length is %d tokens, but the prompt has %d tokens", ctxLen, len(p))})
			return
		}
		if j.defaultMax > 0 {
			opt.MaxTokens = min(j.defaultMax, ctxLen-len(p))
		}
		if len(p)+opt.MaxTokens > ctxLen {
			s.fail(w, &apiError{status: 400, typ: "invalid_request_error", param: "max_tokens", code: "context_length_exceeded",
				message: fmt.Sprintf("this model's maximum context length is %d tokens, but %d were requested (%d in the prompt, %d to generate)",
					ctxLen, len(p)+opt.MaxTokens, len(p), opt.MaxTokens)})
			return
		}
		for range j.n {
			o := opt
			if j.seed != nil {
				o.Sampling.Seed = uint64(*j.seed) + uint64(len(seqs)) // distinct per choice, reproducible
			} else {
				o.Sampling.Seed = rand.Uint64()
			}
			seqs = append(seqs, sched.Seq{Prompt: p, Options: o, Logprobs: j.logprobs, Echo: j.echo && j.logprobs >= 0})
		}
	}
	ctx := r.Context()
	streams, err := s.cfg.Sched.Submit(ctx, seqs)
	if err != nil {
		if errors.Is(err, sched.ErrQueueFull) {
			w.Header().Set("Retry-After", "1")
		}
		s.fail(w, submitError(err))
		return
	}
	promptTokens := 0
	for _, p := range j.prompts {
		promptTokens += len(p)
	}
	s.metrics.tokens(promptTokens*j.n, 0)
	if j.stream {
		s.stream(w, ctx, j, streams, promptTokens)
	} else {
		s.respond(w, ctx, j, streams, promptTokens)
	}
}

// submitError maps the scheduler's errors to API errors.
func submitError(err error) *apiError {
	switch {
	case errors.Is(err, sched.ErrQueueFull):
		return &apiError{status: http.StatusTooManyRequests, typ: "rate_limit_error", code: "server_busy",
			message: "the server is busy (its queue is full); retry later"}
	case errors.Is(err, sched.ErrClosed):
		return &apiError{status: http.StatusServiceUnavailable, typ: "server_error", message: "the server is shutting down"}
	case errors.Is(err, sched.ErrTooLarge):
		return &apiError{status: http.StatusBadRequest, typ: "invalid_request_error", code: "request_too_large", message: err.Error()}
	case errors.Is(err, generate.ErrContext):
		return &apiError{status: http.StatusBadRequest, typ: "invalid_request_error", code: "context_length_exceeded", message: err.Error()}
	case errors.Is(err, generate.ErrBatch), errors.Is(err, sample.ErrOptions):
		return badRequest("", "%v", err)
	}
	return &apiError{status: http.StatusServiceUnavailable, typ: "server_error", message: fmt.Sprintf("generation failed: %v", err)}
}

// tagged is an event of choice i.
type tagged struct {
	i   int
	ev  sched.Event
	err error
}

// fanIn merges the streams' events into one channel, closed when every
// stream has ended or ctx ends.
func fanIn(ctx context.Context, streams []*sched.Stream) <-chan tagged {
	ch := make(chan tagged, 16)
	var wg sync.WaitGroup
	for i, st := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []sched.Event
			for {
				evs, err := st.Next(ctx, buf)
				if err == io.EOF {
					return
				}
				if err != nil {
					select {
					case ch <- tagged{i: i, err: err}:
					case <-ctx.Done():
					}
					return
				}
				for _, ev := range evs {
					select {
					case ch <- tagged{i: i, ev: ev}:
					case <-ctx.Done():
						return
					}
				}
				buf = evs
			}
		}()
	}
	go func() {
		wg.Wait()
		close(ch)
	}()
	return ch
}

// observe updates a choice and the latency metrics with an event.
func (s *Server) observe(j *job, c *choice, ev sched.Event, first *bool) {
	if ev.Prompt != nil {
		c.prompt = ev.Prompt
	}
	if ev.Done {
		c.finished, c.stats = true, ev.Stats
		if ev.Err == nil {
			s.metrics.e2e.observe(ev.Time.Sub(j.arrived).Seconds())
			s.metrics.tokens(0, ev.Stats.Tokens)
		}
		return
	}
	c.text.WriteString(ev.Token.Text)
	if ev.Token.ID < 0 {
		return
	}
	if *first {
		*first = false
		s.metrics.ttft.observe(ev.Time.Sub(j.arrived).Seconds())
	}
	if !c.last.IsZero() {
		s.metrics.itl.observe(ev.Time.Sub(c.last).Seconds())
	}
	c.last = ev.Time
}

// eventError maps a sequence's failure to an API error; nil when the
// client has gone (nothing to answer).
func eventError(err error) *apiError {
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return nil
	case errors.Is(err, sched.ErrClosed):
		return &apiError{status: http.StatusServiceUnavailable, typ: "server_error", message: "the server shut down before the request finished"}
	}
	return &apiError{status: http.StatusInternalServerError, typ: "server_error", message: fmt.Sprintf("generation failed: %v", err)}
}

// respond collects every choice and writes one response.
func (s *Server) respond(w http.ResponseWriter, ctx context.Context, j *job, streams []*sched.Stream, promptTokens int) {
	choices := make([]choice, len(streams))
	first, failed := true, false
	eventBatches(ctx, streams, func(batch []tagged) bool {
		for _, t := range batch {
			err := t.err
			if err == nil {
				s.observe(j, &choices[t.i], t.ev, &first)
				if t.ev.Token.ID >= 0 && !t.ev.Done {
					choices[t.i].events = append(choices[t.i].events, t.ev)
				}
				err = t.ev.Err
			}
			if err != nil {
				if e := eventError(err); e != nil {
					s.fail(w, e)
				}
				failed = true
				return false
			}
		}
		return true
	})
	if failed {
		return
	}
	if ctx.Err() != nil {
		return
	}
	usage := &Usage{PromptTokens: promptTokens}
	id, created := j.id(), time.Now().Unix()
	if j.chat {
		resp := ChatResponse{ID: id, Object: "chat.completion", Created: created, Model: s.cfg.ModelName, Usage: usage}
		for i := range choices {
			c := &choices[i]
			text := c.text.String()
			reason := finishReason(c.stats.Finish)
			reply := &ChatReply{Role: "assistant", Content: &text}
			if j.think != 0 {
				var reasoning string
				reasoning, text = splitReasoning(text, j.think == thinkIn+1)
				if reasoning != "" {
					reply.ReasoningContent = &reasoning
				}
			}
			if j.tools != toolsUnknown {
				if content, calls, ok := parseToolCalls(j.tools, text); ok {
					reply.ToolCalls, reason = j.choice.firstCall(calls), "tool_calls"
					reply.Content = nil
					if content != "" {
						reply.Content = &content
					}
				}
			}
			ch := ChatChoice{Index: i, Message: reply, FinishReason: &reason}
			if j.logprobs >= 0 {
				ch.Logprobs = s.chatLogprobs(c.events)
			}
			resp.Choices = append(resp.Choices, ch)
		}
		usage.finish(choiceStats(choices), j.n)
		writeJSON(w, http.StatusOK, resp)
		return
	}
	resp := CompletionResponse{ID: id, Object: "text_completion", Created: created, Model: s.cfg.ModelName, Usage: usage}
	for i := range choices {
		c := &choices[i]
		reason := finishReason(c.stats.Finish)
		ch := CompletionChoice{Index: i, Text: c.text.String(), FinishReason: &reason}
		var echoed *CompletionLogprobs
		if j.echo {
			text, lp := s.echo(j.prompts[i/j.n], c.prompt, j.logprobs >= 0, &c.offset)
			ch.Text, echoed = text+ch.Text, lp
		}
		if j.logprobs >= 0 {
			ch.Logprobs = echoed.join(s.completionLogprobs(c.events, &c.offset))
		}
		resp.Choices = append(resp.Choices, ch)
	}
	usage.finish(choiceStats(choices), j.n)
	writeJSON(w, http.StatusOK, resp)
}

// stream writes the choices as server-sent events, one per token.
func (s *Server) stream(w http.ResponseWriter, ctx context.Context, j *job, streams []*sched.Stream, promptTokens int) {
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	id, created := j.id(), time.Now().Unix()
	broken := false
	var out []byte // events not yet written
	send := func(v any) {
		if broken {
			return
		}
		b, err := jsonMarshal(v)
		if err != nil {
			broken = true
			return
		}
		out = append(out, "data: "...)
		out = append(out, b...)
		out = append(out, "\n\n"...)
	}
	flush := func() {
		if broken || len(out) == 0 {
			return
		}
		_, err := w.Write(out)
		if err == nil {
			err = rc.Flush()
		}
		broken = err != nil
		out = out[:0]
	}
	object := "text_completion"
	if j.chat {
		object = "chat.completion.chunk"
	}
	prefix := chunkPrefix(id, object, created, s.cfg.ModelName)
	chatChunk := func(c ChatChoice) ChatResponse {
		return ChatResponse{ID: id, Object: "chat.completion.chunk", Created: created, Model: s.cfg.ModelName, Choices: []ChatChoice{c}}
	}
	textChunk := func(c CompletionChoice) CompletionResponse {
		return CompletionResponse{ID: id, Object: "text_completion", Created: created, Model: s.cfg.ModelName, Choices: []CompletionChoice{c}}
	}
	if j.chat {
		empty := ""
		for i := range streams {
			send(chatChunk(ChatChoice{Index: i, Delta: &ChatReply{Role: "assistant", Content: &empty}}))
		}
		flush()
	}
	choices := make([]choice, len(streams))
	var thinks []*thinkStream // per choice, with SplitReasoning: the reply split into reasoning and content
	if j.think != 0 {
		thinks = make([]*thinkStream, len(streams))
		for i := range thinks {
			thinks[i] = newThinkStream(j.think == thinkIn+1)
		}
	}
	reasoningDelta := func(i int, r string) {
		if r != "" {
			send(chatChunk(ChatChoice{Index: i, Delta: &ChatReply{ReasoningContent: &r}}))
		}
	}
	var calls []toolStream // per choice, with tools: text held back from where a call may begin
	if j.tools != toolsUnknown {
		calls = make([]toolStream, len(streams))
		for i := range calls {
			calls[i].format = j.tools
		}
	}
	first, ended, running := true, false, len(streams)
	eventBatches(ctx, streams, func(batch []tagged) bool {
		defer func() {
			if running > 0 || ended {
				flush() // else the usage chunk and [DONE] go with the last chunks
			}
		}()
		for _, t := range batch {
			if broken {
				return false // the client has gone; ctx ends the sequences
			}
			err := t.err
			if err == nil {
				err = t.ev.Err
			}
			if err != nil {
				if e := eventError(err); e != nil {
					send(errorBody(e))
					send(rawDone{})
				}
				ended = true
				return false
			}
			ev, c := t.ev, &choices[t.i]
			s.observe(j, c, ev, &first)
			if j.echo && !c.echoed { // the prompt first (its log probabilities come with the first event)
				c.echoed = true
				text, lp := s.echo(j.prompts[t.i/j.n], c.prompt, j.logprobs >= 0, &c.offset)
				send(textChunk(CompletionChoice{Index: t.i, Text: text, Logprobs: lp}))
			}
			switch {
			case ev.Done:
				running--
				reason := finishReason(ev.Stats.Finish)
				if thinks != nil {
					r, text := thinks[t.i].finish()
					reasoningDelta(t.i, r)
					if calls != nil {
						text = calls[t.i].push(text)
					}
					if text != "" {
						out = appendDeltaEvent(out, prefix, t.i, text)
					}
				}
				if calls != nil {
					content, tc, ok := calls[t.i].finish()
					tc = j.choice.firstCall(tc)
					switch {
					case ok:
						for k := range tc {
							tc[k].Index = &k
						}
						send(chatChunk(ChatChoice{Index: t.i, Delta: &ChatReply{ToolCalls: tc}}))
						reason = "tool_calls"
					case content != "":
						out = appendDeltaEvent(out, prefix, t.i, content)
					}
				}
				if j.chat {
					send(chatChunk(ChatChoice{Index: t.i, Delta: &ChatReply{}, FinishReason: &reason}))
				} else {
					send(textChunk(CompletionChoice{Index: t.i, FinishReason: &reason}))
				}
			case ev.Token.Text == "" && (j.logprobs < 0 || ev.Token.ID < 0):
				// Nothing to say yet (text held back, no log probabilities).
			case j.chat:
				if thinks != nil || calls != nil { // never with log probabilities
					text := ev.Token.Text
					if thinks != nil {
						var r string
						r, text = thinks[t.i].push(text)
						reasoningDelta(t.i, r)
					}
					if calls != nil {
						text = calls[t.i].push(text)
					}
					if text != "" {
						out = appendDeltaEvent(out, prefix, t.i, text)
					}
					break
				}
				if j.logprobs < 0 || ev.Token.ID < 0 {
					out = appendDeltaEvent(out, prefix, t.i, ev.Token.Text)
					break
				}
				text := ev.Token.Text
				ch := ChatChoice{Index: t.i, Delta: &ChatReply{Content: &text}}
				ch.Logprobs = s.chatLogprobs([]sched.Event{ev})
				send(chatChunk(ch))
			default:
				if j.logprobs < 0 || ev.Token.ID < 0 {
					out = appendTextEvent(out, prefix, t.i, ev.Token.Text)
					break
				}
				ch := CompletionChoice{Index: t.i, Text: ev.Token.Text}
				ch.Logprobs = s.completionLogprobs([]sched.Event{ev}, &c.offset)
				send(textChunk(ch))
			}
		}
		return true
	})
	if ended {
		return
	}
	if ctx.Err() != nil || broken {
		return
	}
	if j.withUsage {
		u := &Usage{PromptTokens: promptTokens}
		u.finish(choiceStats(choices), j.n)
		if j.chat {
			send(ChatResponse{ID: id, Object: "chat.completion.chunk", Created: created, Model: s.cfg.ModelName, Choices: []ChatChoice{}, Usage: u})
		} else {
			send(CompletionResponse{ID: id, Object: "text_completion", Created: created, Model: s.cfg.ModelName, Choices: []CompletionChoice{}, Usage: u})
		}
	}
	send(rawDone{})
	flush()
}

// rawDone is the stream's last event, "data: [DONE]".
type rawDone struct{}

func jsonMarshal(v any) ([]byte, error) {
	if _, ok := v.(rawDone); ok {
		return []byte("[DONE]"), nil
	}
	return jsonEncode(v)
}

// finishReason maps generate's reasons to OpenAI's.
func finishReason(f generate.Finish) string {
	switch f {
	case generate.FinishLength, generate.FinishContext:
		return "length"
	}
	return "stop"
}

// finiteLogprob replaces minus infinity (which JSON cannot carry) by -9999.
func finiteLogprob(v float32) float64 {
	if math.IsInf(float64(v), -1) || math.IsNaN(float64(v)) {
		return -9999
	}
	return float64(v)
}

func (s *Server) tokenText(id int32) string {
	texts := s.texts()
	if id < 0 || int(id) >= len(texts) {
		return ""
	}
	return texts[id]
}

func (s *Server) chatLogprobs(events []sched.Event) *ChatLogprobs {
	lp := &ChatLogprobs{Content: []ChatTokenLogprob{}}
	entry := func(id int32, v float32) ChatTokenLogprob {
		text := s.tokenText(id)
		b := make([]int, len(text))
		for i := range len(text) {
			b[i] = int(text[i])
		}
		return ChatTokenLogprob{Token: text, Logprob: finiteLogprob(v), Bytes: b}
	}
	for _, ev := range events {
		e := entry(ev.Token.ID, ev.Logprob)
		e.TopLogprobs = []ChatTokenLogprob{}
		for _, t := range ev.Top {
			e.TopLogprobs = append(e.TopLogprobs, entry(t.ID, t.Logprob))
		}
		lp.Content = append(lp.Content, e)
	}
	return lp
}

func (s *Server) completionLogprobs(events []sched.Event, offset *int) *CompletionLogprobs {
	lp := &CompletionLogprobs{Tokens: []string{}, TokenLogprobs: []*float64{}, TopLogprobs: []map[string]float64{}, TextOffset: []int{}}
	for _, ev := range events {
		lp.add(s, ev.Token.ID, &ev.Logprob, ev.Top, offset)
	}
	return lp
}

// add appends a token, its log probability (nil: none, as for a prompt's
// first token) and its position's top tokens to lp.
func (lp *CompletionLogprobs) add(s *Server, id int32, logprob *float32, top []sched.TokenLogprob, offset *int) {
	text := s.tokenText(id)
	lp.Tokens = append(lp.Tokens, text)
	var v *float64
	var m map[string]float64
	if logprob != nil {
		f := finiteLogprob(*logprob)
		v, m = &f, make(map[string]float64, len(top))
		for _, t := range top {
			if _, dup := m[s.tokenText(t.ID)]; !dup {
				m[s.tokenText(t.ID)] = finiteLogprob(t.Logprob)
			}
		}
	}
	lp.TokenLogprobs = append(lp.TokenLogprobs, v)
	lp.TopLogprobs = append(lp.TopLogprobs, m)
	lp.TextOffset = append(lp.TextOffset, *offset)
	*offset += len(text)
}

// join returns lp followed by more (more alone when lp is nil).
func (lp *CompletionLogprobs) join(more *CompletionLogprobs) *CompletionLogprobs {
	if lp == nil {
		return more
	}
	lp.Tokens = append(lp.Tokens, more.Tokens...)
	lp.TokenLogprobs = append(lp.TokenLogprobs, more.TokenLogprobs...)
	lp.TopLogprobs = append(lp.TopLogprobs, more.TopLogprobs...)
	lp.TextOffset = append(lp.TextOffset, more.TextOffset...)
	return lp
}

// echo returns a prompt as its tokens spell it (the text that echo puts
// before a choice's) and, when withLogprobs, its tokens' log probabilities
// (the first token has none), advancing offset past it.
func (s *Server) echo(prompt []int32, lps []sched.PromptLogprob, withLogprobs bool, offset *int) (string, *CompletionLogprobs) {
	var text strings.Builder
	var lp *CompletionLogprobs
	if withLogprobs {
		lp = &CompletionLogprobs{}
	}
	for i, id := range prompt {
		if lp == nil {
			text.WriteString(s.tokenText(id))
			continue
		}
		var v *float32
		var top []sched.TokenLogprob
		if i > 0 && i-1 < len(lps) {
			v, top = &lps[i-1].Logprob, lps[i-1].Top
		}
		lp.add(s, id, v, top, offset)
		text.WriteString(lp.Tokens[i])
	}
	return text.String(), lp
}

// parseResponseFormat sets j's constraint for response_format: JSON mode
// (json_object) constrains every choice to a JSON object, structured
// outputs (json_schema) to an instance of the schema; either ends when the
// value closes.
func (s *Server) parseResponseFormat(rf *ResponseFormat, j *job) *apiError {
	if rf == nil {
		return nil
	}
	switch rf.Type {
	case "", "text":
	case "json_object":
		vocab := s.vocabulary()
		j.opt.NewConstraint = func() generate.Constraint { return constrain.NewTokens(vocab) }
	case "json_schema":
		if rf.JSONSchema == nil || len(rf.JSONSchema.Schema) == 0 {
			return badRequest("response_format.json_schema.schema", "response_format json_schema needs json_schema.schema")
		}
		raw := rf.JSONSchema.Schema
		schema, err := s.compileSchema(string(raw), func() (*constrain.Schema, error) { return constrain.CompileSchema(raw) })
		if err != nil {
			return badRequest("response_format.json_schema.schema", "%v", err)
		}
		vocab := s.vocabulary()
		j.opt.NewConstraint = func() generate.Constraint { return constrain.NewSchemaTokens(vocab, schema) }
	default:
		return badRequest("response_format", "response_format %q is not supported (text, json_object and json_schema are)", rf.Type)
	}
	return nil
}

// vocabulary returns the model's vocabulary as a trie, built on first use.
func (s *Server) vocabulary() *constrain.Vocab {
	s.vocabOnce.Do(func() { s.vocab = constrain.NewVocabOf(s.cfg.Tokenizer) })
	return s.vocab
}

// maxSchemas bounds the compiled schemas kept (response_format schemas,
// forced tool calls): a client that sends the same schema again gets the
// same *constrain.Schema, whose token masks the vocabulary has cached.
const maxSchemas = 64

// compileSchema returns the schema compiled before under key, or compiles
// it now.
func (s *Server) compileSchema(key string, compile func() (*constrain.Schema, error)) (*constrain.Schema, error) {
	s.schemaMu.Lock()
	defer s.schemaMu.Unlock()
	if c, ok := s.schemas[key]; ok {
		return c, nil
	}
	c, err := compile()
	if err != nil {
		return nil, err
	}
	if s.schemas == nil || len(s.schemas) >= maxSchemas {
		s.schemas = map[string]*constrain.Schema{}
	}
	s.schemas[key] = c
	return c, nil
}
