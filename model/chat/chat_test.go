package chat

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The templates in testdata are the chat_template strings the models ship
// in their tokenizer_config.json; the expected prompts are written out by
// hand from each model's documented format.

var (
	withSystem = []Message{
		{Role: "system", Content: "You are a helpful assistant."},
		{Role: "user", Content: "Hello"},
		{Role: "assistant", Content: "Hi there!"},
		{Role: "user", Content: "How are you?"},
	}
	noSystem = withSystem[1:]
	weather  = map[string]any{"type": "function", "function": map[string]any{
		"name": "get_weather", "description": "Get the weather",
		"parameters": map[string]any{"type": "object", "required": []any{"city"},
			"properties": map[string]any{"city": map[string]any{"type": "string"}}},
	}}
	july26 = func() time.Time { return time.Date(2024, 7, 26, 12, 0, 0, 0, time.UTC) }
	// qwenTools is the tools section of the Qwen2.5 and Qwen3 templates'
	// system turn for the weather tool, up to the end of that turn.
	qwenTools = "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n" +
		"You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n" +
		`{"function": {"description": "Get the weather", "name": "get_weather", "parameters": {"properties": {"city": {"type": "string"}}, "required": ["city"], "type": "object"}}, "type": "function"}` +
		"\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n" +
		"<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n"
)

func load(t testing.TB, name string) *Template {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	tmpl, err := Parse(string(src))
	require.NoError(t, err)
	return tmpl
}

func header(role string) string { return "<|start_header_id|>" + role + "<|end_header_id|>\n\n" }

func TestRealTemplates(t *testing.T) {
	cases := []struct {
		name, file string
		msgs       []Message
		opt        Options
		want       string
	}{
		{"llama2", "llama2.jinja", withSystem, Options{BOS: "<s>", EOS: "</s>", AddGenerationPrompt: true},
			"<s>[INST] <<SYS>>\nYou are a helpful assistant.\n<</SYS>>\n\nHello [/INST] Hi there! </s><s>[INST] How are you? [/INST]"},
		{"llama2 strips content", "llama2.jinja", []Message{{Role: "user", Content: "  Hello\n"}, {Role: "assistant", Content: " Hi "}},
			Options{BOS: "<s>", EOS: "</s>"}, "<s>[INST] Hello [/INST] Hi </s>"},
		{"llama3", "llama3.jinja", withSystem, Options{BOS: "<|begin_of_text|>", AddGenerationPrompt: true},
			"<|begin_of_text|>" + header("system") + "You are a helpful assistant.<|eot_id|>" +
				header("user") + "Hello<|eot_id|>" + header("assistant") + "Hi there!<|eot_id|>" +
				header("user") + "How are you?<|eot_id|>" + header("assistant")},
		{"llama3 no generation prompt", "llama3.jinja", []Message{{Role: "user", Content: " Hi \n"}}, Options{BOS: "<|begin_of_text|>"},
			"<|begin_of_text|>" + header("user") + "Hi<|eot_id|>"},
		{"llama3.2", "llama3.2.jinja", withSystem, Options{BOS: "<|begin_of_text|>", AddGenerationPrompt: true, Now: july26},
			"<|begin_of_text|>" + header("system") + "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n" +
				"You are a helpful assistant.<|eot_id|>" +
				header("user") + "Hello<|eot_id|>" + header("assistant") + "Hi there!<|eot_id|>" +
				header("user") + "How are you?<|eot_id|>" + header("assistant")},
		{"llama3.2 date_string", "llama3.2.jinja", []Message{{Role: "user", Content: "Hi"}},
			Options{BOS: "<|begin_of_text|>", Vars: map[string]any{"date_string": "01 Jan 2025"}},
			"<|begin_of_text|>" + header("system") + "Cutting Knowledge Date: December 2023\nToday Date: 01 Jan 2025\n\n" +
				"<|eot_id|>" + header("user") + "Hi<|eot_id|>"},
		{"llama3.2 tools", "llama3.2.jinja", []Message{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "Weather in Paris?"}},
			Options{BOS: "<|begin_of_text|>", AddGenerationPrompt: true, Now: july26, Vars: map[string]any{"tools": []any{weather}}},
			"<|begin_of_text|>" + header("system") + "Environment: ipython\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n" +
				"Be brief.<|eot_id|>" + header("user") +
				"Given the following functions, please respond with a JSON for a function call with its proper arguments that best answers the given prompt.\n\n" +
				`Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.Do not use variables.` + "\n\n" +
				"{\n    \"function\": {\n        \"description\": \"Get the weather\",\n        \"name\": \"get_weather\",\n" +
				"        \"parameters\": {\n            \"properties\": {\n                \"city\": {\n                    \"type\": \"string\"\n" +
				"                }\n            },\n            \"required\": [\n                \"city\"\n            ],\n" +
				"            \"type\": \"object\"\n        }\n    },\n    \"type\": \"function\"\n}\n\n" +
				"Weather in Paris?<|eot_id|>" + header("assistant")},
		{"qwen2.5", "qwen2.5.jinja", withSystem, Options{AddGenerationPrompt: true},
			"<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n" +
				"<|im_start|>assistant\nHi there!<|im_end|>\n<|im_start|>user\nHow are you?<|im_end|>\n<|im_start|>assistant\n"},
		{"qwen2.5 default system", "qwen2.5.jinja", []Message{{Role: "user", Content: "Hello"}}, Options{},
			"<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"},
		{"qwen2.5 tools", "qwen2.5.jinja", []Message{{Role: "user", Content: "Weather?"}},
			Options{AddGenerationPrompt: true, Vars: map[string]any{"tools": []any{weather}}},
			"<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.\n\n" + qwenTools +
				"<|im_start|>user\nWeather?<|im_end|>\n<|im_start|>assistant\n"},
		{"qwen3", "qwen3.jinja", withSystem, Options{AddGenerationPrompt: true},
			"<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n" +
				"<|im_start|>assistant\nHi there!<|im_end|>\n<|im_start|>user\nHow are you?<|im_end|>\n<|im_start|>assistant\n"},
		{"qwen3 no thinking", "qwen3.jinja", []Message{{Role: "user", Content: "Hello"}},
			Options{AddGenerationPrompt: true, Vars: map[string]any{"enable_thinking": false}},
			"<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"},
		{"qwen3 thinking on", "qwen3.jinja", []Message{{Role: "user", Content: "Hello"}},
			Options{AddGenerationPrompt: true, Vars: map[string]any{"enable_thinking": true}},
			"<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"},
		// An earlier turn's reasoning is dropped from the history; the
		// reasoning of the turn after the last user message is kept.
		{"qwen3 history", "qwen3.jinja", []Message{{Role: "user", Content: "2+2?"},
			{Role: "assistant", Content: "<think>\nadd them\n</think>\n\n4"}, {Role: "user", Content: "And 3+3?"},
			{Role: "assistant", Content: "<think>\nagain\n</think>\n\n6"}}, Options{},
			"<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n<|im_start|>user\nAnd 3+3?<|im_end|>\n" +
				"<|im_start|>assistant\n<think>\nagain\n</think>\n\n6<|im_end|>\n"},
		{"qwen3 tools", "qwen3.jinja", []Message{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "Weather?"}},
			Options{AddGenerationPrompt: true, Vars: map[string]any{"tools": []any{weather}}},
			"<|im_start|>system\nBe brief.\n\n" + qwenTools +
				"<|im_start|>user\nWeather?<|im_end|>\n<|im_start|>assistant\n"},
		{"qwen3 tool response", "qwen3.jinja", []Message{{Role: "user", Content: "Weather?"}, {Role: "tool", Content: "sunny"}},
			Options{AddGenerationPrompt: true},
			"<|im_start|>user\nWeather?<|im_end|>\n<|im_start|>user\n<tool_response>\nsunny\n</tool_response><|im_end|>\n<|im_start|>assistant\n"},
		{"qwen3 tool call history", "qwen3.jinja", []Message{{Role: "user", Content: "Weather?"},
			{Role: "assistant", ToolCalls: []any{map[string]any{"id": "call_1", "type": "function",
				"function": map[string]any{"name": "get_weather", "arguments": map[string]any{"city": "Paris"}}}}},
			{Role: "tool", Content: "sunny", ToolCallID: "call_1"}},
			Options{AddGenerationPrompt: true},
			"<|im_start|>user\nWeather?<|im_end|>\n<|im_start|>assistant\n<tool_call>\n" +
				`{"name": "get_weather", "arguments": {"city": "Paris"}}` + "\n</tool_call><|im_end|>\n" +
				"<|im_start|>user\n<tool_response>\nsunny\n</tool_response><|im_end|>\n<|im_start|>assistant\n"},
		{"chatml", "", withSystem, Options{AddGenerationPrompt: true},
			"<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n" +
				"<|im_start|>assistant\nHi there!<|im_end|>\n<|im_start|>user\nHow are you?<|im_end|>\n<|im_start|>assistant\n"},
		{"mistral v0.2", "mistral-v0.2.jinja", noSystem, Options{BOS: "<s>", EOS: "</s>", AddGenerationPrompt: true},
			"<s>[INST] Hello [/INST]Hi there!</s>[INST] How are you? [/INST]"},
		{"mistral nemo", "mistral-nemo.jinja", withSystem, Options{BOS: "<s>", EOS: "</s>"},
			"<s>[INST]Hello[/INST]Hi there!</s>[INST]You are a helpful assistant.\n\nHow are you?[/INST]"},
		{"mistral nemo tools", "mistral-nemo.jinja", noSystem, Options{BOS: "<s>", EOS: "</s>", Vars: map[string]any{"tools": []any{weather}}},
			"<s>[INST]Hello[/INST]Hi there!</s>[AVAILABLE_TOOLS][" +
				`{"type": "function", "function": {"description": "Get the weather", "name": "get_weather", "parameters": {"properties": {"city": {"type": "string"}}, "required": ["city"], "type": "object"}}}` +
				"][/AVAILABLE_TOOLS][INST]How are you?[/INST]"},
		{"phi3.5", "phi3.5.jinja", withSystem, Options{EOS: "<|endoftext|>", AddGenerationPrompt: true},
			"<|system|>\nYou are a helpful assistant.<|end|>\n<|user|>\nHello<|end|>\n<|assistant|>\nHi there!<|end|>\n" +
				"<|user|>\nHow are you?<|end|>\n<|assistant|>\n"},
		{"phi3.5 eos", "phi3.5.jinja", []Message{{Role: "system"}, {Role: "user", Content: "Hi"}}, Options{EOS: "<|endoftext|>"},
			"<|user|>\nHi<|end|>\n<|endoftext|>"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tmpl, err := Parse(ChatML)
			require.NoError(t, err)
			if c.file != "" {
				tmpl = load(t, c.file)
			}
			got, err := tmpl.Render(c.msgs, c.opt)
			require.NoError(t, err)
			require.Equal(t, c.want, got)
		})
	}
}

func TestTemplateExceptions(t *testing.T) {
	cases := []struct{ file, want string }{
		{"llama2.jinja", "Conversation roles must alternate user/assistant/user/assistant/..."},
		{"mistral-v0.2.jinja", "Conversation roles must alternate user/assistant/user/assistant/..."},
		{"mistral-nemo.jinja", "After the optional system message, conversation roles must alternate user/assistant/user/assistant/..."},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			_, err := load(t, c.file).Render([]Message{{Role: "user", Content: "a"}, {Role: "user", Content: "b"}}, Options{})
			require.ErrorIs(t, err, ErrException)
			var ex *Exception
			require.True(t, errors.As(err, &ex))
			require.Equal(t, c.want, ex.Message)
		})
	}
	_, err := load(t, "mistral-v0.2.jinja").Render(withSystem, Options{})
	require.ErrorIs(t, err, ErrException, "a system message breaks the alternation first")
}
