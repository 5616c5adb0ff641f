package tokenizer

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// englishText returns about n bytes of English-like prose, the same bytes
// every run: sentences drawn from a fixed word list by a seeded generator.
func englishText(n int) string {
	words := strings.Fields(`the a little girl named Lily loved to play outside in park one day she saw big red
		ball wanted with it but was too high mom said let's go and didn't know what do I want your friend
		Tom happy sad they were very tired after long walk under tree sun shining birds singing
		government economy research university development international information system program
		however because although therefore especially, quickly; slowly: "hello" (world) 1984 2024 3.14
		don't can't we're you've I'm they'll he'd`)
	r := rand.New(rand.NewPCG(1, 2))
	var b strings.Builder
	for b.Len() < n {
		k := 4 + r.IntN(12)
		for i := range k {
			w := words[r.IntN(len(words))]
			if i == 0 {
				w = strings.ToUpper(w[:1]) + w[1:]
			}
			b.WriteString(w)
			if i < k-1 {
				b.WriteByte(' ')
			}
		}
		b.WriteString(". ")
		if r.IntN(6) == 0 {
			b.WriteString("\n\n")
		}
	}
	return b.String()[:n]
}

func benchEncode(b *testing.B, tok *Tokenizer) {
	text := englishText(1 << 20)
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	var n int
	for b.Loop() {
		n = len(tok.Encode(text, EncodeOptions{}))
	}
	b.ReportMetric(float64(len(text))/float64(n), "bytes/token")
}

func BenchmarkEncodeGPT2(b *testing.B) {
	tok, _ := loadVocab(b, "ggml-vocab-gpt-2.gguf")
	benchEncode(b, tok)
}

func BenchmarkEncodeLlamaSPM(b *testing.B) {
	tok, _ := loadVocab(b, "ggml-vocab-llama-spm.gguf")
	benchEncode(b, tok)
}

func BenchmarkDecodeGPT2(b *testing.B) {
	tok, _ := loadVocab(b, "ggml-vocab-gpt-2.gguf")
	text := englishText(1 << 20)
	ids := tok.Encode(text, EncodeOptions{})
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		tok.Decode(ids)
	}
}

func BenchmarkStreamLlamaSPM(b *testing.B) {
	tok, _ := loadVocab(b, "ggml-vocab-llama-spm.gguf")
	text := englishText(1 << 20)
	ids := tok.Encode(text, EncodeOptions{})
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		s := tok.NewStream()
		for _, id := range ids {
			s.Next(id)
		}
		s.Flush()
	}
}

// BenchmarkPreTokenize compares the hand-written Llama 3 scanner with
// regexp2 running the original expression.
func BenchmarkPreTokenize(b *testing.B) {
	text := englishText(1 << 18)
	re, err := regexSplitter(patternLlama3)
	require.NoError(b, err)
	for _, c := range []struct {
		name string
		f    splitter
	}{{"scanner", splitLlama3}, {"regexp2", re}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			var spans []span
			for b.Loop() {
				spans = c.f(spans[:0], text)
			}
		})
	}
}

// TestEncodeSpeed is the acceptance check for throughput: byte-level BPE
// with GPT-2's vocabulary must encode English at 5 MB/s or more on one
// core. It times a quarter megabyte by the CPU time of its thread (where
// the system tells it), best of three, so a busy machine does not fail it;
// it is skipped with -short and under the race detector.
func TestEncodeSpeed(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("timing check")
	}
	text := englishText(1 << 18)
	for _, name := range []string{"ggml-vocab-gpt-2.gguf", "ggml-vocab-llama-spm.gguf"} {
		tok, _ := loadVocab(t, name)
		best := time.Duration(1 << 62)
		for range 3 {
			best = min(best, cpuTime(func() { tok.Encode(text, EncodeOptions{}) }))
		}
		mbs := float64(len(text)) / best.Seconds() / 1e6
		t.Logf("%s: %.1f MB/s", name, mbs)
		require.Greater(t, mbs, 5.0, name)
	}
}
