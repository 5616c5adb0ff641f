package tokenizer

import (
	"encoding/json"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loomllm/loom/internal/testdata"
	"github.com/loomllm/loom/model"
)

// No real tokenizer.json files are available, so these tests write them
// from the GGUF vocabularies the way Hugging Face's converters lay them out
// and require the same ids as llama.cpp's vectors.

func hfJSON(t testing.TB, v map[string]any) *model.TokenizerSpec {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return &model.TokenizerSpec{HFJSON: b, BOS: -1, EOS: -1, EOT: -1, PAD: -1, UNK: -1}
}

func vocabMap(spec *model.TokenizerSpec) map[string]int {
	m := make(map[string]int, len(spec.Tokens))
	for id, p := range spec.Tokens {
		m[p] = id
	}
	return m
}

// gpt2JSON is GPT-2's tokenizer.json with the given pre-tokenizer.
func gpt2JSON(t testing.TB, pre map[string]any, ignoreMerges bool) map[string]any {
	spec := loadSpec(t, testdata.Path(t, "tokenizers/ggml-vocab-gpt-2.gguf"))
	merges := make([][2]string, len(spec.Merges))
	for i, m := range spec.Merges {
		l, r, _ := strings.Cut(m, " ")
		merges[i] = [2]string{l, r} // the newer spelling
	}
	return map[string]any{
		"version":        "1.0",
		"added_tokens":   []map[string]any{{"id": 50256, "content": "<|endoftext|>", "special": true}},
		"normalizer":     nil,
		"pre_tokenizer":  pre,
		"post_processor": map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
		"decoder":        map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
		"model": map[string]any{"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": "", "end_of_word_suffix": "",
			"fuse_unk": false, "byte_fallback": false, "ignore_merges": ignoreMerges, "vocab": vocabMap(spec), "merges": merges},
	}
}

// llama2JSON is Llama 2's tokenizer.json: normalizers Prepend and Replace,
// byte fallback, merges derived from the SentencePiece scores.
func llama2JSON(t testing.TB, metaspace bool) map[string]any {
	spec := loadSpec(t, testdata.Path(t, "tokenizers/ggml-vocab-llama-spm.gguf"))
	vocab := vocabMap(spec)
	// Merges: every cut of a normal token into two tokens, best score of the
	// token formed first, as the converter writes them.
	order := make([]int, len(spec.Tokens))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(i, j int) bool { return spec.Scores[order[i]] > spec.Scores[order[j]] })
	var merges []string
	for _, id := range order {
		p := spec.Tokens[id]
		if spec.Types[id] != typeNormal {
			continue
		}
		for k := 1; k < len(p); k++ {
			if !utf8RuneStart(p[k]) {
				continue
			}
			l, r := p[:k], p[k:]
			if lid, ok := vocab[l]; ok && spec.Types[lid] == typeNormal {
				if rid, ok := vocab[r]; ok && spec.Types[rid] == typeNormal {
					merges = append(merges, l+" "+r)
				}
			}
		}
	}
	f := map[string]any{
		"version": "1.0",
		"added_tokens": []map[string]any{
			{"id": 0, "content": "<unk>", "special": true}, {"id": 1, "content": "<s>", "special": true}, {"id": 2, "content": "</s>", "special": true},
		},
		"normalizer": map[string]any{"type": "Sequence", "normalizers": []any{
			map[string]any{"type": "Prepend", "prepend": "▁"},
			map[string]any{"type": "Replace", "pattern": map[string]any{"String": " "}, "content": "▁"},
		}},
		"pre_tokenizer": nil,
		"post_processor": map[string]any{"type": "TemplateProcessing",
			"single": []any{map[string]any{"SpecialToken": map[string]any{"id": "<s>", "type_id": 0}}, map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}}},
		"decoder": map[string]any{"type": "Sequence", "decoders": []any{
			map[string]any{"type": "Replace", "pattern": map[string]any{"String": "▁"}, "content": " "},
			map[string]any{"type": "ByteFallback"}, map[string]any{"type": "Fuse"},
			map[string]any{"type": "Strip", "content": " ", "start": 1, "stop": 0},
		}},
		"model": map[string]any{"type": "BPE", "unk_token": "<unk>", "fuse_unk": true, "byte_fallback": true, "vocab": vocab, "merges": merges},
	}
	if metaspace { // the newer layout of the same tokenizer
		f["normalizer"] = nil
		f["pre_tokenizer"] = map[string]any{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": false}
		f["decoder"] = map[string]any{"type": "Sequence", "decoders": []any{
			map[string]any{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": false},
			map[string]any{"type": "ByteFallback"}, map[string]any{"type": "Fuse"},
		}}
	}
	return f
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

// requireVectors checks tok against llama.cpp's vectors for vocab, leaving
// out the cases skip names.
func requireVectors(t *testing.T, tok *Tokenizer, vocab string, skip func(string) bool) {
	t.Helper()
	for i, c := range readVectors(t, testdata.Path(t, "tokenizers/"+vocab)) {
		if skip != nil && skip(c.text) {
			continue
		}
		got := tok.Encode(c.text, EncodeOptions{})
		if len(got) == 0 {
			got = nil
		}
		require.Equal(t, c.ids, got, "case %d %q", i, c.text)
		require.Equal(t, c.text, tok.Decode(got), "case %d round trip", i)
	}
}

func TestHFByteLevel(t *testing.T) {
	for name, pre := range map[string]map[string]any{
		"ByteLevel": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
		"Split+ByteLevel": {"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]any{"Regex": patternGPT2}, "behavior": "Isolated", "invert": false},
			map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false},
		}},
		// An expression no scanner knows runs on regexp2.
		"regexp2": {"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]any{"Regex": "(?:" + patternGPT2 + ")"}, "behavior": "Isolated", "invert": false},
			map[string]any{"type": "ByteLevel", "add_prefix_space": false, "use_regex": false},
		}},
	} {
		t.Run(name, func(t *testing.T) {
			tok, err := New(hfJSON(t, gpt2JSON(t, pre, false)))
			require.NoError(t, err)
			require.Equal(t, 50257, tok.VocabSize())
			require.Equal(t, int32(50256), tok.EOS())
			require.True(t, tok.IsEndOfGeneration(50256))
			requireVectors(t, tok, "ggml-vocab-gpt-2.gguf", nil)
			require.Equal(t, []int32{64, 50256}, tok.Encode("a<|endoftext|>", EncodeOptions{ParseSpecial: true}))
		})
	}
}

func TestHFIgnoreMerges(t *testing.T) {
	pre := map[string]any{"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}
	f := gpt2JSON(t, pre, true)
	m := f["model"].(map[string]any)
	m["vocab"].(map[string]int)["Ġzzzzzz"] = 50257 // reachable only as a whole word
	tok, err := New(hfJSON(t, f))
	require.NoError(t, err)
	require.Equal(t, []int32{50257}, tok.Encode(" zzzzzz", EncodeOptions{}))
	m["ignore_merges"] = false
	tok, err = New(hfJSON(t, f))
	require.NoError(t, err)
	require.NotEqual(t, []int32{50257}, tok.Encode(" zzzzzz", EncodeOptions{}))
}

func TestHFLlama2(t *testing.T) {
	for _, metaspace := range []bool{false, true} {
		tok, err := New(hfJSON(t, llama2JSON(t, metaspace)))
		require.NoError(t, err)
		require.Equal(t, int32(1), tok.BOS())
		require.Equal(t, int32(2), tok.EOS())
		require.Equal(t, []int32{1, 15043, 3186}, tok.Encode("Hello world", EncodeOptions{AddSpecial: true}))
		// Metaspace does not add "▁" to text that starts with a space (the
		// non-legacy Hugging Face behaviour), so those cases differ.
		skip := func(s string) bool { return metaspace && strings.HasPrefix(s, " ") }
		requireVectors(t, tok, "ggml-vocab-llama-spm.gguf", skip)
		if metaspace {
			require.Equal(t, []int32{15043}, tok.Encode(" Hello", EncodeOptions{}))
		}
	}
}

func TestHFAddedTokens(t *testing.T) {
	f := llama2JSON(t, false)
	f["added_tokens"] = append(f["added_tokens"].([]map[string]any),
		map[string]any{"id": 32000, "content": "<|user|>", "special": true, "rstrip": true},
		map[string]any{"id": 32001, "content": "[TOOL]", "special": false, "lstrip": true})
	tok, err := New(hfJSON(t, f))
	require.NoError(t, err)
	require.Equal(t, 32002, tok.VocabSize())
	ids := tok.Encode("<|user|>  hi [TOOL]", EncodeOptions{ParseSpecial: true})
	require.Equal(t, int32(32000), ids[0])
	require.Equal(t, int32(32001), ids[len(ids)-1], "user-defined tokens always match")
	require.Equal(t, tok.Encode("hi", EncodeOptions{}), ids[1:len(ids)-1], "rstrip and lstrip swallow the spaces")
	plain := tok.Encode("<|user|> [TOOL]", EncodeOptions{})
	require.NotContains(t, plain, int32(32000))
	require.Contains(t, plain, int32(32001))
}

func TestHFErrors(t *testing.T) {
	spec := &model.TokenizerSpec{HFJSON: []byte("{")}
	_, err := New(spec)
	require.ErrorIs(t, err, model.ErrFormat)
	for _, bad := range []string{
		`{"model": {"type": "WordPiece", "vocab": {"a": 0}}}`,
		`{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [], "continuing_subword_prefix": "##"}}`,
		`{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "normalizer": {"type": "NFKC"}}`,
		`{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "Whitespace"}}`,
	} {
		_, err := New(&model.TokenizerSpec{HFJSON: []byte(bad)})
		require.ErrorIs(t, err, model.ErrUnsupported, bad)
	}
	for _, bad := range []string{
		`{"model": {"type": "BPE", "vocab": {"a": 0, "b": 0}, "merges": []}}`,
		`{"model": {"type": "BPE", "vocab": {"a": 99999999}, "merges": []}}`,
		`{"model": {"type": "BPE", "vocab": {"a": 5000}, "merges": []}}`,
		`{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": 7}}`,
		`{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a"]}}`,
		`{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "("}, "behavior": "Isolated"}}`,
	} {
		_, err := New(&model.TokenizerSpec{HFJSON: []byte(bad)})
		require.ErrorIs(t, err, model.ErrFormat, bad)
	}
}

// TestGGUFPreMatchesHF: a GGUF byte-level vocabulary with a Llama 3 or
// Qwen2 pre-tokenizer name (hand-written scanner, ignore_merges for Llama 3)
// encodes like the same vocabulary in tokenizer.json form with the original
// expression run by regexp2.
func TestGGUFPreMatchesHF(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	var texts []string
	for _, c := range readVectors(t, testdata.Path(t, "tokenizers/ggml-vocab-gpt-2.gguf")) {
		texts = append(texts, c.text)
	}
	for range 200 {
		texts = append(texts, randomText(r, r.IntN(100)))
	}
	for _, c := range []struct {
		pre, pattern string
		ignoreMerges bool
	}{{"llama-bpe", patternLlama3, true}, {"qwen2", patternQwen2, false}} {
		spec := loadSpec(t, testdata.Path(t, "tokenizers/ggml-vocab-gpt-2.gguf"))
		spec.Pre = c.pre
		gg, err := New(spec)
		require.NoError(t, err)
		pre := map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]any{"Regex": "(?:" + c.pattern + ")"}, "behavior": "Isolated", "invert": false},
			map[string]any{"type": "ByteLevel", "add_prefix_space": false, "use_regex": false},
		}}
		hf, err := New(hfJSON(t, gpt2JSON(t, pre, c.ignoreMerges)))
		require.NoError(t, err)
		for _, s := range texts {
			ids := gg.Encode(s, EncodeOptions{})
			require.Equal(t, hf.Encode(s, EncodeOptions{}), ids, "%s: %q", c.pre, s)
			require.Equal(t, s, gg.Decode(ids))
		}
	}
}

// TestHFSmallPipeline runs the less common components on a hand-made
// vocabulary: Lowercase, a Regex Replace, Digits, Metaspace with split.
func TestHFSmallPipeline(t *testing.T) {
	vocab := map[string]int{"<unk>": 0, "▁": 1, "a": 2, "b": 3, "1": 4, "2": 5, "▁a": 6, "▁ab": 7, "ab": 8}
	f := map[string]any{
		"normalizer": map[string]any{"type": "Sequence", "normalizers": []any{
			map[string]any{"type": "Lowercase"},
			map[string]any{"type": "Replace", "pattern": map[string]any{"Regex": "x+"}, "content": "b"},
		}},
		"pre_tokenizer": map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true},
			map[string]any{"type": "Digits", "individual_digits": true},
		}},
		"decoder": map[string]any{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always"},
		"model":   map[string]any{"type": "BPE", "unk_token": "<unk>", "vocab": vocab, "merges": []string{"▁ a", "a b", "▁a b"}},
	}
	tok, err := New(hfJSON(t, f))
	require.NoError(t, err)
	// "AXX a12" -> "▁ab▁a12" -> words "▁ab", "▁a", "1", "2".
	require.Equal(t, []int32{7, 6, 4, 5}, tok.Encode("AXX a12", EncodeOptions{}))
	require.Equal(t, "ab a12", tok.Decode([]int32{7, 6, 4, 5}))
	require.Equal(t, []int32{6, 0}, tok.Encode("ac", EncodeOptions{}), "no byte fallback: unknown")
	require.Equal(t, int32(-1), tok.BOS())
}
