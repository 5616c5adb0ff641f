package server

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"github.com/loomllm/loom/model/chat"
	"github.com/loomllm/loom/model/tokenizer"
	"github.com/loomllm/loom/runtime/constrain"
	"github.com/loomllm/loom/runtime/generate"
)

// Tool calling (chat completions with "tools"): the tools are handed to
// the model's chat template, which describes them to the model in the
// model's own words, and the reply is searched for calls in the syntax
// that template teaches. Three syntaxes are understood, told apart by
// what the template renders for a probe tool:
//
//	hermes   <tool_call>{"name": ..., "arguments": {...}}</tool_call>, any
//	         number, after optional text (Qwen2.5, Qwen3, Hermes)
//	mistral  [TOOL_CALLS][{"name": ..., "arguments": {...}}, ...]
//	llama    the whole reply one {"name": ..., "parameters": {...}} object,
//	         after an optional <|python_tag|> (Llama 3.1 to 3.3)
//
// A reply in which no well-formed call is found is plain content.

// toolFormat is a call syntax.
type toolFormat int

const (
	toolsUnknown toolFormat = iota
	toolsHermes
	toolsMistral
	toolsLlama
)

// maxTools bounds the tools one request may declare.
const maxTools = 128

// Tool is one entry of a chat request's "tools".
type Tool struct {
	Type     string        `json:"type"`
	Function *ToolFunction `json:"function"`
}

// ToolFunction declares a function the model may call.
type ToolFunction struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
}

// ToolCall is a call the model made (a reply's tool_calls entry), or, in
// a request, one an earlier assistant message made.
type ToolCall struct {
	// Index is the call's place in the reply, in streamed deltas only.
	Index    *int             `json:"index,omitempty"`
	ID       string           `json:"id"`
	Type     string           `json:"type"`
	Function ToolCallFunction `json:"function"`
}

// ToolCallFunction is the function called and its arguments, a JSON
// object as text.
type ToolCallFunction struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// toolChoice is a request's tool_choice beyond "auto" and "none": a
// call to any of the tools ("required"), or to the one named; and
// parallel_tool_calls false (single).
type toolChoice struct {
	required bool
	name     string
	single   bool
}

// forced reports whether the reply must be a call.
func (c toolChoice) forced() bool { return c.required || c.name != "" }

// parseTools checks a request's tools and tool_choice and returns the
// tools as the chat template takes them (nil when there are none or
// tool_choice is "none"), as declared, and the choice.
func parseTools(raw, choice json.RawMessage, parallel *bool) ([]any, []Tool, toolChoice, *apiError) {
	var none toolChoice
	if len(raw) == 0 || string(raw) == "null" {
		if c := strings.TrimSpace(string(choice)); c != "" && c != "null" && c != `"auto"` && c != `"none"` {
			return nil, nil, none, badRequest("tool_choice", "tool_choice %s needs tools", c)
		}
		return nil, nil, none, nil
	}
	var tools []Tool
	if err := json.Unmarshal(raw, &tools); err != nil {
		return nil, nil, none, badRequest("tools", "tools must be a list of {\"type\": \"function\", \"function\": {...}}")
	}
	if len(tools) > maxTools {
		return nil, nil, none, badRequest("tools", "at most %d tools, got %d", maxTools, len(tools))
	}
	names := map[string]bool{}
	for i, t := range tools {
		if t.Type != "function" || t.Function == nil || t.Function.Name == "" || len(t.Function.Name) > 128 {
			return nil, nil, none, badRequest(fmt.Sprintf("tools[%d]", i), "tools[%d] must be {\"type\": \"function\", \"function\": {\"name\": ..., ...}}", i)
		}
		if names[t.Function.Name] {
			return nil, nil, none, badRequest(fmt.Sprintf("tools[%d].function.name", i), "two tools are named %q", t.Function.Name)
		}
		names[t.Function.Name] = true
	}
	c := toolChoice{single: parallel != nil && !*parallel}
	switch s := strings.TrimSpace(string(choice)); s {
	case "", "null", `"auto"`:
	case `"none"`:
		return nil, nil, none, nil
	case `"required"`:
		c.required = true
	default:
		var named struct {
			Type     string `json:"type"`
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
		}
		if json.Unmarshal(choice, &named) != nil || named.Type != "function" || named.Function.Name == "" {
			return nil, nil, none, badRequest("tool_choice", "tool_choice must be \"auto\", \"none\", \"required\" or {\"type\": \"function\", \"function\": {\"name\": ...}}, got %s", s)
		}
		if !names[named.Function.Name] {
			return nil, nil, none, badRequest("tool_choice", "tool_choice names %q, which is not among the tools", named.Function.Name)
		}
		c.name = named.Function.Name
	}
	if len(tools) == 0 {
		if c.forced() {
			return nil, nil, none, badRequest("tool_choice", "tool_choice %s needs tools", strings.TrimSpace(string(choice)))
		}
		return nil, nil, none, nil
	}
	var generic []any // every field, as the template sees it
	_ = json.Unmarshal(raw, &generic)
	return generic, tools, c, nil
}

// callSyntax is how format f writes a forced call: the text before the
// JSON, the key of the arguments, and whether the JSON is a list of calls.
// (The reply ends with the JSON: Hermes's closing </tool_call> is left
// out, which the parsers accept, so that no text is forced after the
// model's own tokens.)
func callSyntax(f toolFormat) (prefix, argsKey string, list bool) {
	switch f {
	case toolsHermes:
		return "<tool_call>\n", "arguments", false
	case toolsMistral:
		return "[TOOL_CALLS]", "arguments", true
	}
	return "", "parameters", false
}

// firstCall keeps the first of calls when parallel_tool_calls is false.
func (c toolChoice) firstCall(calls []ToolCall) []ToolCall {
	if c.single && len(calls) > 1 {
		return calls[:1]
	}
	return calls
}

// callConstraint returns the maker of the constraint that makes a reply
// a call in format f to one of tools (the one choice names, or any): the
// format's opening tokens, then the call's JSON with the function's
// parameters enforced as a JSON Schema; the reply ends with it.
func (s *Server) callConstraint(f toolFormat, tools []Tool, choice toolChoice) (func() generate.Constraint, *apiError) {
	prefix, argsKey, list := callSyntax(f)
	maxList := 0 // one call object
	if list {
		maxList = math.MaxInt
		if choice.single {
			maxList = 1
		}
	}
	var fns []constrain.Function
	for i, t := range tools {
		if choice.name != "" && t.Function.Name != choice.name {
			continue
		}
		fn := constrain.Function{Name: t.Function.Name}
		if p := bytes.TrimSpace(t.Function.Parameters); len(p) > 0 && string(p) != "null" {
			fn.Parameters = p
		}
		if _, err := constrain.CompileCalls([]constrain.Function{fn}, argsKey, 0); err != nil {
			return nil, badRequest(fmt.Sprintf("tools[%d].function.parameters", i), "tool_choice makes the reply a call, and %v", err)
		}
		fns = append(fns, fn)
	}
	key, _ := json.Marshal(struct {
		F   []constrain.Function
		Key string
		L   int
	}{fns, argsKey, maxList})
	schema, err := s.compileSchema(string(key), func() (*constrain.Schema, error) { return constrain.CompileCalls(fns, argsKey, maxList) })
	if err != nil {
		return nil, badRequest("tools", "%v", err)
	}
	pre := s.cfg.Tokenizer.Encode(prefix, tokenizer.EncodeOptions{ParseSpecial: true})
	vocab := s.vocabulary()
	return func() generate.Constraint {
		return constrain.NewPrefixed(pre, constrain.NewSchemaTokens(vocab, schema))
	}, nil
}

// templateCalls turns a request message's tool calls into the form chat
// templates read: arguments decoded when they are a JSON object.
func templateCalls(calls []ToolCall) []any {
	out := make([]any, len(calls))
	for i, c := range calls {
		var args any = c.Function.Arguments
		var obj map[string]any
		if json.Unmarshal([]byte(c.Function.Arguments), &obj) == nil && obj != nil {
			args = obj
		}
		typ := c.Type
		if typ == "" {
			typ = "function"
		}
		out[i] = map[string]any{"id": c.ID, "type": typ, "function": map[string]any{"name": c.Function.Name, "arguments": args}}
	}
	return out
}

// detectToolFormat renders a probe conversation with one probe tool and
// reads the call syntax the template teaches; toolsUnknown when the
// template ignores tools or teaches another syntax.
func detectToolFormat(t *chat.Template) toolFormat {
	probe := []any{map[string]any{"type": "function", "function": map[string]any{
		"name": "loom_probe", "description": "probe", "parameters": map[string]any{"type": "object", "properties": map[string]any{}}}}}
	msgs := []chat.Message{{Role: "user", Content: "hello"}}
	with, err := t.Render(msgs, chat.Options{AddGenerationPrompt: true, Vars: map[string]any{"tools": probe}})
	if err != nil {
		return toolsUnknown
	}
	without, _ := t.Render(msgs, chat.Options{AddGenerationPrompt: true})
	switch {
	case with == without || !strings.Contains(with, "loom_probe"):
		return toolsUnknown
	case strings.Contains(with, "<tool_call>"):
		return toolsHermes
	case strings.Contains(with, "[AVAILABLE_TOOLS]"):
		return toolsMistral
	case strings.Contains(with, `"parameters"`):
		return toolsLlama
	}
	return toolsUnknown
}

// callMarker is the text that opens a call in format f ("" for llama,
// whose call is the whole reply).
func callMarker(f toolFormat) string {
	switch f {
	case toolsHermes:
		return "<tool_call>"
	case toolsMistral:
		return "[TOOL_CALLS]"
	}
	return ""
}

// parseToolCalls splits a reply into its content and its calls; ok is
// false when it holds no well-formed call (then it is all content).
func parseToolCalls(f toolFormat, text string) (content string, calls []ToolCall, ok bool) {
	type call struct {
		Name       string          `json:"name"`
		Arguments  json.RawMessage `json:"arguments"`
		Parameters json.RawMessage `json:"parameters"`
	}
	add := func(c call) bool {
		args := c.Arguments
		if len(args) == 0 {
			args = c.Parameters
		}
		if c.Name == "" {
			return false
		}
		if len(args) == 0 {
			args = json.RawMessage("{}")
		}
		var obj map[string]any
		if json.Unmarshal(args, &obj) != nil {
			// Some models write the arguments as a JSON string.
			var s string
			if json.Unmarshal(args, &s) != nil || json.Unmarshal([]byte(s), &obj) != nil {
				return false
			}
			args = json.RawMessage(s)
		}
		var compact bytes.Buffer
		if json.Compact(&compact, args) != nil {
			return false
		}
		calls = append(calls, ToolCall{ID: callID(), Type: "function", Function: ToolCallFunction{Name: c.Name, Arguments: compact.String()}})
		return true
	}
	switch f {
	case toolsHermes:
		i := strings.Index(text, "<tool_call>")
		if i < 0 {
			return text, nil, false
		}
		content = strings.TrimRight(text[:i], " \n")
		rest := text[i:]
		for {
			rest = strings.TrimLeft(rest, " \n")
			if rest == "" {
				break
			}
			body, ok := strings.CutPrefix(rest, "<tool_call>")
			if !ok {
				return text, nil, false // text after the calls
			}
			end := strings.Index(body, "</tool_call>")
			if end < 0 {
				end = len(body) // the reply ended inside its last call
			}
			var c call
			if json.Unmarshal([]byte(strings.TrimSpace(body[:end])), &c) != nil || !add(c) {
				return text, nil, false
			}
			rest = body[min(end+len("</tool_call>"), len(body)):]
		}
	case toolsMistral:
		body, found := strings.CutPrefix(strings.TrimLeft(text, " \n"), "[TOOL_CALLS]")
		if !found {
			return text, nil, false
		}
		var cs []call
		if json.Unmarshal([]byte(strings.TrimSpace(body)), &cs) != nil || len(cs) == 0 {
			return text, nil, false
		}
		for _, c := range cs {
			if !add(c) {
				return text, nil, false
			}
		}
	case toolsLlama:
		body := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(text), "<|python_tag|>"))
		var c call
		if !strings.HasPrefix(body, "{") || json.Unmarshal([]byte(body), &c) != nil || !add(c) {
			return text, nil, false
		}
	default:
		return text, nil, false
	}
	return content, calls, true
}

// callID returns a fresh tool call id, "call_" and 24 hex digits.
func callID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "call_" + hex.EncodeToString(b[:])
}

// toolStream holds back a streamed reply's text from where a call may
// begin, so that calls reach the client as tool_calls, not as content.
type toolStream struct {
	format toolFormat
	held   string // text not yet sent: a possible start of a call
	inCall bool   // a call has begun: everything from there is held
	begun  bool   // some non-space text has been seen (llama: a call must be all)
}

// push takes the next text of the reply and returns what may be sent now.
func (t *toolStream) push(text string) string {
	t.held += text
	if t.inCall {
		return ""
	}
	if t.format == toolsLlama {
		if !t.begun {
			trimmed := strings.TrimLeft(t.held, " \n")
			if trimmed == "" {
				return ""
			}
			t.begun = true
			if strings.HasPrefix(trimmed, "{") || strings.HasPrefix("<|python_tag|>", trimmed) || strings.HasPrefix(trimmed, "<|python_tag|>") {
				t.inCall = true
				return ""
			}
		}
		out := t.held
		t.held = ""
		return out
	}
	m := callMarker(t.format)
	if i := strings.Index(t.held, m); i >= 0 {
		out := t.held[:i]
		t.held, t.inCall = t.held[i:], true
		return out
	}
	keep := 0 // the longest tail that could begin the marker
	for k := min(len(m)-1, len(t.held)); k > 0; k-- {
		if strings.HasSuffix(t.held, m[:k]) {
			keep = k
			break
		}
	}
	out := t.held[:len(t.held)-keep]
	t.held = t.held[len(t.held)-keep:]
	return out
}

// finish returns, at the end of the reply, the calls it made (ok), or
// the held text to send as content.
func (t *toolStream) finish() (content string, calls []ToolCall, ok bool) {
	if !t.inCall {
		return t.held, nil, false
	}
	_, calls, ok = parseToolCalls(t.format, t.held)
	if !ok {
		return t.held, nil, false
	}
	return "", calls, true
}

// toolFormat returns the call syntax of the server's chat template.
func (s *Server) toolFormat() toolFormat {
	s.toolsOnce.Do(func() { s.tools = detectToolFormat(s.tmpl) })
	return s.tools
}
