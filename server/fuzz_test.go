package server

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loomllm/loom/model/chat"
	"github.com/loomllm/loom/runtime/sched"
)

// FuzzDecode: no request body makes the decoder or the validation panic;
// a body they accept is a well-formed job, and one they reject gets a 4xx.
func FuzzDecode(f *testing.F) {
	m := loadModel(f, 4, 0)
	f.Cleanup(func() { m.Close() })
	sc, err := sched.New(m.Engine(), sched.Config{})
	require.NoError(f, err)
	f.Cleanup(func() { _ = sc.Close(f.Context()) })
	src, err := os.ReadFile("../model/chat/testdata/qwen3.jinja") // tools, tool calls and think tags
	require.NoError(f, err)
	tmpl, err := chat.Parse(string(src))
	require.NoError(f, err)
	s, err := New(Config{Sched: sc, Tokenizer: m.Tokenizer(), ModelName: "m", Template: tmpl, SplitReasoning: true})
	require.NoError(f, err)

	for _, seed := range []string{
		`{"model":"m","prompt":"Once upon a time","max_tokens":5,"temperature":0,"stop":["."],"logprobs":2}`,
		`{"model":"m","prompt":[[1,2,3],[4]],"n":2,"seed":-1,"logit_bias":{"5":-100},"top_k":3,"min_p":0.1}`,
		`{"model":"m","prompt":["a","b"],"stream":true,"stream_options":{"include_usage":true},"presence_penalty":1}`,
		`{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"text","text":"yo"}]}],"logprobs":true,"top_logprobs":3}`,
		`{"model":"m","messages":[{"role":"system","content":null}],"max_completion_tokens":3,"chat_template_kwargs":{"x":[1,{"y":null}]}}`,
		`{"model":"m","prompt":"x","max_tokens":1e400}`, `{"prompt":{"a":1}}`, `[]`, `null`, `{"model":"m","prompt":[1,-1]}`,
		`{"model":"m","messages":[{"role":"user","content":"w?"},{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},{"role":"tool","tool_call_id":"c","content":"r"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"tool_choice":"auto","max_tokens":4}`,
		`{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"none"}`,
		`{"model":"m","messages":[{"role":"assistant","content":"<think>\na\n</think>\n\nb"},{"role":"user","content":"c"}],"chat_template_kwargs":{"enable_thinking":false}}`,
	} {
		f.Add([]byte(seed), false)
		f.Add([]byte(seed), true)
	}
	vocab := m.Tokenizer().VocabSize()
	f.Fuzz(func(t *testing.T, body []byte, isChat bool) {
		j := &job{logprobs: -1}
		var e *apiError
		if isChat {
			var req ChatRequest
			if e = decodeJSON(body, &req); e == nil {
				e = s.parseChat(&req, j)
			}
		} else {
			var req CompletionRequest
			if e = decodeJSON(body, &req); e == nil {
				e = s.parseCompletion(&req, j)
			}
		}
		if e != nil {
			if e.status < 400 || e.status >= 500 || e.message == "" {
				t.Fatalf("error %+v for %q", e, body)
			}
			return
		}
		if len(j.prompts) == 0 || j.n < 1 || j.logprobs > sched.MaxTopLogprobs {
			t.Fatalf("accepted a malformed job %+v for %q", j, body)
		}
		for _, p := range j.prompts {
			if len(p) == 0 {
				t.Fatalf("empty prompt accepted for %q", body)
			}
			for _, id := range p {
				if id < 0 || int(id) >= vocab {
					t.Fatalf("token %d accepted for %q", id, body)
				}
			}
		}
		if err := j.opt.Sampling.Validate(); err != nil {
			t.Fatalf("invalid sampling options accepted for %q: %v", body, err)
		}
	})
}
