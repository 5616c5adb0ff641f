package tokenizer

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/loomllm/loom/model"
)

// GPT-2's byte-to-character map: byte-level vocabularies store byte b as
// the character byteRune[b], so every token is printable text. Printable
// Latin-1 bytes stand for themselves; the others map to U+0100 onwards.
var byteRune, runeByte = func() (br [256]rune, rb map[rune]byte) {
	rb = make(map[rune]byte, 256)
	n := rune(0)
	for b := 0; b < 256; b++ {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			br[b] = rune(b)
		} else {
			br[b] = 256 + n
			n++
		}
		rb[br[b]] = byte(b)
	}
	return br, rb
}()

// byteLevelDecode returns the bytes a byte-level piece stands for.
// Characters outside the map (in hand-added tokens) stand for themselves.
func byteLevelDecode(p string) string {
	b := make([]byte, 0, len(p))
	for _, r := range p {
		if c, ok := runeByte[r]; ok {
			b = append(b, c)
		} else {
			b = utf8.AppendRune(b, r)
		}
	}
	return string(b)
}

// newByteBPE builds a byte-level BPE tokenizer from GGUF data.
func newByteBPE(spec *model.TokenizerSpec) (*Tokenizer, error) {
	t, err := base(spec)
	if err != nil {
		return nil, err
	}
	if t.split, err = ggufPreTokenizer(spec.Pre); err != nil {
		return nil, err
	}
	switch spec.Pre {
	case "llama-bpe", "llama3", "llama-v3", "falcon3", "pixtral":
		t.ignoreMerges = true
	}
	if err := t.setByteLevel(mergePairs(spec.Merges)); err != nil {
		return nil, err
	}
	t.finish()
	return t, nil
}

// NewGPT2 builds a tokenizer from OpenAI's GPT-2 files: encoder.json (the
// vocabulary, token string to id) and vocab.bpe (the merge rules, one
// "left right" pair a line after a "#version" header). "<|endoftext|>" is
// BOS, EOS and EOT.
func NewGPT2(encoderJSON, vocabBPE io.Reader) (*Tokenizer, error) {
	var enc map[string]int
	if err := json.NewDecoder(encoderJSON).Decode(&enc); err != nil {
		return nil, fmt.Errorf("tokenizer: encoder.json: %v: %w", err, model.ErrFormat)
	}
	tokens, err := denseVocab(enc, nil)
	if err != nil {
		return nil, err
	}
	var merges []string
	sc := bufio.NewScanner(vocabBPE)
	sc.Buffer(make([]byte, 0, 64*1024), maxTokenBytes*2+2)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "" || strings.HasPrefix(line, "#version") {
			continue
		}
		merges = append(merges, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("tokenizer: vocab.bpe: %v: %w", err, model.ErrFormat)
	}
	spec := &model.TokenizerSpec{Model: "gpt2", Pre: "gpt-2", Tokens: tokens, Merges: merges, BOS: -1, EOS: -1, EOT: -1, PAD: -1, UNK: -1}
	spec.Types = make([]int32, len(tokens))
	for i, p := range tokens {
		spec.Types[i] = typeNormal
		if p == "<|endoftext|>" {
			spec.Types[i] = typeControl
			spec.BOS, spec.EOS, spec.EOT = i, i, i
		}
	}
	return newByteBPE(spec)
}

// denseVocab turns a token-to-id map into the id-ordered token list. Ids
// must cover 0..n-1 except where extra (added tokens, keyed by id) fills the
// gaps.
func denseVocab(vocab map[string]int, extra map[int]string) ([]string, error) {
	n := 0
	for p, id := range vocab {
		if id < 0 || id >= maxVocab {
			return nil, fmt.Errorf("tokenizer: token %q has id %d: %w", p, id, model.ErrFormat)
		}
		n = max(n, id+1)
	}
	for id := range extra {
		if id < 0 || id >= maxVocab {
			return nil, fmt.Errorf("tokenizer: added token id %d: %w", id, model.ErrFormat)
		}
		n = max(n, id+1)
	}
	if n > 2*(len(vocab)+len(extra))+256 {
		return nil, fmt.Errorf("tokenizer: vocabulary ids up to %d for %d tokens: %w", n-1, len(vocab)+len(extra), model.ErrFormat)
	}
	tokens := make([]string, n)
	set := make([]bool, n)
	for p, id := range vocab {
		if set[id] && tokens[id] != p {
			return nil, fmt.Errorf("tokenizer: id %d used by %q and %q: %w", id, tokens[id], p, model.ErrFormat)
		}
		tokens[id], set[id] = p, true
	}
	for id, p := range extra {
		tokens[id], set[id] = p, true
	}
	return tokens, nil
}

// mergePairs splits "left right" merge lines.
func mergePairs(lines []string) [][2]string {
	pairs := make([][2]string, 0, len(lines))
	for _, m := range lines {
		l, r, ok := strings.Cut(m, " ")
		if !ok {
			pairs = append(pairs, [2]string{m, ""}) // rejected by setByteLevel
			continue
		}
		pairs = append(pairs, [2]string{l, r})
	}
	return pairs
}

// setByteLevel makes t a byte-level BPE tokenizer with the given merge
// rules (in the vocabulary's mapped characters, best first) and fills the
// decode table.
func (t *Tokenizer) setByteLevel(pairs [][2]string) error {
	t.byteLevel = true
	text := make(map[string]int32, len(t.pieces))
	for id, p := range t.pieces {
		if t.mergeable(id) {
			if _, dup := text[p]; !dup {
				text[p] = int32(id)
			}
		}
	}
	for b := range t.byteID {
		if id, ok := text[string(byteRune[b])]; ok {
			t.byteID[b] = id
		}
	}
	if err := t.setMerges(pairs, text); err != nil {
		return err
	}
	if t.ignoreMerges {
		t.words = make(map[string]int32, len(text))
		for p, id := range text {
			t.words[byteLevelDecode(p)] = id
		}
	}
	t.decoded = make([]string, len(t.pieces))
	for id, p := range t.pieces {
		switch t.types[id] {
		case typeControl, typeUnused:
		case typeUnknown:
			t.decoded[id] = unknownText
		case typeUserDefined:
			t.decoded[id] = p
		default:
			t.decoded[id] = byteLevelDecode(p)
		}
	}
	return nil
}

// setMerges fills t.merges from ranked pairs of token strings; text maps
// the strings to ids. Rules naming strings outside the vocabulary are
// skipped, as llama.cpp does.
func (t *Tokenizer) setMerges(pairs [][2]string, text map[string]int32) error {
	t.merges = make(map[uint64]merge, len(pairs))
	for rank, p := range pairs {
		if p[0] == "" || p[1] == "" {
			return fmt.Errorf("tokenizer: merge rule %d %q: %w", rank, p[0]+" "+p[1], model.ErrFormat)
		}
		l, okL := text[p[0]]
		r, okR := text[p[1]]
		m, okM := text[p[0]+p[1]]
		if !okL || !okR || !okM {
			continue
		}
		k := pairKey(l, r)
		if _, dup := t.merges[k]; !dup {
			t.merges[k] = merge{rank: int32(rank), id: m}
		}
	}
	return nil
}
