package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/dlclark/regexp2"

	"github.com/loomllm/loom/model"
)

// Hugging Face tokenizer.json, the parts a BPE tokenizer uses. Components
// (normalizers, pre-tokenizers, decoders, post-processors) share one struct
// holding the fields of every type this package reads.

type hfFile struct {
	AddedTokens   []hfAdded `json:"added_tokens"`
	Normalizer    *hfStep   `json:"normalizer"`
	PreTokenizer  *hfStep   `json:"pre_tokenizer"`
	PostProcessor *hfStep   `json:"post_processor"`
	Decoder       *hfStep   `json:"decoder"`
	Model         hfModel   `json:"model"`
}

type hfAdded struct {
	ID      int    `json:"id"`
	Content string `json:"content"`
	LStrip  bool   `json:"lstrip"`
	RStrip  bool   `json:"rstrip"`
	Special bool   `json:"special"`
}

type hfModel struct {
	Type                    string          `json:"type"`
	Vocab                   map[string]int  `json:"vocab"`
	Merges                  json.RawMessage `json:"merges"` // ["a b", ...] or [["a", "b"], ...]
	UnkToken                *string         `json:"unk_token"`
	ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
	Dropout                 *float64        `json:"dropout"`
	ByteFallback            bool            `json:"byte_fallback"`
	IgnoreMerges            bool            `json:"ignore_merges"`
}

type hfPattern struct {
	String *string `json:"String"`
	Regex  *string `json:"Regex"`
}

type hfStep struct {
	Type string `json:"type"`
	// Sequence members.
	Normalizers   []hfStep `json:"normalizers"`
	PreTokenizers []hfStep `json:"pretokenizers"`
	Decoders      []hfStep `json:"decoders"`
	Processors    []hfStep `json:"processors"`
	// Prepend; Replace, Split; Strip.
	Prepend  string    `json:"prepend"`
	Pattern  hfPattern `json:"pattern"`
	Content  string    `json:"content"`
	Behavior string    `json:"behavior"`
	Invert   bool      `json:"invert"`
	Start    int       `json:"start"`
	// ByteLevel; Metaspace; Digits.
	AddPrefixSpace   *bool  `json:"add_prefix_space"`
	UseRegex         *bool  `json:"use_regex"`
	Replacement      string `json:"replacement"`
	PrependScheme    string `json:"prepend_scheme"`
	Split            *bool  `json:"split"`
	IndividualDigits bool   `json:"individual_digits"`
	// TemplateProcessing.
	Single []struct {
		SpecialToken *struct {
			ID string `json:"id"`
		} `json:"SpecialToken"`
		Sequence *struct {
			ID string `json:"id"`
		} `json:"Sequence"`
	} `json:"single"`
}

// flatten returns the steps of a component, expanding Sequences.
func (s *hfStep) flatten() []hfStep {
	if s == nil {
		return nil
	}
	if s.Type != "Sequence" {
		return []hfStep{*s}
	}
	var out []hfStep
	for _, list := range [][]hfStep{s.Normalizers, s.PreTokenizers, s.Decoders, s.Processors} {
		for i := range list {
			out = append(out, list[i].flatten()...)
		}
	}
	return out
}

// textOp is one string transformation of the text between special tokens;
// first is set for the text at the start of the input.
type textOp func(text string, first bool) string

func unsupported(what string, v any) error {
	return fmt.Errorf("tokenizer: tokenizer.json %s %v: %w", what, v, model.ErrUnsupported)
}

// newHF builds a tokenizer from spec.HFJSON. Special token ids set in spec
// (>= 0) take precedence over what the file implies.
func newHF(spec *model.TokenizerSpec) (*Tokenizer, error) {
	var f hfFile
	if err := json.Unmarshal(spec.HFJSON, &f); err != nil {
		return nil, fmt.Errorf("tokenizer: tokenizer.json: %v: %w", err, model.ErrFormat)
	}
	m := &f.Model
	if m.Type != "BPE" && !(m.Type == "" && m.Vocab != nil && m.Merges != nil) {
		return nil, unsupported("model type", m.Type)
	}
	if (m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "") || (m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "") {
		return nil, unsupported("BPE with subword prefix or suffix", "")
	}
	if m.Dropout != nil && *m.Dropout > 0 {
		return nil, unsupported("BPE dropout", *m.Dropout)
	}
	added := make(map[int]string, len(f.AddedTokens))
	for _, a := range f.AddedTokens {
		if a.Content == "" {
			return nil, fmt.Errorf("tokenizer: tokenizer.json: empty added token %d: %w", a.ID, model.ErrFormat)
		}
		added[a.ID] = a.Content
	}
	tokens, err := denseVocab(m.Vocab, added)
	if err != nil {
		return nil, err
	}
	pairs, err := hfMerges(m.Merges)
	if err != nil {
		return nil, err
	}

	gs := model.TokenizerSpec{Tokens: tokens, BOS: -1, EOS: -1, EOT: -1, PAD: -1, UNK: -1}
	gs.Types = make([]int32, len(tokens))
	for id := range tokens {
		gs.Types[id] = typeNormal
		if _, ok := m.Vocab[tokens[id]]; !ok {
			if _, ok := added[id]; !ok {
				gs.Types[id] = typeUnused // a hole in the ids
			}
		}
	}
	for _, a := range f.AddedTokens {
		gs.Types[a.ID] = typeUserDefined
		if a.Special {
			gs.Types[a.ID] = typeControl
		}
	}
	if m.UnkToken != nil {
		if id, ok := m.Vocab[*m.UnkToken]; ok {
			gs.UNK = id
			gs.Types[id] = typeUnknown
		}
	}
	bos, eos := hfTemplate(f.PostProcessor)
	idOf := func(names ...string) int {
		for _, n := range names {
			for _, a := range f.AddedTokens {
				if a.Content == n {
					return a.ID
				}
			}
		}
		return -1
	}
	gs.BOS, gs.AddBOS = idOf(bos), bos != ""
	gs.EOS, gs.AddEOS = idOf(eos), eos != ""
	if gs.EOS < 0 {
		gs.EOS = idOf("</s>", "<|end_of_text|>", "<|endoftext|>", "<|im_end|>", "<eos>")
	}
	gs.EOT = idOf("<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>")
	if !(spec.BOS == 0 && spec.EOS == 0 && spec.EOT == 0 && spec.PAD == 0 && spec.UNK == 0) { // a zero spec sets nothing
		for _, p := range []struct{ src, dst *int }{{&spec.BOS, &gs.BOS}, {&spec.EOS, &gs.EOS}, {&spec.EOT, &gs.EOT}, {&spec.PAD, &gs.PAD}, {&spec.UNK, &gs.UNK}} {
			if *p.src >= 0 {
				*p.dst = *p.src
			}
		}
	}
	gs.AddBOS = gs.AddBOS || spec.AddBOS
	gs.AddEOS = gs.AddEOS || spec.AddEOS

	t, err := base(&gs)
	if err != nil {
		return nil, err
	}
	t.ignoreMerges = m.IgnoreMerges
	t.fallback = m.ByteFallback

	var ops []textOp
	for _, n := range f.Normalizer.flatten() {
		op, err := hfNormalizer(n)
		if err != nil {
			return nil, err
		}
		if op != nil {
			ops = append(ops, op)
		}
	}
	var splits []splitter
	for _, p := range f.PreTokenizer.flatten() {
		op, sp, err := hfPreTokenizer(t, p)
		if err != nil {
			return nil, err
		}
		if op != nil {
			if len(splits) > 0 { // it would apply to each word
				return nil, unsupported("pre-tokenizer after a split", p.Type)
			}
			ops = append(ops, op)
		}
		if sp != nil {
			splits = append(splits, sp)
		}
	}
	if len(ops) > 0 {
		t.normalize = func(text string, first bool) string {
			for _, op := range ops {
				text = op(text, first)
			}
			return text
		}
	}
	if len(splits) > 0 {
		t.split = chain(splits...)
	}

	decoders := f.Decoder.flatten()
	for _, d := range decoders {
		if d.Type == "ByteLevel" {
			t.byteLevel = true
		}
	}
	if t.byteLevel {
		if err := t.setByteLevel(pairs); err != nil {
			return nil, err
		}
	} else {
		if err := t.setCharLevel(pairs, decoders); err != nil {
			return nil, err
		}
	}
	t.finish()
	for _, a := range f.AddedTokens {
		for k := range t.specials {
			if t.specials[k].id == int32(a.ID) {
				t.specials[k].lstrip, t.specials[k].rstrip = a.LStrip, a.RStrip
			}
		}
	}
	return t, nil
}

// setCharLevel makes t a character-level BPE tokenizer (SentencePiece
// converted to Hugging Face's format) and fills the decode table as the
// decoders say.
func (t *Tokenizer) setCharLevel(pairs [][2]string, decoders []hfStep) error {
	if t.fallback {
		for id, p := range t.pieces {
			if b, ok := parseByteToken(p); ok && t.types[id] == typeNormal {
				t.types[id] = typeByte
				t.byteID[b] = int32(id)
			}
		}
	}
	t.setCharVocab()
	text := make(map[string]int32, len(t.pieces))
	for id, p := range t.pieces {
		if t.mergeable(id) {
			if _, dup := text[p]; !dup {
				text[p] = int32(id)
			}
		}
	}
	if err := t.setMerges(pairs, text); err != nil {
		return err
	}
	if t.ignoreMerges {
		t.words = text
	}
	if t.split == nil && t.canSplitAtSpaces() {
		t.split = splitBeforeSpaceMark
	}
	var replace [][2]string
	for _, d := range decoders {
		switch d.Type {
		case "Replace":
			if d.Pattern.String == nil {
				return unsupported("Replace decoder pattern", d.Pattern.Regex)
			}
			replace = append(replace, [2]string{*d.Pattern.String, d.Content})
		case "Metaspace":
			replace = append(replace, [2]string{d.Replacement, " "})
			t.stripSpace = t.stripSpace || d.PrependScheme == "always" || d.PrependScheme == "first" ||
				(d.PrependScheme == "" && (d.AddPrefixSpace == nil || *d.AddPrefixSpace))
		case "Strip":
			t.stripSpace = t.stripSpace || (d.Content == " " && d.Start > 0)
		case "ByteFallback", "Fuse":
		default:
			return unsupported("decoder", d.Type)
		}
	}
	t.decoded = make([]string, len(t.pieces))
	for id, p := range t.pieces {
		switch t.types[id] {
		case typeNormal:
			for _, r := range replace {
				p = strings.ReplaceAll(p, r[0], r[1])
			}
			t.decoded[id] = p
		default:
			t.decoded[id] = spmDecode(p, t.types[id])
		}
	}
	return nil
}

// hfMerges reads the merge rules in either of their two spellings.
func hfMerges(raw json.RawMessage) ([][2]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var lines []string
	if err := json.Unmarshal(raw, &lines); err == nil {
		return mergePairs(lines), nil
	}
	var pairs [][2]string
	if err := json.Unmarshal(raw, &pairs); err != nil {
		return nil, fmt.Errorf("tokenizer: tokenizer.json merges: %v: %w", err, model.ErrFormat)
	}
	return pairs, nil
}

// hfTemplate returns the special tokens a TemplateProcessing post-processor
// puts before and after a single sequence.
func hfTemplate(p *hfStep) (bos, eos string) {
	for _, s := range p.flatten() {
		if s.Type != "TemplateProcessing" {
			continue
		}
		seen := false
		for _, piece := range s.Single {
			switch {
			case piece.Sequence != nil:
				seen = true
			case piece.SpecialToken != nil && !seen && bos == "":
				bos = piece.SpecialToken.ID
			case piece.SpecialToken != nil && seen && eos == "":
				eos = piece.SpecialToken.ID
			}
		}
	}
	return bos, eos
}

// hfNormalizer returns the text operation of a normalizer.
func hfNormalizer(n hfStep) (textOp, error) {
	switch n.Type {
	case "Prepend":
		p := n.Prepend
		return func(text string, _ bool) string { return p + text }, nil
	case "Replace":
		return replaceOp(n.Pattern, n.Content)
	case "Lowercase":
		return func(text string, _ bool) string { return strings.ToLower(text) }, nil
	case "NFC":
		// Text is taken to be in NFC already, as llama.cpp does for the
		// same models (Qwen2).
		return nil, nil
	}
	return nil, unsupported("normalizer", n.Type)
}

// replaceOp replaces every match of a String or Regex pattern by content.
func replaceOp(p hfPattern, content string) (textOp, error) {
	if p.String != nil {
		old := *p.String
		if old == "" {
			return nil, fmt.Errorf("tokenizer: tokenizer.json Replace with an empty pattern: %w", model.ErrFormat)
		}
		return func(text string, _ bool) string { return strings.ReplaceAll(text, old, content) }, nil
	}
	if p.Regex == nil {
		return nil, fmt.Errorf("tokenizer: tokenizer.json Replace without a pattern: %w", model.ErrFormat)
	}
	re, err := regexp2.Compile(*p.Regex, regexp2.None)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: tokenizer.json Replace pattern %q: %v: %w", *p.Regex, err, model.ErrFormat)
	}
	return func(text string, _ bool) string {
		out, err := re.ReplaceFunc(text, func(regexp2.Match) string { return content }, -1, -1)
		if err != nil {
			return text
		}
		return out
	}, nil
}

// hfPreTokenizer returns what a pre-tokenizer does: a text operation, a
// splitter, or both.
func hfPreTokenizer(t *Tokenizer, p hfStep) (textOp, splitter, error) {
	switch p.Type {
	case "ByteLevel":
		t.byteLevel = true
		var op textOp
		if p.AddPrefixSpace != nil && *p.AddPrefixSpace {
			op = func(text string, _ bool) string {
				if strings.HasPrefix(text, " ") {
					return text
				}
				return " " + text
			}
		}
		if p.UseRegex == nil || *p.UseRegex {
			return op, splitGPT2, nil
		}
		return op, nil, nil
	case "Split":
		if p.Invert || p.Behavior != "Isolated" {
			return nil, nil, unsupported("Split behaviour", p.Behavior)
		}
		pattern := ""
		switch {
		case p.Pattern.Regex != nil:
			pattern = *p.Pattern.Regex
		case p.Pattern.String != nil && *p.Pattern.String != "":
			pattern = regexp2.Escape(*p.Pattern.String)
		default:
			return nil, nil, fmt.Errorf("tokenizer: tokenizer.json Split without a pattern: %w", model.ErrFormat)
		}
		sp, err := patternSplitter(pattern)
		return nil, sp, err
	case "Digits":
		return nil, splitDigits(p.IndividualDigits), nil
	case "Metaspace":
		mark := p.Replacement
		if mark == "" {
			mark = spaceMark
		}
		scheme := p.PrependScheme
		if scheme == "" {
			scheme = "never"
			if p.AddPrefixSpace == nil || *p.AddPrefixSpace {
				scheme = "always"
			}
		}
		op := func(text string, first bool) string {
			text = strings.ReplaceAll(text, " ", mark)
			if (scheme == "always" || scheme == "first" && first) && !strings.HasPrefix(text, mark) {
				text = mark + text
			}
			return text
		}
		var sp splitter
		if p.Split == nil || *p.Split {
			sp = splitBefore(mark)
		}
		return op, sp, nil
	}
	return nil, nil, unsupported("pre-tokenizer", p.Type)
}

// splitBefore cuts text before every occurrence of mark.
func splitBefore(mark string) splitter {
	return func(dst []span, text string) []span {
		start := 0
		for start+1 < len(text) {
			i := strings.Index(text[start+1:], mark)
			if i < 0 {
				break
			}
			dst = append(dst, span{start, start + 1 + i})
			start += 1 + i
		}
		return append(dst, span{start, len(text)})
	}
}
