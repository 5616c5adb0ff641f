package hf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/loomllm/loom/model"
	"github.com/loomllm/loom/model/gguf"
)

// tokenizerJSON is the part of tokenizer.json decoded here.
type tokenizerJSON struct {
	AddedTokens []struct {
		ID      int    `json:"id"`
		Content string `json:"content"`
		Special bool   `json:"special"`
	} `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Model         struct {
		Type         string            `json:"type"`
		Vocab        map[string]int    `json:"vocab"`
		Merges       []json.RawMessage `json:"merges"` // "a b" or ["a", "b"]
		ByteFallback bool              `json:"byte_fallback"`
		UnkToken     *string           `json:"unk_token"`
	} `json:"model"`
}

// tokenText is a special token in tokenizer_config.json: a string or an
// object with "content".
type tokenText string

func (t *tokenText) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		*t = tokenText(s)
		return nil
	}
	var o struct {
		Content string `json:"content"`
	}
	if err := json.Unmarshal(b, &o); err != nil {
		return err
	}
	*t = tokenText(o.Content)
	return nil
}

// chatTemplate is a template string, or a list of named templates of which
// "default" is used.
type chatTemplate string

func (c *chatTemplate) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		*c = chatTemplate(s)
		return nil
	}
	var list []struct{ Name, Template string }
	if err := json.Unmarshal(b, &list); err != nil {
		return err
	}
	for _, t := range list {
		if t.Name == "default" || *c == "" {
			*c = chatTemplate(t.Template)
		}
	}
	return nil
}

// ids decodes a token id field: a number, a list of numbers, or null.
func ids(raw json.RawMessage) ([]int, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one int
	if json.Unmarshal(raw, &one) == nil {
		return []int{one}, nil
	}
	var many []int
	err := json.Unmarshal(raw, &many)
	return many, err
}

// maxHoles bounds how far token ids may exceed the number of tokens
// defined (ids are used to size the vocabulary).
const maxHoles = 1 << 16

// loadTokenizer reads tokenizer.json, tokenizer_config.json and
// generation_config.json (each optional) into a TokenizerSpec.
func loadTokenizer(dir string, cfg *config) (model.TokenizerSpec, error) {
	t := model.TokenizerSpec{BOS: -1, EOS: -1, EOT: -1, PAD: -1, UNK: -1}
	path := filepath.Join(dir, TokenizerFile)
	raw, err := readFile(path)
	if err != nil || raw == nil {
		return t, err
	}
	t.HFJSON = raw
	var tj tokenizerJSON
	if err := json.Unmarshal(raw, &tj); err != nil {
		return t, fmt.Errorf("%s: %v: %w", path, err, model.ErrFormat)
	}
	if err := decodeVocab(path, &tj, &t); err != nil {
		return t, err
	}
	byText := make(map[string]int, len(t.Tokens))
	for i, s := range t.Tokens {
		if _, dup := byText[s]; !dup {
			byText[s] = i
		}
	}
	valid := func(id int) int {
		if id < 0 || id >= len(t.Tokens) {
			return -1
		}
		return id
	}

	var tc struct {
		AddBOS       *bool        `json:"add_bos_token"`
		AddEOS       *bool        `json:"add_eos_token"`
		BOS          tokenText    `json:"bos_token"`
		EOS          tokenText    `json:"eos_token"`
		PAD          tokenText    `json:"pad_token"`
		ChatTemplate chatTemplate `json:"chat_template"`
	}
	if _, err := readJSON(filepath.Join(dir, TokenizerConfigFile), &tc); err != nil {
		return t, err
	}
	var gc struct {
		BOS json.RawMessage `json:"bos_token_id"`
		EOS json.RawMessage `json:"eos_token_id"`
		PAD json.RawMessage `json:"pad_token_id"`
	}
	gcPath := filepath.Join(dir, GenerationConfigFile)
	if _, err := readJSON(gcPath, &gc); err != nil {
		return t, err
	}
	// Special ids: generation_config.json, then config.json, then the
	// texts in tokenizer_config.json.
	pick := func(path string, text tokenText, fields ...json.RawMessage) ([]int, error) {
		for _, f := range fields {
			v, err := ids(f)
			if err != nil {
				return nil, fmt.Errorf("%s: token id %s: %w", path, f, model.ErrFormat)
			}
			if len(v) > 0 {
				return v, nil
			}
		}
		if id, ok := byText[string(text)]; ok && text != "" {
			return []int{id}, nil
		}
		return nil, nil
	}
	bos, err := pick(gcPath, tc.BOS, gc.BOS, cfg.BOSTokenID)
	if err != nil {
		return t, err
	}
	eos, err := pick(gcPath, tc.EOS, gc.EOS, cfg.EOSTokenID)
	if err != nil {
		return t, err
	}
	pad, err := pick(gcPath, tc.PAD, gc.PAD)
	if err != nil {
		return t, err
	}
	if len(bos) > 0 {
		t.BOS = valid(bos[0])
	}
	if len(eos) > 0 {
		t.EOS = valid(eos[0])
	}
	if len(pad) > 0 {
		t.PAD = valid(pad[0])
	}
	// A list of EOS ids names the end-of-turn token among them (Llama 3
	// instruct: <|end_of_text|>, <|eom_id|>, <|eot_id|>).
	var among []string
	for _, id := range eos {
		if valid(id) >= 0 {
			among = append(among, t.Tokens[id])
		}
	}
	if i := gguf.FindEOT(among); i >= 0 {
		t.EOT = byText[among[i]]
	} else {
		t.EOT = gguf.FindEOT(t.Tokens)
	}
	// BOS is added when tokenizer_config.json says so, or else when the
	// post-processor's template inserts it.
	if tc.AddBOS != nil {
		t.AddBOS = *tc.AddBOS
	} else if t.BOS >= 0 {
		quoted, _ := json.Marshal(t.Tokens[t.BOS])
		t.AddBOS = bytes.Contains(tj.PostProcessor, quoted)
	}
	t.AddEOS = tc.AddEOS != nil && *tc.AddEOS
	t.ChatTemplate = string(tc.ChatTemplate)
	return t, nil
}

// decodeVocab fills Model, Pre, Tokens, Types, Merges and UNK from
// tokenizer.json.
func decodeVocab(path string, tj *tokenizerJSON, t *model.TokenizerSpec) error {
	if tj.Model.Type != "BPE" {
		// Unigram, WordPiece, ...: only the raw JSON is kept.
		return nil
	}
	// Ids size the vocabulary, so bound them by the number of tokens
	// defined before allocating.
	defined := len(tj.Model.Vocab) + len(tj.AddedTokens)
	limit := defined + maxHoles
	n := 0
	for s, id := range tj.Model.Vocab {
		if id < 0 || id >= limit {
			return fmt.Errorf("%s: token %q has id %d (%d tokens defined): %w", path, s, id, defined, model.ErrFormat)
		}
		n = max(n, id+1)
	}
	for _, a := range tj.AddedTokens {
		if a.ID < 0 || a.ID >= limit {
			return fmt.Errorf("%s: added token %q has id %d (%d tokens defined): %w", path, a.Content, a.ID, defined, model.ErrFormat)
		}
		n = max(n, a.ID+1)
	}
	t.Tokens = make([]string, n)
	t.Types = make([]int32, n)
	for i := range t.Types {
		t.Types[i] = 5 // unused, until defined
	}
	llama := tj.Model.ByteFallback || bytes.Contains(tj.PreTokenizer, []byte(`"Metaspace"`)) || bytes.Contains(tj.Normalizer, []byte(`"Prepend"`))
	for s, id := range tj.Model.Vocab {
		t.Tokens[id], t.Types[id] = s, 1
		if llama && len(s) == 6 && strings.HasPrefix(s, "<0x") && s[5] == '>' {
			t.Types[id] = 6
		}
	}
	for _, a := range tj.AddedTokens {
		t.Tokens[a.ID], t.Types[a.ID] = a.Content, 4
		if a.Special {
			t.Types[a.ID] = 3
		}
	}
	if u := tj.Model.UnkToken; u != nil {
		if id, ok := tj.Model.Vocab[*u]; ok {
			t.UNK, t.Types[id] = id, 2
		}
	}
	t.Merges = make([]string, 0, len(tj.Model.Merges))
	for i, m := range tj.Model.Merges {
		var s string
		if json.Unmarshal(m, &s) != nil {
			var pair []string
			if err := json.Unmarshal(m, &pair); err != nil || len(pair) != 2 {
				return fmt.Errorf("%s: merge %d is %s: %w", path, i, m, model.ErrFormat)
			}
			s = pair[0] + " " + pair[1]
		}
		t.Merges = append(t.Merges, s)
	}
	if llama {
		t.Model, t.Pre = "llama", "default"
		t.AddSpacePrefix = bytes.Contains(tj.Normalizer, []byte(`"Prepend"`)) ||
			(bytes.Contains(tj.PreTokenizer, []byte(`"Metaspace"`)) && !bytes.Contains(tj.PreTokenizer, []byte(`"never"`)))
		return nil
	}
	t.Model, t.Pre = "gpt2", guessPre(tj.PreTokenizer)
	return nil
}

// guessPre names the GGUF pre-tokenizer a byte-level BPE tokenizer.json
// describes, from its split pattern: Llama 3 splits digits in groups of up
// to three, Qwen2 one by one, GPT-2 has no split pattern.
func guessPre(pre json.RawMessage) string {
	switch {
	case bytes.Contains(pre, []byte(`\\p{N}{1,3}`)):
		return "llama-bpe"
	case bytes.Contains(pre, []byte(`\\p{N}`)):
		return "qwen2"
	}
	return "gpt-2"
}
