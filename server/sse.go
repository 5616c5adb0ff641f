package server

import (
	"context"
	"io"
	"strconv"
	"unicode/utf8"

	"github.com/loomllm/loom/runtime/sched"
)

// The streaming hot path. A streamed token costs the server a JSON chunk
// and a flush; at a few tens of microseconds of engine time per token on a
// small model, encoding/json's reflection, fmt and a goroutine hand-off per
// token were a visible share of the CPU (on a 2-core machine they take it
// from the engine). So:
//
//   - A response with one choice reads its stream directly; the fan-in
//     goroutines and channel are only for n > 1 choices.
//   - Events that are already queued when the handler wakes (it fell
//     behind the scheduler) go out in one write and one flush; each token
//     is still flushed as soon as the handler has it.
//   - The common chunk (a token's text, no log probabilities) is appended
//     to a reused buffer after a prefix encoded once per response, with
//     the same bytes encoding/json writes (TestChunkEncoding); every other
//     chunk goes through encoding/json as before.

// eventBatches calls fn with the events of the streams as they become
// available, each call with every event available at that moment (in
// order per stream), until every stream has ended, ctx ends, or fn
// returns false. An error event (t.err set) ends the batches after fn.
func eventBatches(ctx context.Context, streams []*sched.Stream, fn func([]tagged) bool) {
	var tags []tagged
	if len(streams) == 1 {
		var evs []sched.Event
		for {
			var err error
			evs, err = streams[0].Next(ctx, evs)
			if err == io.EOF {
				return
			}
			tags = tags[:0]
			if err != nil {
				tags = append(tags, tagged{err: err})
			}
			for _, ev := range evs {
				tags = append(tags, tagged{ev: ev})
			}
			if !fn(tags) || err != nil {
				return
			}
		}
	}
	ch := fanIn(ctx, streams)
	for t := range ch {
		tags = append(tags[:0], t)
		open := true
	drain:
		for open && len(tags) < 256 {
			select {
			case t, ok := <-ch:
				if !ok {
					open = false
					break drain
				}
				tags = append(tags, t)
			default:
				break drain
			}
		}
		if !fn(tags) || !open {
			return
		}
	}
}

// chunkPrefix returns the JSON of a chunk up to its first choice's index:
// `{"id":…,"object":…,"created":…,"model":…,"choices":[{"index":`.
func chunkPrefix(id, object string, created int64, model string) []byte {
	b := []byte(`{"id":`)
	b = appendJSONString(b, id)
	b = append(b, `,"object":`...)
	b = appendJSONString(b, object)
	b = append(b, `,"created":`...)
	b = strconv.AppendInt(b, created, 10)
	b = append(b, `,"model":`...)
	b = appendJSONString(b, model)
	return append(b, `,"choices":[{"index":`...)
}

// appendTextEvent appends the server-sent event of a completion chunk
// with choice i's text (no log probabilities, no finish reason).
func appendTextEvent(b, prefix []byte, i int, text string) []byte {
	b = append(b, "data: "...)
	b = append(b, prefix...)
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, `,"text":`...)
	b = appendJSONString(b, text)
	return append(b, ",\"logprobs\":null,\"finish_reason\":null}]}\n\n"...)
}

// appendDeltaEvent appends the server-sent event of a chat chunk with
// choice i's content (no log probabilities, no finish reason).
func appendDeltaEvent(b, prefix []byte, i int, text string) []byte {
	b = append(b, "data: "...)
	b = append(b, prefix...)
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, `,"delta":{"content":`...)
	b = appendJSONString(b, text)
	return append(b, "},\"logprobs\":null,\"finish_reason\":null}]}\n\n"...)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string exactly as encoding/json
// encodes it with SetEscapeHTML(false): `"` and `\` escaped, \b \f \n \r
// \t by name, other control characters as \u00XX, invalid UTF-8 as
// \ufffd, U+2028 and U+2029 as \u2028 and \u2029.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
