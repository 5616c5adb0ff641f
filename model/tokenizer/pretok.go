package tokenizer

import (
	"fmt"
	"unicode"
	"unicode/utf8"

	"github.com/dlclark/regexp2"

	"github.com/loomllm/loom/model"
)

// A splitter cuts text into words and appends their spans to dst. The
// spans cover the text in order (a splitter may drop bytes only where its
// definition says so).
type splitter func(dst []span, text string) []span

// The pre-tokenizer regular expressions of the known byte-level BPE
// families, as their tokenizer.json files write them.
const (
	patternGPT2   = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
	patternLlama3 = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	patternQwen2  = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// ggufPreTokenizer returns the splitter for a GGUF tokenizer.ggml.pre name.
// The names are llama.cpp's; "" and "default" get GPT-2's expression.
func ggufPreTokenizer(pre string) (splitter, error) {
	switch pre {
	case "", "default", "gpt-2", "gpt2", "mpt", "olmo", "jais", "phi-2", "trillion", "stablelm2":
		return splitGPT2, nil
	case "llama-bpe", "llama3", "llama-v3", "smaug-bpe", "dbrx", "falcon3", "pixtral":
		return splitLlama3, nil
	case "qwen2", "deepseek-r1-qwen", "megrez", "hunyuan":
		return splitQwen2, nil
	case "starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b":
		return chain(splitDigits(true), splitGPT2), nil
	}
	return nil, fmt.Errorf("tokenizer: pre-tokenizer %q: %w", pre, model.ErrUnsupported)
}

// patternSplitter returns a splitter for a Split pre-tokenizer's regular
// expression: a hand-written scanner for the known ones, regexp2 otherwise.
func patternSplitter(pattern string) (splitter, error) {
	switch pattern {
	case patternGPT2:
		return splitGPT2, nil
	case patternLlama3:
		return splitLlama3, nil
	case patternQwen2:
		return splitQwen2, nil
	}
	return regexSplitter(pattern)
}

// chain applies splitters in turn, each to the words of the one before.
func chain(fs ...splitter) splitter {
	if len(fs) == 1 {
		return fs[0]
	}
	return func(dst []span, text string) []span {
		base := len(dst)
		dst = fs[0](dst, text)
		for _, f := range fs[1:] {
			words := append([]span(nil), dst[base:]...)
			dst = dst[:base]
			for _, w := range words {
				n := len(dst)
				dst = f(dst, text[w.start:w.end])
				for i := n; i < len(dst); i++ {
					dst[i].start += w.start
					dst[i].end += w.start
				}
			}
		}
		return dst
	}
}

// Character classes for the scanners.
const (
	clsOther  = iota // neither letter, number nor whitespace (also invalid bytes)
	clsLetter        // \p{L}
	clsNumber        // \p{N}
	clsSpace         // \s
)

var asciiClass = func() (c [utf8.RuneSelf]uint8) {
	for r := range c {
		c[r] = runeClass(rune(r))
	}
	return c
}()

func runeClass(r rune) uint8 {
	switch {
	case unicode.IsLetter(r):
		return clsLetter
	case unicode.IsNumber(r):
		return clsNumber
	case unicode.IsSpace(r):
		return clsSpace
	}
	return clsOther
}

// classAt returns the class of the character at text[i:] and its size; i
// may be len(text), which reads as a class of its own (-1).
func classAt(text string, i int) (int, int) {
	if i >= len(text) {
		return -1, 0
	}
	if c := text[i]; c < utf8.RuneSelf {
		return int(asciiClass[c]), 1
	}
	r, size := utf8.DecodeRuneInString(text[i:])
	if r == utf8.RuneError && size == 1 {
		return clsOther, 1
	}
	return int(runeClass(r)), size
}

// run returns the end of the run of characters of class cls starting at i,
// and the number of characters in it, stopping after max characters when
// max > 0.
func run(text string, i, cls, max int) (int, int) {
	n := 0
	for i < len(text) && (max <= 0 || n < max) {
		c, size := classAt(text, i)
		if c != cls {
			break
		}
		i += size
		n++
	}
	return i, n
}

// contraction returns the length of the English contraction ('s, 't, 're,
// 've, 'm, 'll, 'd) at text[i:], or 0. With fold, letters match in either
// case (ASCII only, as llama.cpp).
func contraction(text string, i int, fold bool) int {
	if text[i] != '\'' || i+1 >= len(text) {
		return 0
	}
	lower := func(c byte) byte {
		if fold && c >= 'A' && c <= 'Z' {
			return c + 'a' - 'A'
		}
		return c
	}
	var want byte
	switch lower(text[i+1]) {
	case 's', 't', 'm', 'd':
		return 2
	case 'r', 'v':
		want = 'e'
	case 'l':
		want = 'l'
	default:
		return 0
	}
	if i+2 < len(text) && lower(text[i+2]) == want {
		return 3
	}
	return 0
}

// spaceRun handles the whitespace alternatives shared by the expressions,
// `\s+(?!\S)|\s+`, for the run of whitespace [i, end) of n characters: the
// whole run when it ends the text or is one character, else all of it but
// its last character, which then leads the next word.
func spaceRun(text string, i, end, n int) int {
	if end == len(text) || n == 1 {
		return end
	}
	_, size := utf8.DecodeLastRuneInString(text[i:end])
	return end - size
}

// splitGPT2 is GPT-2's pre-tokenizer:
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
func splitGPT2(dst []span, text string) []span {
	for i := 0; i < len(text); {
		end := i
		if n := contraction(text, i, false); n > 0 {
			end = i + n
		} else {
			cls, size := classAt(text, i)
			j := i
			if text[i] == ' ' {
				if c2, size2 := classAt(text, i+1); c2 == clsLetter || c2 == clsNumber || c2 == clsOther {
					j, cls, size = i+1, c2, size2
				}
			}
			if cls == clsSpace {
				e, n := run(text, i, clsSpace, 0)
				end = spaceRun(text, i, e, n)
			} else {
				end, _ = run(text, j+size, cls, 0)
			}
		}
		dst = append(dst, span{i, end})
		i = end
	}
	return dst
}

// splitLlama3 is Llama 3's pre-tokenizer (numbers in groups of up to 3).
func splitLlama3(dst []span, text string) []span { return splitLlamaStyle(dst, text, 3) }

// splitQwen2 is Qwen2's pre-tokenizer (numbers one digit at a time).
func splitQwen2(dst []span, text string) []span { return splitLlamaStyle(dst, text, 1) }

// splitLlamaStyle implements, with maxDigits digits per number,
//
//	(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,maxDigits}|
//	 ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
func splitLlamaStyle(dst []span, text string, maxDigits int) []span {
	for i := 0; i < len(text); {
		end := i
		cls, size := classAt(text, i)
		c := text[i]
		switch {
		case contraction(text, i, true) > 0:
			end = i + contraction(text, i, true)
		case cls == clsLetter:
			end, _ = run(text, i, clsLetter, 0)
		case c != '\r' && c != '\n' && cls != clsNumber && nextIs(text, i+size, clsLetter):
			end, _ = run(text, i+size, clsLetter, 0)
		case cls == clsNumber:
			end, _ = run(text, i, clsNumber, maxDigits)
		case cls == clsOther || (c == ' ' && nextIs(text, i+1, clsOther)):
			j := i
			if c == ' ' {
				j = i + 1
			}
			end, _ = run(text, j, clsOther, 0)
			for end < len(text) && (text[end] == '\r' || text[end] == '\n') {
				end++
			}
		default: // whitespace
			e, n := run(text, i, clsSpace, 0)
			end = spaceRun(text, i, e, n)
			for k := e - 1; k >= i; k-- { // \s*[\r\n]+ ends at the run's last newline
				if text[k] == '\r' || text[k] == '\n' {
					end = k + 1
					break
				}
			}
		}
		dst = append(dst, span{i, end})
		i = end
	}
	return dst
}

func nextIs(text string, i, cls int) bool {
	c, _ := classAt(text, i)
	return c == cls
}

// splitDigits is Hugging Face's Digits pre-tokenizer: runs of \p{N}, or
// each digit alone when individual is set, are words of their own.
func splitDigits(individual bool) splitter {
	return func(dst []span, text string) []span {
		start := 0
		for i := 0; i < len(text); {
			cls, size := classAt(text, i)
			if cls != clsNumber {
				i += size
				continue
			}
			if i > start {
				dst = append(dst, span{start, i})
			}
			end := i + size
			if !individual {
				end, _ = run(text, i, clsNumber, 0)
			}
			dst = append(dst, span{i, end})
			i, start = end, end
		}
		if start < len(text) {
			dst = append(dst, span{start, len(text)})
		}
		return dst
	}
}

// regexSplitter runs an arbitrary Split pattern with regexp2, which has the
// look-ahead the expressions use. Matches and the text between them are
// words (Hugging Face's "Isolated" behaviour). regexp2 works on runes, so
// invalid UTF-8 in the text reads as U+FFFD while matching; the spans still
// refer to the original bytes.
func regexSplitter(pattern string) (splitter, error) {
	re, err := regexp2.Compile(pattern, regexp2.None)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: Split pattern %q: %v: %w", pattern, err, model.ErrFormat)
	}
	return func(dst []span, text string) []span {
		runes := []rune(text)
		offs := make([]int, 0, len(runes)+1) // rune index -> byte offset
		for i := range text {
			offs = append(offs, i)
		}
		offs = append(offs, len(text))
		last := 0
		m, err := re.FindRunesMatch(runes)
		for err == nil && m != nil {
			s, e := offs[m.Index], offs[m.Index+m.Length]
			if s > last {
				dst = append(dst, span{last, s})
			}
			if e > s {
				dst = append(dst, span{s, e})
			}
			last = e
			m, err = re.FindNextMatch(m)
		}
		if last < len(text) {
			dst = append(dst, span{last, len(text)})
		}
		return dst
	}, nil
}
