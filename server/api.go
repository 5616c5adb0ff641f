package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/loomllm/loom/runtime/generate"
)

// The OpenAI request and response bodies this server reads and writes.
// Optional request fields are pointers, so that an absent field and a JSON
// null both mean "the default". Fields OpenAI defines that loom does not
// use (user, metadata, store, ...) are accepted and ignored, as OpenAI's
// own server ignores unknown fields; fields whose meaning loom cannot
// honour (suffix, best_of other than n, response formats other than text,
// json_object and json_schema) are rejected.

// StreamOptions are the options of a streamed response.
type StreamOptions struct {
	// IncludeUsage adds a last chunk with the usage and no choices.
	IncludeUsage bool `json:"include_usage"`
}

// samplingFields are the request fields completions and chat share.
type samplingFields struct {
	Model            string             `json:"model"`
	MaxTokens        *int               `json:"max_tokens"`
	Temperature      *float64           `json:"temperature"`
	TopP             *float64           `json:"top_p"`
	TopK             *int               `json:"top_k"` // vLLM's extension
	MinP             *float64           `json:"min_p"` // vLLM's extension
	N                *int               `json:"n"`
	Stream           bool               `json:"stream"`
	StreamOptions    *StreamOptions     `json:"stream_options"`
	Stop             StringOrList       `json:"stop"`
	Seed             *int64             `json:"seed"`
	PresencePenalty  *float64           `json:"presence_penalty"`
	FrequencyPenalty *float64           `json:"frequency_penalty"`
	RepPenalty       *float64           `json:"repetition_penalty"` // vLLM's extension
	LogitBias        map[string]float64 `json:"logit_bias"`
	// vLLM's extensions: IgnoreEOS keeps generating past the model's end
	// tokens (to max_tokens or a stop); MinTokens keeps the end tokens
	// (and StopTokenIDs) from being sampled before that many tokens;
	// StopTokenIDs are more ids that end a choice (finish_reason stop).
	IgnoreEOS    bool    `json:"ignore_eos"`
	MinTokens    *int    `json:"min_tokens"`
	StopTokenIDs []int64 `json:"stop_token_ids"`
}

// CompletionRequest is the body of POST /v1/completions.
type CompletionRequest struct {
	samplingFields
	// Prompt is a string, a list of strings, a list of token ids, or a
	// list of lists of token ids.
	Prompt Prompt `json:"prompt"`
	// Logprobs asks for the log probability of each token and of the
	// Logprobs most likely alternatives (0 to 5).
	Logprobs *int `json:"logprobs"`
	// Echo puts the prompt, as its tokens spell it, before each choice's
	// text, and with Logprobs its tokens' log probabilities (null for the
	// first) before the choice's. Suffix and BestOf (other than n) are not
	// supported: a request that sets them is rejected.
	Echo   bool   `json:"echo"`
	Suffix string `json:"suffix"`
	BestOf *int   `json:"best_of"`
	// ResponseFormat constrains each choice as in chat (vLLM's extension
	// of completions): json_object or json_schema.
	ResponseFormat *ResponseFormat `json:"response_format"`
}

// ChatRequest is the body of POST /v1/chat/completions.
type ChatRequest struct {
	samplingFields
	// Messages is the conversation, rendered with the chat template.
	Messages []ChatMessage `json:"messages"`
	// MaxCompletionTokens is the newer name of max_tokens; it wins when
	// both are set.
	MaxCompletionTokens *int `json:"max_completion_tokens"`
	// Logprobs asks for each token's log probability, and TopLogprobs (0
	// to 20) for that many most likely alternatives.
	Logprobs    bool `json:"logprobs"`
	TopLogprobs *int `json:"top_logprobs"`
	// Tools are functions the model may call (rendered by the chat
	// template; see tools.go). ToolChoice "auto" (the default) or "none";
	// "required" and a named function are rejected.
	Tools      json.RawMessage `json:"tools"`
	ToolChoice json.RawMessage `json:"tool_choice"`
	// ParallelToolCalls false keeps a reply to one call (the first; a
	// forced Mistral call list holds one).
	ParallelToolCalls *bool `json:"parallel_tool_calls"`
	// ResponseFormat constrains the reply: "text" (the default),
	// "json_object" (a JSON object) or "json_schema" (an instance of
	// JSONSchema.Schema, in the subset constrain.Schema describes).
	ResponseFormat *ResponseFormat `json:"response_format"`
	// ChatTemplateKwargs are extra variables for the chat template
	// (vLLM's extension, e.g. {"enable_thinking": false}).
	ChatTemplateKwargs map[string]any `json:"chat_template_kwargs"`
}

// ResponseFormat is a chat request's response_format.
type ResponseFormat struct {
	Type       string `json:"type"`
	JSONSchema *struct {
		Name        string          `json:"name"`        // the schema's name (not used)
		Description string          `json:"description"` // what the reply is for (not used)
		Schema      json.RawMessage `json:"schema"`
		Strict      *bool           `json:"strict"` // loom always enforces the whole schema
	} `json:"json_schema"`
}

// ChatMessage is one message of a conversation. Content is a string, or a
// list of parts of which only text parts are accepted.
type ChatMessage struct {
	Role       string      `json:"role"`                   // "system", "user", "assistant", "tool", ...
	Content    ChatContent `json:"content"`                // the text
	Name       string      `json:"name,omitempty"`         // optional participant name
	ToolCalls  []ToolCall  `json:"tool_calls,omitempty"`   // an assistant message's calls
	ToolCallID string      `json:"tool_call_id,omitempty"` // the call a tool message answers
}

// ChatContent is a message's text.
type ChatContent string

// UnmarshalJSON accepts a string, null, or a list of {"type": "text",
// "text": ...} parts (joined with no separator).
func (c *ChatContent) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		*c = ""
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*c = ChatContent(s)
		return nil
	}
	var parts []struct {
		Type string  `json:"type"`
		Text *string `json:"text"`
	}
	if err := json.Unmarshal(b, &parts); err != nil {
		return fmt.Errorf("content must be a string or a list of text parts")
	}
	var sb strings.Builder
	for _, p := range parts {
		if p.Type != "text" || p.Text == nil {
			return fmt.Errorf("content part of type %q is not supported (only text)", p.Type)
		}
		sb.WriteString(*p.Text)
	}
	*c = ChatContent(sb.String())
	return nil
}

// StringOrList is a string or a list of strings (stop).
type StringOrList []string

// UnmarshalJSON accepts a string, a list of strings, or null.
func (s *StringOrList) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		*s = nil
		return nil
	}
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = StringOrList{one}
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return fmt.Errorf("must be a string or a list of strings")
	}
	*s = list
	return nil
}

// Prompt is a completion request's prompts: text, or token ids.
type Prompt struct {
	Texts []string  // text prompts
	IDs   [][]int64 // token-id prompts
	set   bool
}

// UnmarshalJSON accepts a string, a list of strings, a list of token ids
// or a list of lists of token ids.
func (p *Prompt) UnmarshalJSON(b []byte) error {
	*p = Prompt{set: !bytes.Equal(b, []byte("null"))}
	if !p.set {
		return nil
	}
	var s string
	if json.Unmarshal(b, &s) == nil {
		p.Texts = []string{s}
		return nil
	}
	var texts []string
	if json.Unmarshal(b, &texts) == nil {
		p.Texts = texts
		return nil
	}
	var ids []int64
	if json.Unmarshal(b, &ids) == nil {
		p.IDs = [][]int64{ids}
		return nil
	}
	var lists [][]int64
	if json.Unmarshal(b, &lists) == nil {
		p.IDs = lists
		return nil
	}
	return fmt.Errorf("must be a string, a list of strings, a list of token ids or a list of lists of token ids")
}

// count is the number of prompts.
func (p *Prompt) count() int { return len(p.Texts) + len(p.IDs) }

// Usage counts a request's tokens.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`     // once per prompt, whatever n
	CompletionTokens int `json:"completion_tokens"` // over every choice
	TotalTokens      int `json:"total_tokens"`      // the sum
	// PromptTokensDetails says how many prompt tokens came from the prefix
	// cache (loom serve --prefix-cache), when any did.
	PromptTokensDetails *PromptTokensDetails `json:"prompt_tokens_details,omitempty"`
}

// PromptTokensDetails breaks the prompt tokens down, as OpenAI does.
type PromptTokensDetails struct {
	CachedTokens int `json:"cached_tokens"` // keys and values reused, not computed
}

// finish fills the totals and the cached prompt tokens from the choices'
// statistics, n choices per prompt in prompt order (a prompt counts once:
// its first choice's cached tokens).
func (u *Usage) finish(stats []generate.Stats, n int) {
	cached := 0
	for i, st := range stats {
		u.CompletionTokens += st.Tokens
		if i%max(n, 1) == 0 {
			cached += st.CachedTokens
		}
	}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	if cached > 0 {
		u.PromptTokensDetails = &PromptTokensDetails{CachedTokens: cached}
	}
}

// CompletionResponse is the body of a completion (object
// "text_completion"), and each chunk of a streamed one. Its fields, and
// those of the response types below, are OpenAI's.
type CompletionResponse struct {
	ID      string             `json:"id"`
	Object  string             `json:"object"`
	Created int64              `json:"created"`
	Model   string             `json:"model"`
	Choices []CompletionChoice `json:"choices"`
	Usage   *Usage             `json:"usage,omitempty"`
}

// CompletionChoice is one generated text. FinishReason is null in
// streamed chunks until the choice ends.
type CompletionChoice struct {
	Index        int                 `json:"index"`
	Text         string              `json:"text"`
	Logprobs     *CompletionLogprobs `json:"logprobs"`
	FinishReason *string             `json:"finish_reason"`
}

// CompletionLogprobs are the legacy completions log probabilities.
type CompletionLogprobs struct {
	Tokens        []string             `json:"tokens"`
	TokenLogprobs []*float64           `json:"token_logprobs"` // null for an echoed prompt's first token
	TopLogprobs   []map[string]float64 `json:"top_logprobs"`
	TextOffset    []int                `json:"text_offset"`
}

// ChatResponse is the body of a chat completion (object
// "chat.completion"), and each chunk of a streamed one
// ("chat.completion.chunk"). Usage is set in a response, and in the last
// chunk of a stream that asked for it.
type ChatResponse struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []ChatChoice `json:"choices"`
	Usage   *Usage       `json:"usage,omitempty"`
}

// ChatChoice is one reply: Message in a response, Delta in a chunk.
type ChatChoice struct {
	Index        int           `json:"index"`
	Message      *ChatReply    `json:"message,omitempty"`
	Delta        *ChatReply    `json:"delta,omitempty"`
	Logprobs     *ChatLogprobs `json:"logprobs"`
	FinishReason *string       `json:"finish_reason"`
}

// ChatReply is the assistant's message, or a chunk of it.
type ChatReply struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
	// ReasoningContent is the reply's reasoning (its think block), with
	// Config.SplitReasoning.
	ReasoningContent *string    `json:"reasoning_content,omitempty"`
	ToolCalls        []ToolCall `json:"tool_calls,omitempty"`
}

// ChatLogprobs are a reply's log probabilities.
type ChatLogprobs struct {
	Content []ChatTokenLogprob `json:"content"`
}

// ChatTokenLogprob is one token's log probability and its alternatives.
type ChatTokenLogprob struct {
	Token       string             `json:"token"`
	Logprob     float64            `json:"logprob"`
	Bytes       []int              `json:"bytes"`
	TopLogprobs []ChatTokenLogprob `json:"top_logprobs,omitempty"`
}

// Model is an entry of GET /v1/models.
type Model struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
	// MaxModelLen is the context in tokens (vLLM's field).
	MaxModelLen int `json:"max_model_len"`
}

// ModelList is the body of GET /v1/models.
type ModelList struct {
	Object string  `json:"object"`
	Data   []Model `json:"data"`
}

// ErrorBody is OpenAI's error response: {"error": {...}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail describes an error: a message for people, its type
// ("invalid_request_error", "rate_limit_error", "server_error"), the
// request field at fault and a machine-readable code, where they apply.
type ErrorDetail struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

// apiError is an error with the HTTP status and OpenAI fields to report.
type apiError struct {
	status  int
	typ     string
	param   string
	code    string
	message string
}

func (e *apiError) Error() string { return e.message }

func badRequest(param, format string, args ...any) *apiError {
	return &apiError{status: 400, typ: "invalid_request_error", param: param, message: fmt.Sprintf(format, args...)}
}

// decodeJSON reads a request body into v, reporting malformed JSON and
// wrong types as a 400 naming the field.
func decodeJSON(body []byte, v any) *apiError {
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest("", "the request body is empty; send a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te):
			field := strings.TrimPrefix(te.Field, "samplingFields.")
			return badRequest(field, "field %q: expected %s, got a JSON %s", field, te.Type, te.Value)
		case errors.As(err, &se):
			return badRequest("", "malformed JSON at byte %d: %v", se.Offset, err)
		}
		return badRequest("", "invalid request body: %v", err)
	}
	if dec.More() {
		return badRequest("", "malformed JSON: data after the request object")
	}
	return nil
}

// checkRange reports a number outside [lo, hi] (or not finite).
func checkRange(param string, v *float64, lo, hi float64) *apiError {
	if v != nil && (math.IsNaN(*v) || *v < lo || *v > hi) {
		return badRequest(param, "%s must be between %g and %g, got %g", param, lo, hi, *v)
	}
	return nil
}

// logitBias converts OpenAI's logit_bias (token id strings to values in
// [-100, 100]).
func logitBias(m map[string]float64, vocab int) (map[int32]float32, *apiError) {
	if len(m) == 0 {
		return nil, nil
	}
	if len(m) > 1024 {
		return nil, badRequest("logit_bias", "logit_bias has %d entries (at most 1024)", len(m))
	}
	out := make(map[int32]float32, len(m))
	for k, v := range m {
		id, err := strconv.ParseInt(k, 10, 32)
		if err != nil || id < 0 || int(id) >= vocab {
			return nil, badRequest("logit_bias", "logit_bias key %q is not a token id of this model (0 to %d)", k, vocab-1)
		}
		if math.IsNaN(v) || v < -100 || v > 100 {
			return nil, badRequest("logit_bias", "logit_bias values must be between -100 and 100, got %g", v)
		}
		out[int32(id)] = float32(v)
	}
	return out, nil
}

// jsonEncode marshals v without escaping <, > and & (generated text is
// not HTML).
func jsonEncode(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
