package server

import "strings"

// Reasoning (chat models that think before they answer, Qwen3 and
// DeepSeek-R1 style): the reply opens with "<think>" (or the prompt ends
// with it, when the template opens the block itself) and the reasoning
// runs to "</think>". With Config.SplitReasoning the server returns that
// part as the message's reasoning_content (vLLM's and DeepSeek's field)
// and only the rest as content; tool calls are looked for in the content.

const (
	thinkOpen  = "<think>"
	thinkClose = "</think>"
)

// usesThinking reports whether a chat template writes think tags.
func usesThinking(src string) bool { return strings.Contains(src, thinkClose) }

// promptOpensThinking reports whether a rendered prompt ends inside a
// think block the template opened (then the reply starts with reasoning).
func promptOpensThinking(prompt string) bool {
	p := strings.TrimRight(prompt, " \n")
	return strings.HasSuffix(p, thinkOpen)
}

// splitReasoning splits a whole reply into its reasoning and its content;
// inside says the reply starts within the block. A reply without a block
// is all content; one cut off inside its block is all reasoning.
func splitReasoning(text string, inside bool) (reasoning, content string) {
	body := text
	if !inside {
		trimmed := strings.TrimLeft(text, " \n")
		if !strings.HasPrefix(trimmed, thinkOpen) {
			return "", text
		}
		body = trimmed[len(thinkOpen):]
	}
	i := strings.Index(body, thinkClose)
	if i < 0 {
		return strings.Trim(body, "\n"), ""
	}
	return strings.Trim(body[:i], "\n"), strings.TrimLeft(body[i+len(thinkClose):], "\n")
}

// thinkStream splits a streamed reply into reasoning and content deltas,
// holding back text that may still turn out to be a tag, and newlines
// that may still turn out to border one, so that the deltas add up to
// what splitReasoning makes of the whole reply.
type thinkStream struct {
	state int // thinkMaybe, thinkIn or thinkOut
	held  string
	lead  bool // the current part has not started: its leading newlines are dropped
}

const (
	thinkMaybe = iota // no text yet: a block may open
	thinkIn           // inside the block: reasoning
	thinkOut          // after the block (or without one): content
)

func newThinkStream(inside bool) *thinkStream {
	if inside {
		return &thinkStream{state: thinkIn, lead: true}
	}
	return &thinkStream{state: thinkMaybe}
}

// push takes the next text and returns the reasoning and content that can
// be sent now.
func (t *thinkStream) push(text string) (reasoning, content string) {
	t.held += text
	if t.state == thinkMaybe {
		trimmed := strings.TrimLeft(t.held, " \n")
		switch {
		case strings.HasPrefix(trimmed, thinkOpen):
			t.state, t.held, t.lead = thinkIn, trimmed[len(thinkOpen):], true
		case strings.HasPrefix(thinkOpen, trimmed):
			return "", "" // "", "<", "<th", ...: not decided yet
		default:
			t.state = thinkOut
		}
	}
	if t.state == thinkIn {
		if t.lead {
			t.held = strings.TrimLeft(t.held, "\n")
			t.lead = t.held == ""
		}
		if i := strings.Index(t.held, thinkClose); i >= 0 {
			reasoning = strings.TrimRight(t.held[:i], "\n")
			t.state, t.held, t.lead = thinkOut, t.held[i+len(thinkClose):], true
		} else {
			keep := 0 // the longest tail that could begin the closing tag
			for k := min(len(thinkClose)-1, len(t.held)); k > 0; k-- {
				if strings.HasSuffix(t.held, thinkClose[:k]) {
					keep = k
					break
				}
			}
			// and the newlines before it, which the closing tag would drop
			keep += len(t.held[:len(t.held)-keep]) - len(strings.TrimRight(t.held[:len(t.held)-keep], "\n"))
			reasoning, t.held = t.held[:len(t.held)-keep], t.held[len(t.held)-keep:]
			return reasoning, ""
		}
	}
	if t.lead {
		t.held = strings.TrimLeft(t.held, "\n")
		t.lead = t.held == ""
	}
	content, t.held = t.held, ""
	return reasoning, content
}

// finish returns what is held back at the end of the reply.
func (t *thinkStream) finish() (reasoning, content string) {
	held := t.held
	t.held = ""
	if t.state == thinkIn {
		return strings.TrimRight(held, "\n"), ""
	}
	return "", held
}
