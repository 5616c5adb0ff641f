package server

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loomllm/loom/model/chat"
)

// TestSplitReasoning: whole replies, and the same replies streamed in
// every two-piece cut and token by token, give the same reasoning and
// content.
func TestSplitReasoning(t *testing.T) {
	cases := []struct {
		text               string
		inside             bool
		reasoning, content string
	}{
		{"<think>\nLet me add.\n2+2=4\n</think>\n\nIt is 4.", false, "Let me add.\n2+2=4", "It is 4."},
		{"It is 4.", false, "", "It is 4."},
		{"  <think>\n\n</think>\n\nHi", false, "", "Hi"},
		{"<think>\nstill thinking", false, "still thinking", ""},
		{"reasoning</think>\n\nanswer", true, "reasoning", "answer"},
		{"\nreasoning\n\n</think>answer <think>not a block</think>", true, "reasoning", "answer <think>not a block</think>"},
		{"<thinking is fun", false, "", "<thinking is fun"},
		{"a </think> b", false, "", "a </think> b"},
		{"", false, "", ""},
	}
	for _, c := range cases {
		r, ct := splitReasoning(c.text, c.inside)
		require.Equal(t, c.reasoning, r, "%q", c.text)
		require.Equal(t, c.content, ct, "%q", c.text)
		stream := func(pieces []string) (string, string) {
			ts := newThinkStream(c.inside)
			var rs, cs strings.Builder
			for _, p := range pieces {
				a, b := ts.push(p)
				rs.WriteString(a)
				cs.WriteString(b)
			}
			a, b := ts.finish()
			rs.WriteString(a)
			cs.WriteString(b)
			return rs.String(), cs.String()
		}
		for i := 0; i <= len(c.text); i++ {
			r, ct := stream([]string{c.text[:i], c.text[i:]})
			require.Equal(t, c.reasoning, r, "%q cut at %d", c.text, i)
			require.Equal(t, c.content, ct, "%q cut at %d", c.text, i)
		}
		bytes := strings.Split(c.text, "")
		r, ct = stream(bytes)
		require.Equal(t, c.reasoning, r, "%q byte by byte", c.text)
		require.Equal(t, c.content, ct, "%q byte by byte", c.text)
	}
	require.True(t, promptOpensThinking("<|im_start|>assistant\n<think>\n"))
	require.False(t, promptOpensThinking("<|im_start|>assistant\n<think>\n\n</think>\n\n"))
}

// TestReasoningThroughServer: with SplitReasoning and a template that
// opens the think block in the prompt (as DeepSeek-R1's does), a reply
// cut off by max_tokens is all reasoning, streamed or not, the same text
// the model writes; with Qwen3's template (which leaves the opening to the
// model) a reply without a block is all content.
func TestReasoningThroughServer(t *testing.T) {
	opens, err := chat.Parse("{% for m in messages %}{{ m.content }}{% endfor %}{% if add_generation_prompt %}<think>\n{% endif %}" +
		"{% if false %}</think>{% endif %}")
	require.NoError(t, err)
	ask := func(ts *testServer, stream bool) (reasoning, content, reason string) {
		body := map[string]any{"model": "stories260K", "messages": []map[string]any{{"role": "user", "content": "Once upon a time"}},
			"max_tokens": 24, "temperature": 0}
		if !stream {
			var resp ChatResponse
			r := ts.post(t, "/v1/chat/completions", body, &resp)
			require.Equal(t, 200, r.StatusCode)
			m := resp.Choices[0].Message
			if m.ReasoningContent != nil {
				reasoning = *m.ReasoningContent
			}
			if m.Content != nil {
				content = *m.Content
			}
			return reasoning, content, *resp.Choices[0].FinishReason
		}
		st := streamChat(t, ts, body)
		return st.reasoning.String(), st.content.String(), st.reason
	}

	plain := startServer(t, serverOptions{template: opens})
	_, text, _ := ask(plain, false) // SplitReasoning off: all content

	split := startServer(t, serverOptions{template: opens, splitReasoning: true})
	for _, stream := range []bool{false, true} {
		r, c, reason := ask(split, stream)
		require.Equal(t, strings.Trim(text, "\n"), r, "stream %v", stream)
		require.Empty(t, c, "stream %v", stream)
		require.Equal(t, "length", reason)
	}

	qwen := startServer(t, serverOptions{template: template(t, "qwen3.jinja"), splitReasoning: true})
	for _, stream := range []bool{false, true} {
		r, c, _ := ask(qwen, stream)
		require.Empty(t, r)
		require.NotEmpty(t, c)
	}
}

// FuzzSplitReasoning: for any reply and any way of cutting it into
// pieces, the streamed split adds up to the whole one; and parsing a reply
// for tool calls never panics.
func FuzzSplitReasoning(f *testing.F) {
	f.Add("<think>\na\n</think>\n\nb", false, uint64(7))
	f.Add("a</think>b", true, uint64(3))
	f.Add("<tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>", false, uint64(1))
	f.Fuzz(func(t *testing.T, text string, inside bool, cuts uint64) {
		wr, wc := splitReasoning(text, inside)
		ts := newThinkStream(inside)
		var rs, cs strings.Builder
		for rest := text; rest != ""; {
			n := 1 + int(cuts%7)
			cuts = cuts/7 + 1
			n = min(n, len(rest))
			r, c := ts.push(rest[:n])
			rs.WriteString(r)
			cs.WriteString(c)
			rest = rest[n:]
		}
		r, c := ts.finish()
		rs.WriteString(r)
		cs.WriteString(c)
		if rs.String() != wr || cs.String() != wc {
			t.Fatalf("%q (inside %v): streamed %q/%q, whole %q/%q", text, inside, rs.String(), cs.String(), wr, wc)
		}
		for _, f := range []toolFormat{toolsHermes, toolsMistral, toolsLlama} {
			parseToolCalls(f, text)
			st := toolStream{format: f}
			st.push(text)
			st.finish()
		}
	})
}
