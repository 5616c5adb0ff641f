package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loomllm/loom/model/chat"
	"github.com/loomllm/loom/model/tokenizer"
)

func template(t *testing.T, name string) *chat.Template {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("..", "model", "chat", "testdata", name))
	require.NoError(t, err)
	tmpl, err := chat.Parse(string(src))
	require.NoError(t, err)
	return tmpl
}

// TestDetectToolFormat: each real template's call syntax, and none for
// templates that do not render tools.
func TestDetectToolFormat(t *testing.T) {
	for name, want := range map[string]toolFormat{
		"qwen3.jinja": toolsHermes, "qwen2.5.jinja": toolsHermes, "mistral-nemo.jinja": toolsMistral,
		"llama3.2.jinja": toolsLlama, "llama2.jinja": toolsUnknown, "llama3.jinja": toolsUnknown,
	} {
		require.Equal(t, want, detectToolFormat(template(t, name)), name)
	}
	chatml, err := chat.Parse(chat.ChatML)
	require.NoError(t, err)
	require.Equal(t, toolsUnknown, detectToolFormat(chatml))
}

// TestParseToolCalls: the three syntaxes as the models write them, with
// text before the calls, several calls, arguments as a JSON string, and
// replies that are not calls.
func TestParseToolCalls(t *testing.T) {
	type want struct {
		content string
		calls   []ToolCallFunction
	}
	cases := []struct {
		name string
		f    toolFormat
		text string
		want *want // nil: not a call, all content
	}{
		{"hermes", toolsHermes, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
			&want{"", []ToolCallFunction{{"get_weather", `{"city":"Paris"}`}}}},
		{"hermes after text, two calls", toolsHermes,
			"Let me check.\n\n<tool_call>\n{\"name\": \"a\", \"arguments\": {}}\n</tool_call>\n<tool_call>\n{\"name\": \"b\", \"arguments\": \"{\\\"x\\\": [1, 2]}\"}\n</tool_call>",
			&want{"Let me check.", []ToolCallFunction{{"a", `{}`}, {"b", `{"x":[1,2]}`}}}},
		{"hermes without the closing tag", toolsHermes, "<tool_call>\n{\"name\": \"a\", \"arguments\": {\"k\": 1}}",
			&want{"", []ToolCallFunction{{"a", `{"k":1}`}}}},
		{"hermes malformed", toolsHermes, "<tool_call>\n{\"name\": \"a\", \"arguments\": {\"k\": }\n</tool_call>", nil},
		{"hermes text after the call", toolsHermes, "<tool_call>{\"name\": \"a\"}</tool_call> and more", nil},
		{"hermes no name", toolsHermes, "<tool_call>{\"arguments\": {}}</tool_call>", nil},
		{"hermes plain text", toolsHermes, "The weather is fine.", nil},
		{"mistral", toolsMistral, "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}, {\"name\": \"b\", \"arguments\": {}}]",
			&want{"", []ToolCallFunction{{"get_weather", `{"city":"Paris"}`}, {"b", `{}`}}}},
		{"mistral plain text", toolsMistral, "Sure: [1, 2]", nil},
		{"llama", toolsLlama, " {\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}",
			&want{"", []ToolCallFunction{{"get_weather", `{"city":"Paris"}`}}}},
		{"llama python tag", toolsLlama, "<|python_tag|>{\"name\": \"f\", \"parameters\": {}}",
			&want{"", []ToolCallFunction{{"f", `{}`}}}},
		{"llama plain json", toolsLlama, "{\"answer\": 4}", nil},
		{"llama text", toolsLlama, "It is 4.", nil},
	}
	for _, c := range cases {
		content, calls, ok := parseToolCalls(c.f, c.text)
		if c.want == nil {
			require.False(t, ok, c.name)
			require.Equal(t, c.text, content, c.name)
			continue
		}
		require.True(t, ok, c.name)
		require.Equal(t, c.want.content, content, c.name)
		require.Len(t, calls, len(c.want.calls), c.name)
		for i, call := range calls {
			require.Equal(t, c.want.calls[i], call.Function, c.name)
			require.Equal(t, "function", call.Type)
			require.Regexp(t, `^call_[0-9a-f]{24}$`, call.ID)
		}
	}
}

// TestToolStream: streamed text goes out until a call may begin (the
// marker split across tokens is held back), the call comes out whole at
// the end; a reply without a call loses nothing.
func TestToolStream(t *testing.T) {
	run := func(f toolFormat, pieces ...string) (string, []ToolCall, bool) {
		ts := toolStream{format: f}
		var sent strings.Builder
		for _, p := range pieces {
			sent.WriteString(ts.push(p))
		}
		content, calls, ok := ts.finish()
		sent.WriteString(content)
		return sent.String(), calls, ok
	}
	sent, calls, ok := run(toolsHermes, "Checking", " now.\n", "<tool", "_call>\n{\"name\": ", "\"f\", \"arguments\": {}}\n</tool_call>")
	require.True(t, ok)
	require.Equal(t, "Checking now.\n", sent)
	require.Equal(t, "f", calls[0].Function.Name)

	sent, _, ok = run(toolsHermes, "a <to", "y> b <", "tool")
	require.False(t, ok)
	require.Equal(t, "a <toy> b <tool", sent)

	sent, calls, ok = run(toolsLlama, " ", "{\"name\": \"g\", ", "\"parameters\": {\"x\": 1}}")
	require.True(t, ok)
	require.Empty(t, strings.TrimSpace(sent))
	require.Equal(t, `{"x":1}`, calls[0].Function.Arguments)

	sent, _, ok = run(toolsLlama, "The answer", " is {4}.")
	require.False(t, ok)
	require.Equal(t, "The answer is {4}.", sent)

	sent, calls, ok = run(toolsMistral, "[TOOL", "_CALLS][{\"name\": \"h\", \"arguments\": {}}]")
	require.True(t, ok)
	require.Empty(t, sent)
	require.Equal(t, "h", calls[0].Function.Name)
}

// TestParseTools: what tools and tool_choice accept.
func TestParseTools(t *testing.T) {
	tools := json.RawMessage(`[{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}},
		{"type": "function", "function": {"name": "g"}}]`)
	got, decls, choice, e := parseTools(tools, nil, nil)
	require.Nil(t, e)
	require.Equal(t, map[string]any{"type": "function", "function": map[string]any{"name": "f", "description": "d",
		"parameters": map[string]any{"type": "object"}}}, got[0])
	require.Len(t, decls, 2)
	require.False(t, choice.forced())
	got, _, _, e = parseTools(tools, json.RawMessage(`"none"`), nil)
	require.Nil(t, e)
	require.Nil(t, got)
	_, _, choice, e = parseTools(tools, json.RawMessage(`"required"`), nil)
	require.Nil(t, e)
	require.Equal(t, toolChoice{required: true}, choice)
	_, _, choice, e = parseTools(tools, json.RawMessage(`{"type": "function", "function": {"name": "g"}}`), nil)
	require.Nil(t, e)
	require.Equal(t, toolChoice{name: "g"}, choice)
	for raw, choice := range map[string]string{
		string(tools): `{"type": "function", "function": {"name": "h"}}`, "": `"required"`, "[]": `{"type": "function", "function": {"name": "f"}}`,
		string(tools) + " ": `"sometimes"`,
	} {
		_, _, _, e = parseTools(json.RawMessage(raw), json.RawMessage(choice), nil)
		require.NotNil(t, e, choice)
		require.Equal(t, "tool_choice", e.param, choice)
	}
	got, _, _, e = parseTools(json.RawMessage(`[]`), nil, nil)
	require.Nil(t, e)
	require.Nil(t, got)
	_, _, _, e = parseTools(json.RawMessage(`[{"type": "retrieval"}]`), nil, nil)
	require.NotNil(t, e)
	_, _, _, e = parseTools(json.RawMessage(`[{"type": "function", "function": {"name": "f"}}, {"type": "function", "function": {"name": "f"}}]`), nil, nil)
	require.NotNil(t, e)
	require.Equal(t, "tools[1].function.name", e.param)
	no := false
	_, _, choice, e = parseTools(tools, json.RawMessage(`"required"`), &no)
	require.Nil(t, e)
	require.Equal(t, toolChoice{required: true, single: true}, choice)
	calls := []ToolCall{{ID: "a"}, {ID: "b"}}
	require.Len(t, choice.firstCall(calls), 1)
	require.Len(t, toolChoice{}.firstCall(calls), 2)
}

// TestForcedToolCall: tool_choice "required" and a named function make
// stories260K, which has never seen a tool, reply with a well-formed call
// in the <tool_call> syntax whose arguments hold to the function's
// parameters, streamed or not, with finish reason tool_calls; parameters
// loom cannot enforce are a 400 naming the tool. (The template is a short
// Hermes-style one: Qwen3's tool preamble alone nearly fills stories260K's
// 512 positions.)
func TestForcedToolCall(t *testing.T) {
	tmpl, err := chat.Parse(`{% if tools %}Tools:{% for t in tools %} {{ t.function.name }}{% endfor %}. Call one as <tool_call>{"name": ..., "arguments": ...}</tool_call>
{% endif %}{% for m in messages %}{{ m.role }}: {{ m.content }}
{% endfor %}assistant: `)
	require.NoError(t, err)
	require.Equal(t, toolsHermes, detectToolFormat(tmpl))
	ts := startServer(t, serverOptions{template: tmpl})
	weather := map[string]any{"type": "function", "function": map[string]any{"name": "wx", "parameters": map[string]any{
		"type": "object", "properties": map[string]any{"at": map[string]any{"type": "string", "maxLength": 8},
			"u": map[string]any{"enum": []string{"c", "f"}}}, "required": []string{"at", "u"}}}}
	clock := map[string]any{"type": "function", "function": map[string]any{"name": "clock"}}
	ask := func(choice any, stream bool) (calls []ToolCall, reason string) {
		body := map[string]any{"model": "stories260K", "messages": []map[string]any{{"role": "user", "content": "Hi"}},
			"max_tokens": 120, "temperature": 0.8, "seed": 2, "tools": []any{weather, clock}, "tool_choice": choice}
		if stream {
			st := streamChat(t, ts, body)
			require.Empty(t, strings.TrimSpace(st.content.String()))
			return st.calls, st.reason
		}
		var resp ChatResponse
		var raw json.RawMessage
		r := ts.post(t, "/v1/chat/completions", body, &raw)
		require.Equal(t, 200, r.StatusCode, "%s", raw)
		require.NoError(t, json.Unmarshal(raw, &resp))
		return resp.Choices[0].Message.ToolCalls, *resp.Choices[0].FinishReason
	}
	for _, choice := range []any{"required", map[string]any{"type": "function", "function": map[string]any{"name": "wx"}},
		map[string]any{"type": "function", "function": map[string]any{"name": "clock"}}} {
		for _, stream := range []bool{false, true} {
			calls, reason := ask(choice, stream)
			require.Equal(t, "tool_calls", reason, "%v", choice)
			require.Len(t, calls, 1, "%v", choice)
			f := calls[0].Function
			var args map[string]any
			require.NoError(t, json.Unmarshal([]byte(f.Arguments), &args))
			switch f.Name {
			case "wx":
				require.Contains(t, []any{"c", "f"}, args["u"], f.Arguments)
				require.IsType(t, "", args["at"], f.Arguments)
			case "clock":
				require.Empty(t, args)
			default:
				t.Fatalf("called %q", f.Name)
			}
			if m, ok := choice.(map[string]any); ok {
				require.Equal(t, m["function"].(map[string]any)["name"], f.Name)
			}
		}
	}
	bad := map[string]any{"type": "function", "function": map[string]any{"name": "when", "parameters": map[string]any{
		"type": "object", "properties": map[string]any{"day": map[string]any{"type": "string", "format": "date"}}}}}
	var e ErrorBody
	r := ts.post(t, "/v1/chat/completions", map[string]any{"model": "stories260K", "messages": []map[string]any{{"role": "user", "content": "Hi"}},
		"tools": []any{clock, bad}, "tool_choice": "required"}, &e)
	require.Equal(t, 400, r.StatusCode)
	require.Equal(t, "tools[1].function.parameters", *e.Error.Param)
	require.Contains(t, e.Error.Message, `keyword "format" is not supported`)
}

// TestToolsThroughServer: a chat request with tools, through a server
// whose template describes them (Qwen3's, on stories260K): the tools reach
// the prompt, an earlier call and its answer render, and a reply with no
// call is plain content, streamed or not, with the usual finish reason.
// (No model in ../shared writes tool calls; the replies' parsing is
// TestParseToolCalls and TestToolStream.)
func TestToolsThroughServer(t *testing.T) {
	ts := startServer(t, serverOptions{template: template(t, "qwen3.jinja")})
	weather := map[string]any{"type": "function", "function": map[string]any{"name": "get_weather", "description": "Get the weather",
		"parameters": map[string]any{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}}}}
	msgs := []map[string]any{{"role": "user", "content": "Once upon a time"}}
	ask := func(extra map[string]any) ChatResponse {
		body := map[string]any{"model": "stories260K", "messages": msgs, "max_tokens": 20, "temperature": 0}
		for k, v := range extra {
			body[k] = v
		}
		var resp ChatResponse
		r := ts.post(t, "/v1/chat/completions", body, &resp)
		require.Equal(t, 200, r.StatusCode)
		return resp
	}
	plain := ask(nil)
	withTools := ask(map[string]any{"tools": []any{weather}})
	require.Greater(t, withTools.Usage.PromptTokens, plain.Usage.PromptTokens+50, "the tool descriptions are in the prompt")
	require.Nil(t, withTools.Choices[0].Message.ToolCalls)
	require.NotEmpty(t, *withTools.Choices[0].Message.Content)
	require.Equal(t, "length", *withTools.Choices[0].FinishReason)
	none := ask(map[string]any{"tools": []any{weather}, "tool_choice": "none"})
	require.Equal(t, plain.Usage.PromptTokens, none.Usage.PromptTokens, "tool_choice none: no tools in the prompt")

	// Streamed: the same text.
	streamed := streamChat(t, ts, map[string]any{"model": "stories260K", "messages": msgs, "max_tokens": 20, "temperature": 0,
		"tools": []any{weather}})
	require.Empty(t, streamed.calls)
	text, reason := &streamed.content, streamed.reason
	require.Equal(t, *withTools.Choices[0].Message.Content, text.String())
	require.Equal(t, "length", reason)

	// An earlier call and its result render.
	msgs = []map[string]any{{"role": "user", "content": "Weather in Paris?"},
		{"role": "assistant", "content": nil, "tool_calls": []any{map[string]any{"id": "call_1", "type": "function",
			"function": map[string]any{"name": "get_weather", "arguments": `{"city": "Paris"}`}}}},
		{"role": "tool", "tool_call_id": "call_1", "content": "sunny"}}
	// (Without the tools: with them this prompt overflows stories260K's
	// 512 positions.)
	again := ask(map[string]any{"max_tokens": 4})
	require.NotEmpty(t, again.Choices)
	require.Greater(t, again.Usage.PromptTokens, plain.Usage.PromptTokens+40, "the call and its result are in the prompt")
}

// chatStream is what a streamed chat completion delivered.
type chatStream struct {
	content, reasoning strings.Builder
	reason             string
	calls              []ToolCall
}

// streamChat posts body (stream set) to /v1/chat/completions and reads
// the stream.
func streamChat(t *testing.T, ts *testServer, body map[string]any) *chatStream {
	body["stream"] = true
	b, err := json.Marshal(body)
	require.NoError(t, err)
	r, err := http.Post(ts.url+"/v1/chat/completions", "application/json", bytes.NewReader(b))
	require.NoError(t, err)
	defer r.Body.Close()
	require.Equal(t, 200, r.StatusCode)
	out := &chatStream{}
	for _, data := range sse(t, r.Body) {
		if data == "[DONE]" {
			continue
		}
		var chunk ChatResponse
		require.NoError(t, json.Unmarshal([]byte(data), &chunk))
		for _, c := range chunk.Choices {
			if d := c.Delta; d != nil {
				if d.Content != nil {
					out.content.WriteString(*d.Content)
				}
				if d.ReasoningContent != nil {
					out.reasoning.WriteString(*d.ReasoningContent)
				}
				out.calls = append(out.calls, d.ToolCalls...)
			}
			if c.FinishReason != nil {
				out.reason = *c.FinishReason
			}
		}
	}
	return out
}

// TestCallConstraintSyntaxes: for each call syntax, the forced-call
// constraint accepts the canonical call token by token (its opening marker
// included), is done at its end, and the reply parses back to the call.
func TestCallConstraintSyntaxes(t *testing.T) {
	m := loadModelThreads(t, "", 1, 64, 1)
	defer m.Close()
	tools := []Tool{{Type: "function", Function: &ToolFunction{Name: "wx",
		Parameters: json.RawMessage(`{"type": "object", "properties": {"at": {"type": "string"}}, "required": ["at"]}`)}},
		{Type: "function", Function: &ToolFunction{Name: "clock"}}}
	for f, text := range map[toolFormat]string{
		toolsHermes:  "<tool_call>\n{\"name\": \"wx\", \"arguments\": {\"at\": \"Oslo\"}}",
		toolsMistral: `[TOOL_CALLS][{"name": "wx", "arguments": {"at": "Oslo"}}, {"name": "clock", "arguments": {}}]`,
		toolsLlama:   `{"name": "wx", "parameters": {"at": "Oslo"}}`,
	} {
		srv := &Server{cfg: Config{Tokenizer: m.Tokenizer()}}
		mk, e := srv.callConstraint(f, tools, toolChoice{required: true})
		require.Nil(t, e)
		c := mk()
		allow := make([]bool, m.Tokenizer().VocabSize())
		ids := m.Tokenizer().Encode(text, tokenizer.EncodeOptions{ParseSpecial: true})
		if f == toolsLlama && m.Tokenizer().Text(ids[0]) == " " {
			ids = ids[1:] // SentencePiece's space prefix, which the JSON at a reply's start does without
		}
		for _, id := range ids {
			require.False(t, c.Done(), text)
			require.Positive(t, c.Allow(allow))
			require.True(t, allow[id], "%s: token %d %q", text, id, m.Tokenizer().Piece(id))
			c.Accept(id)
		}
		require.True(t, c.Done(), text)
		_, calls, ok := parseToolCalls(f, text)
		require.True(t, ok, text)
		require.Equal(t, "wx", calls[0].Function.Name)
		require.Equal(t, `{"at":"Oslo"}`, calls[0].Function.Arguments)
	}

	// parallel_tool_calls false: a Mistral list holds one call.
	srv := &Server{cfg: Config{Tokenizer: m.Tokenizer()}}
	mk, e := srv.callConstraint(toolsMistral, tools, toolChoice{required: true, single: true})
	require.Nil(t, e)
	c := mk()
	allow := make([]bool, m.Tokenizer().VocabSize())
	refused := false
	for _, id := range m.Tokenizer().Encode(`[TOOL_CALLS][{"name": "wx", "arguments": {"at": "Oslo"}}, {"name": "clock", "arguments": {}}]`, tokenizer.EncodeOptions{ParseSpecial: true}) {
		if c.Allow(allow) == 0 || !allow[id] {
			refused = true
			break
		}
		c.Accept(id)
	}
	require.True(t, refused, "a second call is refused")
}
