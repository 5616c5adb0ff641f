package gguf

import (
	"errors"
	"fmt"
	"math"

	"github.com/loomllm/loom/model"
)

// Load opens the GGUF file at path and returns its model description.
// Tensor data stays memory-mapped until the Model is closed. A file
// without tensors (a vocabulary file) loads as a description with a
// tokenizer and no weights.
func Load(path string) (*model.Model, error) {
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	m, err := f.Model()
	if err != nil {
		f.Close()
		return nil, err
	}
	return m, nil
}

// Model builds the format-independent description of f: hyperparameters,
// tensors (sharing f's memory) and tokenizer. Closing the Model closes f.
func (f *File) Model() (*model.Model, error) {
	m := &model.Model{Path: f.Path, Tensors: make(map[string]*model.Tensor, len(f.Tensors)), Meta: map[string]any{}}
	var err error
	if m.Config, err = f.config(); err != nil {
		return nil, err
	}
	if m.Tokenizer, err = f.tokenizer(); err != nil {
		return nil, err
	}
	for i := range f.Tensors {
		t := &f.Tensors[i]
		dt, ok := t.Type.DType()
		if !ok {
			return nil, fmt.Errorf("%s: offset %d: tensor %q has type %v: %w", f.Path, t.InfoOffset, t.Name, t.Type, model.ErrUnsupported)
		}
		m.Tensors[t.Name] = &model.Tensor{Name: t.Name, DType: dt, Rows: t.Rows(), Cols: t.Cols(), Data: f.Data(t)}
	}
	for _, kv := range f.KV {
		switch kv.Key {
		case "tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type", "tokenizer.ggml.merges":
		default:
			m.Meta[kv.Key] = kv.Value
		}
	}
	if len(m.Tensors) > 0 {
		if e, ok := m.Tensors["token_embd.weight"]; ok {
			m.Config.VocabSize = e.Rows
		}
		_, hasOutput := m.Tensors["output.weight"]
		m.Config.TiedEmbeddings = !hasOutput
		if err := Check(m); err != nil {
			return nil, err
		}
		if n := len(m.Tokenizer.Tokens); n > m.Config.VocabSize {
			return nil, fmt.Errorf("%s: %d tokens but an embedding of %d rows: %w", f.Path, n, m.Config.VocabSize, model.ErrFormat)
		}
	}
	m.SetCloser(f.Close)
	return m, nil
}

// floatOr returns key's number, or def when the key is absent.
func (f *File) floatOr(key string, def float64) (float64, error) {
	v, err := f.Float(key)
	if errors.Is(err, ErrKeyMissing) {
		return def, nil
	}
	return v, err
}

// stringOr returns key's string, or def when the key is absent.
func (f *File) stringOr(key, def string) (string, error) {
	v, err := f.String(key)
	if errors.Is(err, ErrKeyMissing) {
		return def, nil
	}
	return v, err
}

// boolOr returns key's bool, or def when the key is absent.
func (f *File) boolOr(key string, def bool) (bool, error) {
	v, err := f.Bool(key)
	if errors.Is(err, ErrKeyMissing) {
		return def, nil
	}
	return v, err
}

// intKey reads an integer key that must fit an int32 and not be negative;
// an absent key gives def unless required.
func (f *File) intKey(key string, def int, required bool) (int, error) {
	v, err := f.Int(key)
	if err != nil {
		if !required && errors.Is(err, ErrKeyMissing) {
			return def, nil
		}
		return 0, err
	}
	if v < 0 || v > math.MaxInt32 {
		kv, _ := f.Lookup(key)
		return 0, fmt.Errorf("%s: offset %d: key %q = %d is out of range: %w", f.Path, kv.Offset, key, v, model.ErrFormat)
	}
	return int(v), nil
}

// poolingTypes names llama.cpp's pooling types ({arch}.pooling_type).
var poolingTypes = map[int]string{0: "", 1: "mean", 2: "cls", 3: "last", 4: "rank"}

// config reads the hyperparameters under the architecture's key prefix.
// Keys needed to run the model are required only when the file has tensors.
func (f *File) config() (model.Config, error) {
	var c model.Config
	arch, err := f.String("general.architecture")
	if err != nil {
		return c, err
	}
	if c.Name, err = f.stringOr("general.name", ""); err != nil {
		return c, err
	}
	need := len(f.Tensors) > 0
	c.Arch = arch
	switch arch {
	case "llama", "mistral":
		c.Arch = model.ArchLlama
	case "qwen2":
		// llama.cpp runs qwen2 with the NeoX RoPE layout: its converter
		// leaves Q/K rows as Hugging Face stores them.
		c.Arch, c.RopeNeoX = model.ArchLlama, true
	case "qwen3":
		// Qwen2's layout plus a per-head RMSNorm of Q and K.
		c.Arch, c.RopeNeoX, c.QKNorm = model.ArchLlama, true, true
	case "phi3":
		// Llama with Q/K/V and gate/up each in one tensor, NeoX RoPE.
		c.Arch, c.RopeNeoX, c.FusedWeights = model.ArchLlama, true, true
	case "gpt2":
	default:
		if need {
			return c, fmt.Errorf("%s: general.architecture %q: %w", f.Path, arch, model.ErrUnsupported)
		}
	}
	p := arch + "."
	ints := []struct {
		dst      *int
		key      string
		required bool
	}{
		{&c.Context, "context_length", need},
		{&c.Dim, "embedding_length", need},
		{&c.Hidden, "feed_forward_length", need},
		{&c.Layers, "block_count", need},
		{&c.Heads, "attention.head_count", need},
		{&c.VocabSize, "vocab_size", false},
	}
	for _, k := range ints {
		if *k.dst, err = f.intKey(p+k.key, 0, k.required); err != nil {
			return c, err
		}
	}
	if c.KVHeads, err = f.intKey(p+"attention.head_count_kv", c.Heads, false); err != nil {
		return c, err
	}
	if c.SlidingWindow, err = f.intKey(p+"attention.sliding_window", 0, false); err != nil {
		return c, err
	}
	pooling, err := f.intKey(p+"pooling_type", 0, false)
	if err != nil {
		return c, err
	}
	c.Pooling = poolingTypes[pooling] // llama.cpp's enum llama_pooling_type
	if c.Pooling == "" && pooling != 0 {
		c.Pooling = fmt.Sprintf("type %d", pooling)
	}
	if experts, err := f.intKey(p+"expert_count", 0, false); err != nil {
		return c, err
	} else if experts > 0 && need {
		return c, fmt.Errorf("%s: %sexpert_count = %d: a mixture of experts (Mixtral-style): %w", f.Path, p, experts, model.ErrUnsupported)
	}
	headDim := 0
	if c.Heads > 0 {
		headDim = c.Dim / c.Heads
	}
	if c.HeadDim, err = f.intKey(p+"attention.key_length", headDim, false); err != nil {
		return c, err
	}
	epsKey := p + "attention.layer_norm_rms_epsilon"
	if c.Arch == model.ArchGPT2 {
		epsKey = p + "attention.layer_norm_epsilon"
	}
	eps, err := f.floatOr(epsKey, 1e-5)
	if err != nil {
		return c, err
	}
	c.NormEps = float32(eps)
	if c.Arch == model.ArchGPT2 {
		return c, nil
	}
	if c.RopeTheta, err = f.floatOr(p+"rope.freq_base", 10000); err != nil {
		return c, err
	}
	if c.RopeDims, err = f.intKey(p+"rope.dimension_count", c.HeadDim, false); err != nil {
		return c, err
	}
	c.RopeScaling, err = f.ropeScaling(p)
	return c, err
}

// ropeScaling reads rope.scaling.* (and the older rope.scale_linear).
// Llama 3.1 GGUF files carry their scaling as the rope_freqs.weight tensor
// instead, which the model code applies.
func (f *File) ropeScaling(p string) (model.RopeScaling, error) {
	var r model.RopeScaling
	typ, err := f.stringOr(p+"rope.scaling.type", "")
	if err != nil {
		return r, err
	}
	if typ == "" {
		lin, err := f.floatOr(p+"rope.scale_linear", 0)
		if err != nil || lin == 0 || lin == 1 {
			return r, err
		}
		return model.RopeScaling{Type: "linear", Factor: lin}, nil
	}
	switch typ {
	case "none":
		return r, nil
	case "linear":
		r.Type = typ
		if r.Factor, err = f.floatOr(p+"rope.scaling.factor", 1); err != nil {
			return r, err
		}
		if !(r.Factor > 0) {
			return r, fmt.Errorf("%s: key %q = %v: %w", f.Path, p+"rope.scaling.factor", r.Factor, model.ErrFormat)
		}
		r.OriginalContext, err = f.intKey(p+"rope.scaling.original_context_length", 0, false)
		return r, err
	}
	kv, _ := f.Lookup(p + "rope.scaling.type")
	return r, fmt.Errorf("%s: offset %d: rope scaling %q: %w", f.Path, kv.Offset, typ, model.ErrUnsupported)
}

// tokenizer reads the tokenizer.* keys. Absent special ids and flags take
// llama.cpp's defaults for the tokenizer model; an id outside the
// vocabulary (some converters write 0xFFFFFFFF for "none") is treated as
// absent.
func (f *File) tokenizer() (model.TokenizerSpec, error) {
	t := model.TokenizerSpec{BOS: -1, EOS: -1, EOT: -1, PAD: -1, UNK: -1}
	var err error
	if t.Model, err = f.stringOr("tokenizer.ggml.model", ""); err != nil {
		return t, err
	}
	switch t.Model {
	case "", "none", "no_vocab":
		t.Model = ""
		return t, nil
	case "llama":
		t.BOS, t.EOS, t.UNK = 1, 2, 0
		t.AddBOS, t.AddSpacePrefix = true, true
	case "gpt2":
		t.BOS, t.EOS = 11, 11
	default:
		kv, _ := f.Lookup("tokenizer.ggml.model")
		return t, fmt.Errorf("%s: offset %d: tokenizer model %q: %w", f.Path, kv.Offset, t.Model, model.ErrUnsupported)
	}
	if t.Pre, err = f.stringOr("tokenizer.ggml.pre", "default"); err != nil {
		return t, err
	}
	if t.Model == "gpt2" && (t.Pre == "llama-bpe" || t.Pre == "llama3") {
		t.AddBOS = true
	}
	if t.Tokens, err = f.Strings("tokenizer.ggml.tokens"); err != nil {
		return t, err
	}
	n := len(t.Tokens)
	if t.Scores, err = f.Float32s("tokenizer.ggml.scores"); err != nil && !errors.Is(err, ErrKeyMissing) {
		return t, err
	}
	if t.Types, err = f.Int32s("tokenizer.ggml.token_type"); err != nil && !errors.Is(err, ErrKeyMissing) {
		return t, err
	}
	if t.Merges, err = f.Strings("tokenizer.ggml.merges"); err != nil && !errors.Is(err, ErrKeyMissing) {
		return t, err
	}
	if t.Model == "gpt2" && t.Merges == nil {
		return t, fmt.Errorf("%s: %w %q (a gpt2 tokenizer needs merges)", f.Path, ErrKeyMissing, "tokenizer.ggml.merges")
	}
	for _, a := range []struct {
		key string
		n   int
	}{{"tokenizer.ggml.scores", len(t.Scores)}, {"tokenizer.ggml.token_type", len(t.Types)}} {
		if a.n != 0 && a.n != n {
			kv, _ := f.Lookup(a.key)
			return t, fmt.Errorf("%s: offset %d: key %q has %d entries for %d tokens: %w", f.Path, kv.Offset, a.key, a.n, n, model.ErrFormat)
		}
	}
	ids := []struct {
		dst *int
		key string
	}{
		{&t.BOS, "bos_token_id"}, {&t.EOS, "eos_token_id"}, {&t.EOT, "eot_token_id"},
		{&t.PAD, "padding_token_id"}, {&t.UNK, "unknown_token_id"},
	}
	for _, id := range ids {
		v, err := f.Int("tokenizer.ggml." + id.key)
		if errors.Is(err, ErrKeyMissing) {
			continue
		}
		if err != nil {
			return t, err
		}
		if v >= 0 && v < int64(n) {
			*id.dst = int(v)
		}
	}
	for _, id := range []*int{&t.BOS, &t.EOS, &t.UNK} {
		if *id >= n {
			*id = -1
		}
	}
	if t.EOT < 0 {
		t.EOT = FindEOT(t.Tokens)
	}
	if t.AddBOS, err = f.boolOr("tokenizer.ggml.add_bos_token", t.AddBOS); err != nil {
		return t, err
	}
	if t.AddEOS, err = f.boolOr("tokenizer.ggml.add_eos_token", false); err != nil {
		return t, err
	}
	if t.AddSpacePrefix, err = f.boolOr("tokenizer.ggml.add_space_prefix", t.AddSpacePrefix); err != nil {
		return t, err
	}
	t.ChatTemplate, err = f.stringOr("tokenizer.chat_template", "")
	return t, err
}

// eotTexts are the end-of-turn tokens llama.cpp recognises by their text
// when a file names no tokenizer.ggml.eot_token_id, most specific first.
var eotTexts = []string{"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<EOT>", "<|end_of_text|>", "<|endoftext|>"}

// FindEOT returns the id of the token whose text comes first in
// llama.cpp's list of end-of-turn texts ("<|eot_id|>", "<|im_end|>",
// "<|end|>", ...), or -1. Loaders use it when a file names no EOT token.
func FindEOT(tokens []string) int {
	rank, id := len(eotTexts), -1
	for i, s := range tokens {
		for r, e := range eotTexts[:rank] {
			if s == e {
				rank, id = r, i
				break
			}
		}
	}
	return id
}
