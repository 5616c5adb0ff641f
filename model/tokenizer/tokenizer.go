// Package tokenizer turns text into token ids and back, exactly as the
// model's own tokenizer does.
//
// Two kinds of vocabulary are supported, both as byte-pair encoding:
//
//   - SentencePiece-style BPE (GGUF tokenizer.ggml.model "llama": Llama 1/2,
//     Mistral, TinyLlama, Phi-3). Spaces become "▁", the text gets a leading
//     "▁" (add_space_prefix), adjacent symbols are merged by the score of the
//     token they form (highest first, leftmost on ties), and characters
//     outside the vocabulary fall back to "<0xNN>" byte tokens.
//   - Byte-level BPE (GGUF "gpt2": GPT-2, Llama 3, Qwen2). The text is first
//     split into words by the model's pre-tokenizer (tokenizer.ggml.pre),
//     each word's bytes are merged by the rank of the merge rule.
//
// A Hugging Face tokenizer.json (model.TokenizerSpec.HFJSON) with a BPE model
// is mapped onto the same machinery: its normalizers (Prepend, Replace,
// Lowercase; NFC is taken as already satisfied, as llama.cpp does for the
// same models), pre-tokenizers (Split, ByteLevel, Metaspace, Digits), the
// byte_fallback and ignore_merges flags, its added tokens (with lstrip and
// rstrip) and the BOS/EOS its TemplateProcessing post-processor adds. OpenAI's
// GPT-2 files (encoder.json, vocab.bpe) load with NewGPT2.
//
// # Decisions
//
// The reference is llama.cpp: its test vectors must be reproduced exactly.
// Where llama.cpp and Hugging Face differ, llama.cpp wins for GGUF files.
//
//   - Merging: symbols form a linked list in a slice. Words of up to 24
//     symbols (nearly all words of real text) find the best pair by scanning;
//     longer ones keep candidate pairs in a 4-ary heap, so a word of n
//     symbols costs O(n log n) whatever its content. SentencePiece text is
//     not pre-tokenized; when no token contains "x▁" (x not "▁") the text is
//     cut before such "▁", which is exact (no merge can cross the cut) and
//     keeps words short. SentencePiece's score order becomes merge rules
//     derived from the vocabulary (every cut of a token into two tokens), so
//     both kinds share one merge loop.
//   - Pre-tokenizers: the regular expressions of GPT-2, Llama 3 and Qwen2
//     (and GPT-2's preceded by digit isolation, used by StarCoder and
//     others) are hand-written scanners; tests check them against
//     github.com/dlclark/regexp2 running the original expressions, which is
//     also the fallback for other Split patterns in tokenizer.json. The Llama
//     3 scanner runs about 20 times faster than regexp2 (BenchmarkPreTokenize).
//   - Speed on 1 MB of English, per second of one core's CPU time (Xeon,
//     2026-11): byte-level BPE with GPT-2's vocabulary encodes 27-35 MB/s,
//     SentencePiece with Llama 2's 23-30 MB/s (the lower figure counts the
//     garbage collector, the higher only the encoding thread); decoding runs
//     at 100-200 MB/s. Words of 256K repeated symbols cost 40-190 ns a byte.
//     See BenchmarkEncode*, BenchmarkDecode*, TestEncodeSpeed.
//   - Invalid UTF-8 is kept: a byte that is not part of a valid sequence is a
//     character of its own that is neither letter, digit nor space. Byte-level
//     BPE therefore round-trips any byte string; SentencePiece gives it byte
//     tokens. Decode returns raw bytes, which need not be valid UTF-8. A "▁"
//     in the text reads as a space to SentencePiece, as in the original.
//   - Special tokens: user-defined tokens (GGUF type 4, Hugging Face added
//     tokens with special=false) are always matched in the text, as llama.cpp
//     and Hugging Face do; control tokens (type 3, added special tokens) only
//     with EncodeOptions.ParseSpecial. Matching is leftmost-longest.
//   - The add_space_prefix rule applies to every piece of text between
//     special tokens (llama.cpp's rule), and decoding drops the leading space
//     of the first text token at the start and after every special token, so
//     decoding an encoding gives the text back. This is llama2.c's rule of
//     stripping the space after BOS.
//   - Control tokens decode to nothing, the unknown token to "▅" (as
//     llama.cpp), user-defined tokens to their text. Decoding never cleans
//     up spaces before punctuation (Hugging Face's
//     clean_up_tokenization_spaces), so it stays lossless.
//
// A Tokenizer is immutable after New and safe for concurrent use.
package tokenizer

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/loomllm/loom/model"
)

// Token types, as GGUF's tokenizer.ggml.token_type stores them.
const (
	typeNormal      = 1
	typeUnknown     = 2
	typeControl     = 3
	typeUserDefined = 4
	typeUnused      = 5
	typeByte        = 6
)

// Limits that bound the memory a malformed file can ask for.
const (
	maxVocab      = 1 << 22 // 4M tokens; the largest real vocabularies are ~260K
	maxTokenBytes = 1 << 16
)

// unknownText is what the unknown token decodes to (llama.cpp's choice).
const unknownText = "\u2585"

// spaceMark is SentencePiece's visible space, U+2581 "▁".
const spaceMark = "\u2581"

// EncodeOptions controls Encode.
type EncodeOptions struct {
	// AddSpecial adds BOS and EOS as the vocabulary asks (add_bos_token,
	// add_eos_token).
	AddSpecial bool
	// ParseSpecial recognises control tokens written in the text, such as
	// "<|im_start|>" in a rendered chat template. Never set it for text a
	// user typed.
	ParseSpecial bool
}

// merge is one merge rule: the pair it applies to forms token id, and rules
// of lower rank apply first.
type merge struct {
	rank int32
	id   int32
}

// special is a token matched verbatim in the text before the BPE runs.
type special struct {
	text    string
	id      int32
	control bool // only matched with ParseSpecial
	lstrip  bool // swallows whitespace before it
	rstrip  bool // swallows whitespace after it
}

// Tokenizer encodes text to token ids and decodes ids to text.
type Tokenizer struct {
	pieces  []string // the vocabulary's strings
	types   []int32  // token types, len(pieces)
	decoded []string // what each token decodes to

	bos, eos, eot, pad, unk int32
	addBOS, addEOS          bool
	eog                     map[int32]bool

	// Text processing before the BPE.
	normalize func(text string, first bool) string
	split     splitter // nil: the whole (normalized) text is one word
	specials  []special
	byFirst   [256][]int32 // indices into specials by first byte, longest first

	// stripSpace: decoding drops the space the normalizer put in front of
	// the text (SentencePiece's add_space_prefix).
	stripSpace bool

	// BPE.
	byteLevel    bool             // symbols are bytes (GPT-2); else characters
	merges       map[uint64]merge // (left id, right id) -> rule
	byteID       [256]int32       // byte-level: token of the byte; else <0xNN> token
	asciiID      [128]int32       // character mode: token of an ASCII character
	runeID       map[rune]int32   // character mode: token of a character (may be a pseudo id >= len(pieces))
	words        map[string]int32 // ignore_merges: whole words in the vocabulary
	ignoreMerges bool
	fallback     bool // characters outside the vocabulary become byte tokens

	pool sync.Pool // *bpeState

	idsOnce sync.Once
	ids     map[string]int32 // piece -> id, built by the first TokenID
}

// New builds a tokenizer from a model's tokenizer data: a GGUF vocabulary
// (spec.Model "llama" or "gpt2") or, when spec.HFJSON is set, a Hugging Face
// tokenizer.json. Errors wrap model.ErrFormat for malformed data and
// model.ErrUnsupported for valid data loom does not implement. The
// tokenizer keeps spec.Tokens; do not modify it afterwards.
func New(spec *model.TokenizerSpec) (*Tokenizer, error) {
	if spec == nil {
		return nil, fmt.Errorf("tokenizer: no tokenizer data: %w", model.ErrMissing)
	}
	if len(spec.HFJSON) > 0 {
		return newHF(spec)
	}
	switch spec.Model {
	case "llama":
		return newSPM(spec)
	case "gpt2":
		return newByteBPE(spec)
	case "":
		return nil, fmt.Errorf("tokenizer: the model file has no tokenizer: %w", model.ErrMissing)
	default:
		return nil, fmt.Errorf("tokenizer: tokenizer model %q: %w", spec.Model, model.ErrUnsupported)
	}
}

// base checks what every kind of tokenizer data shares (vocabulary, scores
// and types of matching lengths, special ids inside the vocabulary) and
// returns a Tokenizer holding it, with empty byte and character tables.
func base(spec *model.TokenizerSpec) (*Tokenizer, error) {
	n := len(spec.Tokens)
	if n == 0 {
		return nil, fmt.Errorf("tokenizer: empty vocabulary: %w", model.ErrFormat)
	}
	if n > maxVocab {
		return nil, fmt.Errorf("tokenizer: vocabulary of %d tokens exceeds %d: %w", n, maxVocab, model.ErrFormat)
	}
	if len(spec.Scores) != 0 && len(spec.Scores) != n {
		return nil, fmt.Errorf("tokenizer: %d scores for %d tokens: %w", len(spec.Scores), n, model.ErrFormat)
	}
	if len(spec.Types) != 0 && len(spec.Types) != n {
		return nil, fmt.Errorf("tokenizer: %d token types for %d tokens: %w", len(spec.Types), n, model.ErrFormat)
	}
	t := &Tokenizer{pieces: spec.Tokens, types: make([]int32, n)}
	for i := range t.types {
		t.types[i] = typeNormal
		if len(spec.Types) != 0 {
			t.types[i] = spec.Types[i]
		}
		if len(t.pieces[i]) > maxTokenBytes {
			return nil, fmt.Errorf("tokenizer: token %d is %d bytes long: %w", i, len(t.pieces[i]), model.ErrFormat)
		}
	}
	var err error
	id := func(name string, v int) int32 {
		if v < 0 {
			return -1
		}
		if v >= n {
			if err == nil {
				err = fmt.Errorf("tokenizer: %s id %d outside the vocabulary of %d: %w", name, v, n, model.ErrFormat)
			}
			return -1
		}
		return int32(v)
	}
	t.bos, t.eos, t.eot = id("BOS", spec.BOS), id("EOS", spec.EOS), id("EOT", spec.EOT)
	t.pad, t.unk = id("PAD", spec.PAD), id("UNK", spec.UNK)
	if err != nil {
		return nil, err
	}
	t.addBOS = spec.AddBOS && t.bos >= 0
	t.addEOS = spec.AddEOS && t.eos >= 0
	// Files without token types still mark their special tokens.
	if len(spec.Types) == 0 {
		for _, s := range []int32{t.bos, t.eos, t.eot, t.pad} {
			if s >= 0 {
				t.types[s] = typeControl
			}
		}
		if t.unk >= 0 {
			t.types[t.unk] = typeUnknown
		}
	}
	for i := range t.byteID {
		t.byteID[i] = -1
	}
	for i := range t.asciiID {
		t.asciiID[i] = -1
	}
	return t, nil
}

// finish computes what every tokenizer needs once the vocabulary, types and
// decode table are set: special-token matching and end-of-generation ids.
func (t *Tokenizer) finish() {
	t.specials = t.specials[:0]
	for id, typ := range t.types {
		if (typ == typeControl || typ == typeUserDefined) && t.pieces[id] != "" {
			t.specials = append(t.specials, special{text: t.pieces[id], id: int32(id), control: typ == typeControl})
		}
	}
	t.sortSpecials()
	t.eog = map[int32]bool{}
	for _, id := range []int32{t.eos, t.eot} {
		if id >= 0 {
			t.eog[id] = true
		}
	}
	for id, p := range t.pieces {
		if t.types[id] == typeControl || t.types[id] == typeUserDefined {
			switch p {
			case "<|eot_id|>", "<|eom_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<EOT>", "<|end_of_text|>", "<|return|>":
				t.eog[int32(id)] = true
			}
		}
	}
	t.pool.New = func() any { return new(bpeState) }
}

// sortSpecials indexes the special tokens by first byte, longest first,
// for leftmost-longest matching.
func (t *Tokenizer) sortSpecials() {
	sort.SliceStable(t.specials, func(i, j int) bool { return len(t.specials[i].text) > len(t.specials[j].text) })
	t.byFirst = [256][]int32{}
	for k, s := range t.specials {
		t.byFirst[s.text[0]] = append(t.byFirst[s.text[0]], int32(k))
	}
}

// VocabSize returns the number of tokens in the vocabulary.
func (t *Tokenizer) VocabSize() int { return len(t.pieces) }

// BOS returns the beginning-of-sequence token, or -1.
func (t *Tokenizer) BOS() int32 { return t.bos }

// EOS returns the end-of-sequence token, or -1.
func (t *Tokenizer) EOS() int32 { return t.eos }

// EOT returns the end-of-turn token, or -1.
func (t *Tokenizer) EOT() int32 { return t.eot }

// AddBOS reports whether Encode with AddSpecial puts BOS first.
func (t *Tokenizer) AddBOS() bool { return t.addBOS }

// IsEndOfGeneration reports whether generating id ends the reply: EOS, EOT
// and the end-of-turn tokens of common chat formats present in the
// vocabulary ("<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", ...).
func (t *Tokenizer) IsEndOfGeneration(id int32) bool { return t.eog[id] }

// IsControl reports whether id is a control token (BOS, EOS, chat markers),
// which decodes to no text.
func (t *Tokenizer) IsControl(id int32) bool {
	return id >= 0 && int(id) < len(t.types) && t.types[id] == typeControl
}

// Text returns the bytes token id adds to a decoded text in the middle of
// one (a byte token its byte, "▁the" " the"), or "" for control and
// user-defined tokens and ids outside the vocabulary. Constrained
// decoding reads the vocabulary through it.
func (t *Tokenizer) Text(id int32) string {
	if id < 0 || int(id) >= len(t.pieces) {
		return ""
	}
	switch t.types[id] {
	case typeControl, typeUserDefined:
		return ""
	}
	return t.decoded[id]
}

// Piece returns the vocabulary's string for id ("▁the", "Ġthe", "<0x0A>"),
// or "" when id is outside the vocabulary.
func (t *Tokenizer) Piece(id int32) string {
	if id < 0 || int(id) >= len(t.pieces) {
		return ""
	}
	return t.pieces[id]
}

// TokenID returns the id of the token whose vocabulary string is piece.
func (t *Tokenizer) TokenID(piece string) (int32, bool) {
	t.idsOnce.Do(func() {
		t.ids = make(map[string]int32, len(t.pieces))
		for id, p := range t.pieces {
			if _, dup := t.ids[p]; !dup {
				t.ids[p] = int32(id)
			}
		}
	})
	id, ok := t.ids[piece]
	if !ok {
		return -1, false
	}
	return id, true
}

// Encode returns the token ids of text. It never fails: text that is not
// valid UTF-8 is encoded byte by byte where the vocabulary allows, and
// otherwise as the unknown token.
func (t *Tokenizer) Encode(text string, opt EncodeOptions) []int32 {
	out := make([]int32, 0, len(text)/3+2)
	if opt.AddSpecial && t.addBOS {
		out = append(out, t.bos)
	}
	st := t.pool.Get().(*bpeState)
	defer t.release(st)
	first := true
	for len(text) > 0 {
		start, end, sp := t.nextSpecial(text, opt.ParseSpecial)
		frag := text[:start]
		if sp != nil && sp.lstrip {
			frag = strings.TrimRight(frag, " \t\n\r\v\f")
		}
		if frag != "" {
			out = t.encodeText(st, frag, first, out)
		}
		first = false
		if sp == nil {
			break
		}
		out = append(out, sp.id)
		text = text[end:]
		if sp.rstrip {
			text = strings.TrimLeft(text, " \t\n\r\v\f")
		}
	}
	if opt.AddSpecial && t.addEOS {
		out = append(out, t.eos)
	}
	return out
}

// release returns scratch memory to the pool unless a huge word made it
// too large to keep around.
func (t *Tokenizer) release(st *bpeState) {
	if cap(st.syms) <= 1<<16 && cap(st.heap) <= 1<<16 && cap(st.spans) <= 1<<16 {
		t.pool.Put(st)
	}
}

// nextSpecial finds the leftmost-longest special token in text that may be
// matched. It returns its span, or (len(text), len(text), nil).
func (t *Tokenizer) nextSpecial(text string, parseControl bool) (int, int, *special) {
	if len(t.specials) == 0 {
		return len(text), len(text), nil
	}
	for i := 0; i < len(text); i++ {
		for _, k := range t.byFirst[text[i]] {
			s := &t.specials[k]
			if (!s.control || parseControl) && strings.HasPrefix(text[i:], s.text) {
				return i, i + len(s.text), s
			}
		}
	}
	return len(text), len(text), nil
}

// encodeText encodes a piece of text that holds no special token. first is
// set for the piece at the start of the input.
func (t *Tokenizer) encodeText(st *bpeState, text string, first bool, out []int32) []int32 {
	if t.normalize != nil {
		text = t.normalize(text, first)
	}
	if t.split == nil {
		return t.encodeWord(st, text, out)
	}
	st.spans = t.split(st.spans[:0], text)
	for _, sp := range st.spans {
		out = t.encodeWord(st, text[sp.start:sp.end], out)
	}
	return out
}

// maxWord is the longest word merged as a whole; symbol offsets are int32.
// Longer words (a gigabyte without a break) are merged in pieces.
const maxWord = 1 << 30

// encodeWord encodes one pre-tokenized word.
func (t *Tokenizer) encodeWord(st *bpeState, w string, out []int32) []int32 {
	for len(w) > maxWord {
		cut := maxWord
		for cut > 0 && !utf8.RuneStart(w[cut]) {
			cut--
		}
		out = t.encodeWord(st, w[:cut], out)
		w = w[cut:]
	}
	if w == "" {
		return out
	}
	if t.ignoreMerges {
		if id, ok := t.words[w]; ok {
			return append(out, id)
		}
	}
	return t.bpe(st, w, out, shortWord)
}

// appendFallback appends the tokens for text that is not in the vocabulary:
// its bytes as byte tokens, or the unknown token.
func (t *Tokenizer) appendFallback(out []int32, text string) []int32 {
	if t.fallback || t.byteLevel {
		ok := true
		for i := 0; i < len(text); i++ {
			if t.byteID[text[i]] < 0 {
				ok = false
				break
			}
		}
		if ok {
			for i := 0; i < len(text); i++ {
				out = append(out, t.byteID[text[i]])
			}
			return out
		}
	}
	if t.unk >= 0 {
		out = append(out, t.unk)
	}
	return out
}

// Decode returns the text of ids: the concatenation of what a Stream emits
// for them. Ids outside the vocabulary decode to nothing.
func (t *Tokenizer) Decode(ids []int32) string {
	var b []byte
	s := t.NewStream()
	for _, id := range ids {
		b = s.appendNext(b, id)
	}
	return string(b)
}

// parseByteToken returns the byte of a "<0xNN>" piece.
func parseByteToken(p string) (byte, bool) {
	if len(p) != 6 || p[:3] != "<0x" || p[5] != '>' {
		return 0, false
	}
	hi, ok1 := hexVal(p[3])
	lo, ok2 := hexVal(p[4])
	return hi<<4 | lo, ok1 && ok2
}

func hexVal(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// scoreRanks turns SentencePiece scores (higher merges first) into ranks
// (lower merges first); equal scores get equal ranks so the leftmost pair
// wins, as in SentencePiece.
func scoreRanks(scores []float32) []int32 {
	uniq := make([]float32, 0, len(scores))
	for _, s := range scores {
		if !math.IsNaN(float64(s)) {
			uniq = append(uniq, s)
		}
	}
	sort.Slice(uniq, func(i, j int) bool { return uniq[i] > uniq[j] })
	ranks := make([]int32, len(scores))
	for i, s := range scores {
		if math.IsNaN(float64(s)) {
			ranks[i] = math.MaxInt32
			continue
		}
		ranks[i] = int32(sort.Search(len(uniq), func(k int) bool { return uniq[k] <= s }))
	}
	return ranks
}

// pairKey packs a merge's two token ids into a map key.
func pairKey(l, r int32) uint64 { return uint64(uint32(l))<<32 | uint64(uint32(r)) }

// incompleteTail returns the length of the UTF-8 sequence at the end of b
// that more bytes could complete, or 0.
func incompleteTail(b []byte) int {
	for k := 1; k <= 3 && k <= len(b); k++ {
		c := b[len(b)-k]
		if c < 0x80 {
			return 0
		}
		if c >= 0xC0 { // a start byte
			if !utf8.FullRune(b[len(b)-k:]) {
				return k
			}
			return 0
		}
	}
	return 0
}
