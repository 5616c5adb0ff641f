package server

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestChunkEncoding: the hand-written chunks of the streaming hot path are
// byte for byte what encoding/json writes for the same response.
func TestChunkEncoding(t *testing.T) {
	texts := []string{"", "Once", " upon a time", `"quoted" \ back\slash`, "tab\tnew\nline\rcr\bbs\fff",
		"\x00\x01\x1f\x7f", "<html>&amp;</html>", "é漢字🙂", "\xff\xfe bad", "a\u2028b\u2029c", "\xe2\x80", "\xed\xa0\x80"}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		b := make([]byte, rng.IntN(12))
		for i := range b {
			b[i] = byte(rng.IntN(256))
			if rng.IntN(3) == 0 {
				const pick = "\"\\\n\x01\xe2\x80\xa8\xa9"
				b[i] = pick[rng.IntN(len(pick))]
			}
		}
		texts = append(texts, string(b))
	}
	for _, id := range []string{"cmpl-abc", `we"ird\id`} {
		for _, model := range []string{"stories260K", "m<o>del\u2028"} {
			for _, text := range texts {
				for _, i := range []int{0, 7, 123} {
					want, err := jsonMarshal(CompletionResponse{ID: id, Object: "text_completion", Created: 1764265000, Model: model,
						Choices: []CompletionChoice{{Index: i, Text: text}}})
					require.NoError(t, err)
					got := appendTextEvent(nil, chunkPrefix(id, "text_completion", 1764265000, model), i, text)
					require.Equal(t, "data: "+string(want)+"\n\n", string(got), "%q", text)

					content := text
					want, err = jsonMarshal(ChatResponse{ID: id, Object: "chat.completion.chunk", Created: 1764265000, Model: model,
						Choices: []ChatChoice{{Index: i, Delta: &ChatReply{Content: &content}}}})
					require.NoError(t, err)
					got = appendDeltaEvent(nil, chunkPrefix(id, "chat.completion.chunk", 1764265000, model), i, text)
					require.Equal(t, "data: "+string(want)+"\n\n", string(got), "%q", text)
				}
			}
		}
	}
}

// BenchmarkChunk: one streamed token's chunk, hand-written and through
// encoding/json.
func BenchmarkChunk(b *testing.B) {
	prefix := chunkPrefix("cmpl-0123456789abcdef", "text_completion", 1764265000, "stories260K")
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for range b.N {
			buf = appendTextEvent(buf[:0], prefix, 0, " little")
		}
	})
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			_, _ = jsonMarshal(CompletionResponse{ID: "cmpl-0123456789abcdef", Object: "text_completion", Created: 1764265000,
				Model: "stories260K", Choices: []CompletionChoice{{Text: " little"}}})
		}
	})
}
