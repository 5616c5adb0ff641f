// Package chat turns a conversation into a model's prompt text with the
// model's chat template: the Jinja template a GGUF file carries as
// tokenizer.chat_template, or a Hugging Face tokenizer_config.json as
// chat_template.
//
// Templates are written for Python's Jinja2 as Hugging Face transformers
// runs it (apply_chat_template), so this package implements the part of
// Jinja2 real chat templates use, with Python's semantics, in the same
// environment: trim_blocks and lstrip_blocks on, the loopcontrols
// extension (break, continue), raise_exception, strftime_now, and a tojson
// filter that keeps key order and non-ASCII characters.
//
// Supported: {{ }} output, {% %} statements (if/elif/else, for with an
// optional filter, else, loop.* and tuple unpacking; set, including
// namespace attributes and block sets; macro; break; continue;
// generation; raw), {# #} comments, "-" and "+" whitespace control;
// literals (strings, numbers, lists, dicts, tuples), attribute, item and
// slice access, calls with keyword arguments, the arithmetic, comparison,
// membership, logical, concatenation (~) and conditional (a if b else c)
// operators; the common filters (trim, length, tojson, join, default,
// selectattr, map, ...), tests (defined, none, string, mapping, ...) and
// string and dict methods (strip, startswith, split, items, get, ...).
// Not supported: template inheritance and includes (chat templates are
// one file), call blocks, recursive loops, Python's % string formatting.
//
// Undefined names and missing keys are lenient, as templates expect of
// optional fields: they print as nothing, are false, and their attributes
// are undefined too. Rendering is bounded: a template that loops or grows
// without end fails with ErrLimit rather than exhausting the machine.
package chat

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Sentinel errors.
var (
	// ErrSyntax reports a template that does not parse.
	ErrSyntax = errors.New("chat template syntax error")
	// ErrRender reports a template that fails while rendering (a type
	// error, an unknown filter).
	ErrRender = errors.New("chat template error")
	// ErrException reports raise_exception called by the template: the
	// conversation does not fit the template's rules (see Exception).
	ErrException = errors.New("chat template rejected the conversation")
	// ErrLimit reports a rendering that exceeds the output or step limits.
	ErrLimit = errors.New("chat template exceeds a limit")
)

// Exception is the error raise_exception(message) returns. Its message is
// the template author's explanation, meant for the user (for example
// "Conversation roles must alternate user/assistant/user/assistant/...").
type Exception struct{ Message string }

// Error returns the message after the sentinel's text.
func (e *Exception) Error() string { return ErrException.Error() + ": " + e.Message }

// Unwrap makes errors.Is(err, ErrException) hold.
func (e *Exception) Unwrap() error { return ErrException }

// Message is one turn of a conversation.
type Message struct {
	Role    string // "system", "user", "assistant", "tool", ...
	Content string
	Name    string // optional name of the participant
	// ToolCalls are an assistant message's tool calls, as the templates
	// read them (Hugging Face's convention): each a map with "id", "type"
	// ("function") and "function", itself a map with "name" and
	// "arguments" (a map, or a string when it is not a JSON object), as
	// encoding/json decodes values.
	ToolCalls []any
	// ToolCallID is the call a "tool" message answers.
	ToolCallID string
}

// dict is the message as templates see it: role, content and, when set,
// name, tool_calls and tool_call_id.
func (m Message) dict() *dict {
	d := newDict()
	d.set("role", m.Role)
	d.set("content", m.Content)
	if m.Name != "" {
		d.set("name", m.Name)
	}
	if len(m.ToolCalls) > 0 {
		d.set("tool_calls", convert(m.ToolCalls))
	}
	if m.ToolCallID != "" {
		d.set("tool_call_id", m.ToolCallID)
	}
	return d
}

// ChatML is the template used for models that carry none (llama.cpp's
// choice too): <|im_start|>role\ncontent<|im_end|>\n per message.
const ChatML = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
	"{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"

// defaultMaxOutput is the default bound on a rendering's output.
const defaultMaxOutput = 16 << 20

// Template is a parsed chat template. It is safe for concurrent use.
type Template struct {
	src  string
	body []node
}

// Parse parses a template. Errors wrap ErrSyntax and give the line and
// column.
func Parse(src string) (*Template, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{src: src, toks: toks}
	body, _, err := p.parseBody()
	if err != nil {
		return nil, err
	}
	return &Template{src: src, body: body}, nil
}

// Source returns the template's text.
func (t *Template) Source() string { return t.src }

// Options are the variables of a rendering besides the messages.
type Options struct {
	// BOS and EOS are the texts of the model's beginning- and
	// end-of-sequence tokens (bos_token, eos_token).
	BOS, EOS string
	// AddGenerationPrompt ends the prompt with the start of an assistant
	// turn (add_generation_prompt).
	AddGenerationPrompt bool
	// Vars are further variables (tools, date_string, ...), as
	// encoding/json decodes values: nil, bool, float64, string, []any,
	// map[string]any (whose keys are visited in sorted order).
	Vars map[string]any
	// Now is the clock of strftime_now; nil means time.Now.
	Now func() time.Time
	// MaxOutput bounds the rendered text in bytes; 0 means 16 MiB.
	MaxOutput int
}

// Render renders the conversation into the prompt text.
func (t *Template) Render(messages []Message, opt Options) (string, error) {
	vars := map[string]value{
		"messages":              convert(messages),
		"bos_token":             opt.BOS,
		"eos_token":             opt.EOS,
		"add_generation_prompt": opt.AddGenerationPrompt,
	}
	for k, v := range opt.Vars {
		vars[k] = convert(v)
	}
	r := &renderer{out: &strings.Builder{}, maxOutput: opt.MaxOutput, now: opt.Now}
	if r.maxOutput <= 0 {
		r.maxOutput = defaultMaxOutput
	}
	if r.now == nil {
		r.now = time.Now
	}
	err := r.exec(t.body, &scope{vars: vars})
	switch {
	case errors.Is(err, errBreak), errors.Is(err, errContinue):
		return "", fmt.Errorf("%w: %v", ErrRender, err)
	case err != nil:
		return "", err
	}
	return r.out.String(), nil
}
