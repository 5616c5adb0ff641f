package tokenizer

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/loomllm/loom/internal/testdata"
)

// randomText mixes English, scripts, emoji, digits, whitespace runs,
// apostrophes, NUL and invalid bytes.
func randomText(r *rand.Rand, n int) string {
	parts := []string{"the", " ", "  ", "\n", "\r\n", "\t", "'s", "'LL", "'", "Hello", "3", "12345", "日本語", "привет",
		"🦙", "é", "\u00a0", "\u2581", "!!", "...", "\x00", "\xff", "\xe2\x82", "ǅ", "٣", "ⅷ", "<s>", "<|endoftext|>", "\u3000", "a"}
	var b strings.Builder
	for b.Len() < n {
		b.WriteString(parts[r.IntN(len(parts))])
	}
	return b.String()
}

func testVocabs(t testing.TB) []*Tokenizer {
	var toks []*Tokenizer
	for _, name := range []string{"ggml-vocab-llama-spm.gguf", "ggml-vocab-gpt-2.gguf"} {
		tok, _ := loadVocab(t, name)
		toks = append(toks, tok)
	}
	return toks
}

// TestRoundTrip: both kinds are lossless for any bytes without special
// token parsing (every byte has a token), so Decode(Encode(s)) == s, except
// that SentencePiece reads a "▁" in the text as a space.
func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, tok := range testVocabs(t) {
		for range 300 {
			s := randomText(r, r.IntN(80))
			ids := tok.Encode(s, EncodeOptions{})
			for _, id := range ids {
				require.Less(t, int(id), tok.VocabSize())
				require.GreaterOrEqual(t, id, int32(0))
			}
			want := s
			if !tok.byteLevel {
				want = strings.ReplaceAll(s, spaceMark, " ")
			}
			require.Equal(t, want, tok.Decode(ids), "%q", s)
			require.Equal(t, want, streamAll(tok, ids))
		}
	}
}

func streamAll(tok *Tokenizer, ids []int32) string {
	var b strings.Builder
	s := tok.NewStream()
	for _, id := range ids {
		b.WriteString(s.Next(id))
	}
	b.WriteString(s.Flush())
	return b.String()
}

// TestMergeStrategiesAgree checks the heap merge against the scanning one
// on words up to the scanning limit, and the scanning one is what the
// vectors test.
func TestMergeStrategiesAgree(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	st := new(bpeState)
	for _, tok := range testVocabs(t) {
		for range 2000 {
			w := randomText(r, 1+r.IntN(shortWord))
			if !tok.byteLevel {
				w = strings.ReplaceAll(w, " ", spaceMark)
			}
			if utf8.RuneCountInString(w) > shortWord || len(w) > shortWord && tok.byteLevel {
				w = w[:shortWord]
			}
			short := tok.bpe(st, w, nil, shortWord)
			long := tok.bpe(st, w, nil, 0)
			require.Equal(t, short, long, "%q", w)
		}
	}
}

// TestPreTokenizersMatchRegexp2 runs the hand-written scanners and regexp2
// with the original expressions on the same texts.
func TestPreTokenizersMatchRegexp2(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	texts := []string{"", " ", "   Hello\n\n  world  ", "I'm they'RE 'll '", "a\r\n\r\n b", "x  \n\t y", "1234567 12", "\xff\xfe abc"}
	for range 500 {
		texts = append(texts, randomText(r, r.IntN(60)))
	}
	for _, c := range []struct {
		pattern string
		f       splitter
	}{{patternGPT2, splitGPT2}, {patternLlama3, splitLlama3}, {patternQwen2, splitQwen2}} {
		re, err := regexSplitter(c.pattern)
		require.NoError(t, err)
		for _, s := range texts {
			require.Equal(t, re(nil, s), c.f(nil, s), "pattern %s on %q", c.pattern, s)
		}
	}
}

// TestHostileInputs: long, repetitive and binary inputs finish quickly and
// round-trip.
func TestHostileInputs(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("large inputs")
	}
	r := rand.New(rand.NewPCG(9, 10))
	binary := make([]byte, 1<<18)
	for i := range binary {
		binary[i] = byte(r.Uint32())
	}
	const n = 1 << 16 // the long single words cost O(n log n) each
	inputs := map[string]string{
		"10MB English": englishText(10 << 20),
		"a×64K":        strings.Repeat("a", n),
		"ab×32K":       strings.Repeat("ab", n/2),
		"space×64K":    strings.Repeat(" ", n),
		"newline×64K":  strings.Repeat("\n", n),
		"llama×16K":    strings.Repeat("🦙", n/4),
		"▁x×32K":       strings.Repeat("\u2581x", n/2),
		"NUL×64K":      strings.Repeat("\x00", n),
		"digits×64K":   strings.Repeat("1234567890", n/10),
		"binary 256K":  string(binary),
	}
	for _, tok := range testVocabs(t) {
		for name, s := range inputs {
			start := time.Now()
			ids := tok.Encode(s, EncodeOptions{AddSpecial: true, ParseSpecial: true})
			require.Less(t, time.Since(start), 20*time.Second, name)
			if tok.addBOS {
				ids = ids[1:]
			}
			want := s
			if !tok.byteLevel {
				want = strings.ReplaceAll(s, spaceMark, " ")
			}
			require.True(t, want == tok.Decode(ids), "%s does not round-trip", name)
		}
	}
}

// TestLinearTime: four times the input may not take much more than four
// times as long, for a single huge word.
func TestLinearTime(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("timing check")
	}
	for _, tok := range testVocabs(t) {
		for _, unit := range []string{"a", "🦙"} {
			measure := func(n int) time.Duration {
				s := strings.Repeat(unit, n)
				best := time.Duration(1 << 62)
				for range 5 {
					best = min(best, cpuTime(func() { tok.Encode(s, EncodeOptions{}) }))
				}
				return best
			}
			// 8× the input: linear work takes about 8× the time, quadratic
			// work 64×; 20 keeps clear of both on a busy machine.
			small, large := measure(1<<13), measure(1<<16)
			require.Less(t, float64(large)/float64(small), 20.0, "%q: %v for 8K, %v for 64K", unit, small, large)
		}
	}
}

func FuzzEncode(f *testing.F) {
	toks := testVocabs(f)
	for _, c := range readVectors(f, testdata.Path(f, "tokenizers/ggml-vocab-gpt-2.gguf")) {
		f.Add(c.text, false)
	}
	f.Add("<|endoftext|><s>\xff", true)
	f.Fuzz(func(t *testing.T, s string, special bool) {
		for _, tok := range toks {
			ids := tok.Encode(s, EncodeOptions{AddSpecial: special, ParseSpecial: special})
			if !special && (tok.byteLevel || !strings.Contains(s, spaceMark)) {
				require.Equal(t, s, tok.Decode(ids))
			}
			require.Equal(t, tok.Decode(ids), streamAll(tok, ids))
		}
	})
}

func FuzzDecode(f *testing.F) {
	toks := testVocabs(f)
	f.Add([]byte{1, 0, 0, 0, 0x41, 0x7d, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		ids := make([]int32, len(b)/4)
		for i := range ids {
			ids[i] = int32(uint32(b[4*i]) | uint32(b[4*i+1])<<8 | uint32(b[4*i+2])<<16 | uint32(b[4*i+3])<<24)
		}
		for _, tok := range toks {
			full := tok.Decode(ids)
			s := tok.NewStream()
			var got strings.Builder
			for _, id := range ids {
				got.WriteString(s.Next(id))
				// No valid character of the full text may straddle what has
				// been emitted and what has not.
				pos := got.Len()
				for k := max(0, pos-3); k < pos && pos < len(full); k++ {
					if r, size := utf8.DecodeRuneInString(full[k:]); r != utf8.RuneError && k+size > pos {
						t.Fatalf("character %q split after %d bytes of %q", r, pos, full)
					}
				}
			}
			got.WriteString(s.Flush())
			require.Equal(t, tok.Decode(ids), got.String())
		}
	})
}
