package gguf

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"sort"

	"github.com/loomllm/loom/model"
)

// valueType returns the GGUF type of a Go value (see KV), and for arrays
// the element type.
func valueType(v any) (t, elem ValueType, err error) {
	switch v.(type) {
	case uint8:
		return TypeUint8, 0, nil
	case int8:
		return TypeInt8, 0, nil
	case uint16:
		return TypeUint16, 0, nil
	case int16:
		return TypeInt16, 0, nil
	case uint32:
		return TypeUint32, 0, nil
	case int32:
		return TypeInt32, 0, nil
	case float32:
		return TypeFloat32, 0, nil
	case bool:
		return TypeBool, 0, nil
	case string:
		return TypeString, 0, nil
	case uint64:
		return TypeUint64, 0, nil
	case int64:
		return TypeInt64, 0, nil
	case float64:
		return TypeFloat64, 0, nil
	case []uint8:
		return TypeArray, TypeUint8, nil
	case []int8:
		return TypeArray, TypeInt8, nil
	case []uint16:
		return TypeArray, TypeUint16, nil
	case []int16:
		return TypeArray, TypeInt16, nil
	case []uint32:
		return TypeArray, TypeUint32, nil
	case []int32:
		return TypeArray, TypeInt32, nil
	case []float32:
		return TypeArray, TypeFloat32, nil
	case []bool:
		return TypeArray, TypeBool, nil
	case []string:
		return TypeArray, TypeString, nil
	case []uint64:
		return TypeArray, TypeUint64, nil
	case []int64:
		return TypeArray, TypeInt64, nil
	case []float64:
		return TypeArray, TypeFloat64, nil
	case []any:
		return TypeArray, TypeArray, nil
	}
	return 0, 0, fmt.Errorf("%w: cannot encode a %T", ErrValueType, v)
}

// encoder appends little-endian values to b.
type encoder struct{ b []byte }

func (e *encoder) u32(v uint32) { e.b = binary.LittleEndian.AppendUint32(e.b, v) }
func (e *encoder) u64(v uint64) { e.b = binary.LittleEndian.AppendUint64(e.b, v) }
func (e *encoder) str(s string) { e.u64(uint64(len(s))); e.b = append(e.b, s...) }

// value appends v without its type tag; depth bounds nesting like the reader.
func (e *encoder) value(v any, depth int) error {
	le := binary.LittleEndian
	switch x := v.(type) {
	case uint8:
		e.b = append(e.b, x)
	case int8:
		e.b = append(e.b, byte(x))
	case bool:
		e.b = append(e.b, b2u(x))
	case uint16:
		e.b = le.AppendUint16(e.b, x)
	case int16:
		e.b = le.AppendUint16(e.b, uint16(x))
	case uint32:
		e.u32(x)
	case int32:
		e.u32(uint32(x))
	case float32:
		e.u32(math.Float32bits(x))
	case uint64:
		e.u64(x)
	case int64:
		e.u64(uint64(x))
	case float64:
		e.u64(math.Float64bits(x))
	case string:
		e.str(x)
	default:
		return e.array(v, depth)
	}
	return nil
}

func b2u(b bool) byte {
	if b {
		return 1
	}
	return 0
}

func (e *encoder) array(v any, depth int) error {
	_, elem, err := valueType(v)
	if err != nil {
		return err
	}
	if depth >= maxDepth {
		return ErrNesting
	}
	e.u32(uint32(elem))
	switch x := v.(type) {
	case []any:
		e.u64(uint64(len(x)))
		for _, a := range x {
			if t, _, err := valueType(a); err != nil || t != TypeArray {
				return fmt.Errorf("%w: array of arrays holds a %T", ErrValueType, a)
			}
			if err := e.array(a, depth+1); err != nil {
				return err
			}
		}
		return nil
	case []string:
		e.u64(uint64(len(x)))
		for _, s := range x {
			e.str(s)
		}
		return nil
	}
	return appendFixed(e, v)
}

func appendFixed(e *encoder, v any) error {
	each := func(n int, at func(i int) any) error {
		e.u64(uint64(n))
		for i := 0; i < n; i++ {
			if err := e.value(at(i), 0); err != nil {
				return err
			}
		}
		return nil
	}
	switch x := v.(type) {
	case []uint8:
		e.u64(uint64(len(x)))
		e.b = append(e.b, x...)
		return nil
	case []int8:
		return each(len(x), func(i int) any { return x[i] })
	case []bool:
		return each(len(x), func(i int) any { return x[i] })
	case []uint16:
		return each(len(x), func(i int) any { return x[i] })
	case []int16:
		return each(len(x), func(i int) any { return x[i] })
	case []uint32:
		return each(len(x), func(i int) any { return x[i] })
	case []int32:
		return each(len(x), func(i int) any { return x[i] })
	case []float32:
		return each(len(x), func(i int) any { return x[i] })
	case []uint64:
		return each(len(x), func(i int) any { return x[i] })
	case []int64:
		return each(len(x), func(i int) any { return x[i] })
	case []float64:
		return each(len(x), func(i int) any { return x[i] })
	}
	return fmt.Errorf("%w: cannot encode a %T", ErrValueType, v)
}

// Header encodes a version 3 header for the metadata kvs (in order; each
// KV's Type is taken from its Value) and the tensor directory, padded to
// the data section. It fills in each tensor's Offset and Size, placing the
// tensors one after another in the given order, each aligned to the
// alignment (general.alignment in kvs, else DefaultAlignment). The data
// section that follows is Header's DataSize(tensors, alignment) bytes long.
func Header(kvs []KV, tensors []TensorInfo) (header []byte, alignment int64, err error) {
	alignment = DefaultAlignment
	e := &encoder{}
	e.b = append(e.b, Magic...)
	e.u32(3)
	e.u64(uint64(len(tensors)))
	e.u64(uint64(len(kvs)))
	seen := make(map[string]bool, len(kvs))
	for i := range kvs {
		kv := &kvs[i]
		if seen[kv.Key] {
			return nil, 0, fmt.Errorf("key %q: %w", kv.Key, ErrDuplicate)
		}
		seen[kv.Key] = true
		t, _, err := valueType(kv.Value)
		if err != nil {
			return nil, 0, fmt.Errorf("key %q: %w", kv.Key, err)
		}
		kv.Type = t
		if kv.Key == "general.alignment" {
			a, ok := asInt(kv.Value)
			if !ok || a <= 0 || a&(a-1) != 0 || a > 1<<30 {
				return nil, 0, fmt.Errorf("general.alignment = %v: %w", kv.Value, ErrAlignment)
			}
			alignment = a
		}
		e.str(kv.Key)
		e.u32(uint32(t))
		if err := e.value(kv.Value, 0); err != nil {
			return nil, 0, fmt.Errorf("key %q: %w", kv.Key, err)
		}
	}
	var off int64
	names := make(map[string]bool, len(tensors))
	for i := range tensors {
		t := &tensors[i]
		if names[t.Name] {
			return nil, 0, fmt.Errorf("tensor %q: %w", t.Name, ErrDuplicate)
		}
		names[t.Name] = true
		if !t.Type.Known() {
			return nil, 0, fmt.Errorf("tensor %q: type %d: %w", t.Name, uint32(t.Type), ErrTensorType)
		}
		if len(t.Dims) == 0 || len(t.Dims) > MaxDims {
			return nil, 0, fmt.Errorf("tensor %q: %d dimensions: %w", t.Name, len(t.Dims), ErrShape)
		}
		if t.Size, err = tensorSize(t.Type, t.Dims); err != nil {
			return nil, 0, fmt.Errorf("tensor %q: %v: %w", t.Name, err, ErrShape)
		}
		t.Offset = uint64(off)
		off += pad(t.Size, alignment)
		e.str(t.Name)
		e.u32(uint32(len(t.Dims)))
		for _, d := range t.Dims {
			e.u64(d)
		}
		e.u32(uint32(t.Type))
		e.u64(t.Offset)
	}
	n := pad(int64(len(e.b)), alignment)
	e.b = append(e.b, make([]byte, n-int64(len(e.b)))...)
	return e.b, alignment, nil
}

// pad rounds n up to a multiple of a.
func pad(n, a int64) int64 { return (n + a - 1) / a * a }

// DataSize is the size of the data section Header laid out for tensors.
func DataSize(tensors []TensorInfo, alignment int64) int64 {
	if len(tensors) == 0 {
		return 0
	}
	last := tensors[len(tensors)-1]
	return int64(last.Offset) + pad(last.Size, alignment)
}

// Write writes a version 3 GGUF file: the metadata kvs, then the tensors
// in order with data[i] holding tensors[i]'s bytes (len(data[i]) must be
// the tensor's size). It fills in each tensor's Offset and Size.
func Write(w io.Writer, kvs []KV, tensors []TensorInfo, data [][]byte) error {
	if len(data) != len(tensors) {
		return fmt.Errorf("gguf: %d tensors but %d data buffers", len(tensors), len(data))
	}
	header, align, err := Header(kvs, tensors)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	if _, err := bw.Write(header); err != nil {
		return err
	}
	var zeros [1 << 12]byte
	for i, t := range tensors {
		if int64(len(data[i])) != t.Size {
			return fmt.Errorf("gguf: tensor %q: %d bytes of data, want %d", t.Name, len(data[i]), t.Size)
		}
		if _, err := bw.Write(data[i]); err != nil {
			return err
		}
		if _, err := bw.Write(zeros[:pad(t.Size, align)-t.Size]); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// ModelLayout returns the metadata and tensor directory that describe m
// as a GGUF file, and each tensor's bytes:
//
//   - general.* and the architecture's hyperparameter keys from m.Config,
//     the tokenizer.* keys from m.Tokenizer (its HFJSON as
//     tokenizer.huggingface.json), and every other key of m.Meta;
//   - the tensors in llama.cpp's order, then any others by name;
//   - for a llama model whose Q/K rows are in the NeoX layout (RopeNeoX,
//     as Hugging Face stores them) the rows are permuted to the interleaved
//     layout, as llama.cpp's converter does, unless m.Meta names the file's
//     architecture "qwen2" (which llama.cpp runs with NeoX RoPE); a model
//     with QKNorm is written as "qwen3", and one with FusedWeights as
//     "phi3", NeoX layout kept;
//   - Llama 3 RoPE scaling becomes the rope_freqs.weight tensor.
func ModelLayout(m *model.Model) ([]KV, []TensorInfo, [][]byte, error) {
	c := m.Config
	arch := c.Arch
	if c.Arch == model.ArchLlama && c.RopeNeoX {
		if a, _ := m.Meta["general.architecture"].(string); a == "qwen2" {
			arch = "qwen2"
		}
		if c.QKNorm {
			arch = "qwen3"
		}
		if c.FusedWeights {
			arch = "phi3"
		}
	}
	if c.FusedWeights && arch != "phi3" {
		return nil, nil, nil, fmt.Errorf("gguf: fused Q/K/V and gate/up tensors in a %s model (only Phi-3's, a NeoX llama): %w", c.Arch, model.ErrUnsupported)
	}
	permute := c.Arch == model.ArchLlama && c.RopeNeoX && arch == "llama"
	kvs := []KV{{Key: "general.architecture", Value: arch}}
	if c.Name != "" {
		kvs = append(kvs, KV{Key: "general.name", Value: c.Name})
	}
	u32 := func(key string, v int) { kvs = append(kvs, KV{Key: arch + "." + key, Value: uint32(v)}) }
	if c.Layers > 0 {
		u32("context_length", c.Context)
		u32("embedding_length", c.Dim)
		u32("feed_forward_length", c.Hidden)
		u32("block_count", c.Layers)
		u32("attention.head_count", c.Heads)
		u32("attention.head_count_kv", c.KVHeads)
		if c.Heads > 0 && c.HeadDim != c.Dim/c.Heads {
			u32("attention.key_length", c.HeadDim)
			u32("attention.value_length", c.HeadDim)
		}
		if c.VocabSize > 0 {
			u32("vocab_size", c.VocabSize)
		}
		if c.SlidingWindow > 0 {
			u32("attention.sliding_window", c.SlidingWindow)
		}
		for id, name := range poolingTypes {
			if name != "" && name == c.Pooling {
				u32("pooling_type", id)
			}
		}
		if c.Arch == model.ArchGPT2 {
			kvs = append(kvs, KV{Key: arch + ".attention.layer_norm_epsilon", Value: c.NormEps})
		} else {
			kvs = append(kvs, KV{Key: arch + ".attention.layer_norm_rms_epsilon", Value: c.NormEps},
				KV{Key: arch + ".rope.freq_base", Value: float32(c.RopeTheta)})
			u32("rope.dimension_count", c.RopeDims)
			if c.RopeScaling.Type == "linear" {
				kvs = append(kvs, KV{Key: arch + ".rope.scaling.type", Value: "linear"},
					KV{Key: arch + ".rope.scaling.factor", Value: float32(c.RopeScaling.Factor)})
			}
		}
	}
	kvs = append(kvs, tokenizerKVs(&m.Tokenizer)...)
	have := make(map[string]bool, len(kvs))
	for _, kv := range kvs {
		have[kv.Key] = true
	}
	var extra []string
	for k := range m.Meta {
		if !have[k] && k != "general.alignment" && !isConfigKey(k) {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	for _, k := range extra {
		kvs = append(kvs, KV{Key: k, Value: m.Meta[k]})
	}

	names := tensorOrder(m)
	var infos []TensorInfo
	var data [][]byte
	for _, name := range names {
		t := m.Tensors[name]
		tt, err := TensorTypeOf(t.DType)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("tensor %q: %w", name, err)
		}
		b := t.Data
		if permute && isQK(name) {
			heads := c.Heads
			if isK(name) {
				heads = c.KVHeads
			}
			if b, err = PermuteQK(t, heads, false); err != nil {
				return nil, nil, nil, err
			}
		}
		dims := []uint64{uint64(t.Cols)} // a 1 × n tensor is a GGUF vector
		if t.Rows > 1 {
			dims = append(dims, uint64(t.Rows))
		}
		infos = append(infos, TensorInfo{Name: name, Type: tt, Dims: dims})
		data = append(data, b)
	}
	if c.Arch == model.ArchLlama && c.RopeScaling.Type == "llama3" && m.Tensors["rope_freqs.weight"] == nil {
		f := Llama3RopeFactors(&c)
		infos = append(infos, TensorInfo{Name: "rope_freqs.weight", Type: TypeF32, Dims: []uint64{uint64(len(f))}})
		data = append(data, f32bytes(f))
	}
	return kvs, infos, data, nil
}

// WriteModel writes m as a version 3 GGUF file (see ModelLayout).
func WriteModel(w io.Writer, m *model.Model) error {
	kvs, infos, data, err := ModelLayout(m)
	if err != nil {
		return fmt.Errorf("%s: %w", m.Path, err)
	}
	return Write(w, kvs, infos, data)
}

func f32bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// isConfigKey reports whether a metadata key is a hyperparameter that
// ModelLayout derives from Config (an architecture-prefixed key), so a
// stale copy in Meta is not written twice under another architecture.
func isConfigKey(k string) bool {
	for _, a := range []string{"llama.", "qwen2.", "qwen3.", "mistral.", "gpt2."} {
		if len(k) > len(a) && k[:len(a)] == a {
			return true
		}
	}
	return false
}

func tokenizerKVs(t *model.TokenizerSpec) []KV {
	var kvs []KV
	add := func(k string, v any) { kvs = append(kvs, KV{Key: "tokenizer." + k, Value: v}) }
	if t.Model != "" {
		add("ggml.model", t.Model)
		if t.Pre != "" {
			add("ggml.pre", t.Pre)
		}
		add("ggml.tokens", t.Tokens)
		if t.Scores != nil {
			add("ggml.scores", t.Scores)
		}
		if t.Types != nil {
			add("ggml.token_type", t.Types)
		}
		if t.Merges != nil {
			add("ggml.merges", t.Merges)
		}
		for _, id := range []struct {
			key string
			v   int
		}{{"bos", t.BOS}, {"eos", t.EOS}, {"eot", t.EOT}, {"unknown", t.UNK}, {"padding", t.PAD}} {
			if id.v >= 0 {
				add("ggml."+id.key+"_token_id", uint32(id.v))
			}
		}
		add("ggml.add_bos_token", t.AddBOS)
		add("ggml.add_eos_token", t.AddEOS)
		add("ggml.add_space_prefix", t.AddSpacePrefix)
	}
	if t.ChatTemplate != "" {
		add("chat_template", t.ChatTemplate)
	}
	if t.HFJSON != nil {
		add("huggingface.json", string(t.HFJSON))
	}
	return kvs
}

// tensorOrder lists m's tensors in the order llama.cpp's converters write
// them, then any others sorted by name.
func tensorOrder(m *model.Model) []string {
	var names []string
	done := map[string]bool{}
	if specs, err := Tensors(&m.Config); err == nil {
		for _, s := range specs {
			if _, ok := m.Tensors[s.Name]; ok {
				names = append(names, s.Name)
				done[s.Name] = true
			}
		}
	}
	var rest []string
	for n := range m.Tensors {
		if !done[n] {
			rest = append(rest, n)
		}
	}
	sort.Strings(rest)
	return append(names, rest...)
}

func hasSuffix(s, suffix string) bool {
	return len(s) >= len(suffix) && s[len(s)-len(suffix):] == suffix
}

func isQK(name string) bool {
	return hasSuffix(name, ".attn_q.weight") || hasSuffix(name, ".attn_k.weight") ||
		hasSuffix(name, ".attn_q.bias") || hasSuffix(name, ".attn_k.bias")
}

func isK(name string) bool {
	return hasSuffix(name, ".attn_k.weight") || hasSuffix(name, ".attn_k.bias")
}

// PermuteQK returns a copy of a Q or K weight (or bias) with its rows
// reordered between the two RoPE layouts, per head of size t.Rows/heads:
// toNeoX false moves the NeoX (rotate-half) order, where rows i and
// i+half of a head form a rotated pair, to the interleaved order where
// they are rows 2i and 2i+1, as llama.cpp's converter does for llama
// models; toNeoX true is the inverse. A bias (one row) is permuted by
// element. Rows move as whole byte strings, so every type is supported.
func PermuteQK(t *model.Tensor, heads int, toNeoX bool) ([]byte, error) {
	n, unit := t.Rows, 0
	if t.Rows == 1 { // a bias: permute elements
		n = t.Cols
		if t.DType.Quantized() {
			return nil, fmt.Errorf("tensor %q: cannot permute a quantized bias: %w", t.Name, model.ErrUnsupported)
		}
	}
	if heads <= 0 || n%heads != 0 || (n/heads)%2 != 0 {
		return nil, fmt.Errorf("tensor %q: %d rows do not split into %d heads of an even size: %w", t.Name, n, heads, model.ErrFormat)
	}
	unit = len(t.Data) / n
	hd := n / heads
	half := hd / 2
	out := make([]byte, len(t.Data))
	for h := 0; h < heads; h++ {
		for i := 0; i < half; i++ {
			for j := 0; j < 2; j++ {
				inter := h*hd + 2*i + j   // interleaved position
				neox := h*hd + j*half + i // NeoX position
				src, dst := neox, inter
				if toNeoX {
					src, dst = inter, neox
				}
				copy(out[dst*unit:(dst+1)*unit], t.Data[src*unit:(src+1)*unit])
			}
		}
	}
	return out, nil
}

// Llama3RopeFactors returns the per-frequency divisors of Llama 3.1's RoPE
// scaling for cfg (one per rotated pair), in the form llama.cpp's converter
// stores them as rope_freqs.weight: frequency i is divided by factor[i].
func Llama3RopeFactors(cfg *model.Config) []float32 {
	s := cfg.RopeScaling
	lowWave := float64(s.OriginalContext) / s.LowFreqFactor
	highWave := float64(s.OriginalContext) / s.HighFreqFactor
	out := make([]float32, cfg.RopeDims/2)
	for i := range out {
		freq := 1 / math.Pow(cfg.RopeTheta, float64(2*i)/float64(cfg.RopeDims))
		wave := 2 * math.Pi / freq
		switch {
		case wave < highWave:
			out[i] = 1
		case wave > lowWave:
			out[i] = float32(s.Factor)
		default:
			smooth := (float64(s.OriginalContext)/wave - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor)
			out[i] = float32(1 / ((1-smooth)/s.Factor + smooth))
		}
	}
	return out
}
