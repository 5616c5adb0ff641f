package gguf

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loomllm/loom/model"
)

// raw builds GGUF bytes field by field, so tests can write files that
// Header would refuse.
type raw struct{ encoder }

func newRaw(version uint32, tensors, kvs uint64) *raw {
	r := &raw{}
	r.b = append(r.b, Magic...)
	r.u32(version)
	r.u64(tensors)
	r.u64(kvs)
	return r
}

func (r *raw) kv(key string, v any) *raw {
	t, _, err := valueType(v)
	if err != nil {
		panic(err)
	}
	r.str(key)
	r.u32(uint32(t))
	if err := r.value(v, 0); err != nil {
		panic(err)
	}
	return r
}

func (r *raw) tensor(name string, typ TensorType, off uint64, dims ...uint64) *raw {
	r.str(name)
	r.u32(uint32(len(dims)))
	for _, d := range dims {
		r.u64(d)
	}
	r.u32(uint32(typ))
	r.u64(off)
	return r
}

// data pads to the alignment a and appends n zero bytes of tensor data.
func (r *raw) data(a, n int) []byte {
	r.b = append(r.b, make([]byte, int(pad(int64(len(r.b)), int64(a)))-len(r.b)+n)...)
	return r.b
}

func TestMalformed(t *testing.T) {
	deep := newRaw(3, 0, 1)
	deep.str("deep")
	deep.u32(uint32(TypeArray))
	for i := 0; i < maxDepth+1; i++ {
		deep.u32(uint32(TypeArray))
		deep.u64(1)
	}
	deep.u32(uint32(TypeUint8))
	deep.u64(0)
	cases := []struct {
		name string
		file []byte
		want error
		msg  string // a fragment the error must contain
	}{
		{"empty", nil, ErrMagic, "offset 0"},
		{"magic", []byte("GGUX\x03\x00\x00\x00"), ErrMagic, `"GGUX"`},
		{"version 1", newRaw(1, 0, 0).b, ErrVersion, "version 1"},
		{"version 4", newRaw(4, 0, 0).b, ErrVersion, "offset 4"},
		{"short header", newRaw(3, 0, 0).b[:20], ErrTruncated, "metadata count"},
		{"tensor count", newRaw(3, 1<<60, 0).b, ErrTruncated, "tensors cannot fit"},
		{"kv count", newRaw(3, 0, 1<<62).b, ErrTruncated, "metadata entries cannot fit"},
		{"key length", func() []byte {
			r := newRaw(3, 0, 1)
			r.u64(1 << 40)
			r.b = append(r.b, "general"...)
			return r.b
		}(), ErrTruncated, "offset 24: metadata key of 1099511627776 bytes"},
		{"string value length", func() []byte {
			r := newRaw(3, 0, 1)
			r.str("general.name")
			r.u32(uint32(TypeString))
			r.u64(^uint64(0))
			return r.b
		}(), ErrTruncated, `key "general.name" string`},
		{"array length", func() []byte {
			r := newRaw(3, 0, 1)
			r.str("tokenizer.ggml.scores")
			r.u32(uint32(TypeArray))
			r.u32(uint32(TypeFloat32))
			r.u64(1 << 61)
			return r.b
		}(), ErrTruncated, "array of 2305843009213693952 float32"},
		{"string array length", func() []byte {
			r := newRaw(3, 0, 1)
			r.str("tokenizer.ggml.tokens")
			r.u32(uint32(TypeArray))
			r.u32(uint32(TypeString))
			r.u64(3)
			r.str("a")
			return r.b
		}(), ErrTruncated, "tokenizer.ggml.tokens"},
		{"value type", func() []byte {
			r := newRaw(3, 0, 1)
			r.str("x")
			r.u32(13)
			r.u64(0)
			return r.b
		}(), ErrValueType, "value type 13"},
		{"array value type", func() []byte {
			r := newRaw(3, 0, 1)
			r.str("x")
			r.u32(uint32(TypeArray))
			r.u32(77)
			r.u64(0)
			return r.b
		}(), ErrValueType, "array of value type 77"},
		{"nesting", deep.b, ErrNesting, `key "deep"`},
		{"duplicate key", newRaw(3, 0, 2).kv("a", uint8(1)).kv("a", uint8(2)).b, ErrDuplicate, `"a" repeated`},
		{"alignment zero", newRaw(3, 0, 1).kv("general.alignment", uint32(0)).b, ErrAlignment, "offset 24"},
		{"alignment odd", newRaw(3, 0, 1).kv("general.alignment", uint32(24)).b, ErrAlignment, "24"},
		{"alignment type", newRaw(3, 0, 1).kv("general.alignment", "32").b, ErrAlignment, "string"},
		{"no dims", newRaw(3, 1, 0).tensor("w", TypeF32, 0).data(32, 64), ErrShape, "0 dimensions"},
		{"five dims", newRaw(3, 1, 0).tensor("w", TypeF32, 0, 1, 1, 1, 1, 1).data(32, 64), ErrShape, "5 dimensions"},
		{"zero dim", newRaw(3, 1, 0).tensor("w", TypeF32, 0, 4, 0).data(32, 64), ErrShape, "dimension 1 is 0"},
		{"overflow", newRaw(3, 1, 0).tensor("w", TypeF32, 0, 1<<32, 1<<32).data(32, 64), ErrShape, "overflows"},
		{"overflow bytes", newRaw(3, 1, 0).tensor("w", TypeF32, 0, 1<<31, 1<<31, 2).data(32, 64), ErrShape, "overflows"},
		{"overflow elems", newRaw(3, 1, 0).tensor("w", TypeQ4_K, 0, 1<<40, 1<<30).data(32, 64), ErrShape, "overflows"},
		{"block size", newRaw(3, 1, 0).tensor("w", TypeQ8_0, 0, 33, 2).data(32, 128), ErrShape, "block size 32"},
		{"tensor type", newRaw(3, 1, 0).tensor("w", 31, 0, 4).data(32, 64), ErrTensorType, `tensor "w": type 31`},
		{"truncated data", newRaw(3, 1, 0).tensor("w", TypeF32, 0, 16, 2).data(32, 64), ErrTruncated, `tensor "w": data [0, 128)`},
		{"offset outside", newRaw(3, 1, 0).tensor("w", TypeF32, 1<<40, 4).data(32, 64), ErrOffset, "past the 64-byte data section"},
		{"offset misaligned", newRaw(3, 1, 0).tensor("w", TypeF32, 4, 4).data(32, 64), ErrOffset, "not a multiple of the alignment 32"},
		{"overlap", newRaw(3, 2, 0).tensor("a", TypeF32, 0, 16).tensor("b", TypeF32, 32, 4).data(32, 96), ErrOverlap, `"b" at [32, 48) overlaps "a" at [0, 64)`},
		{"duplicate tensor", newRaw(3, 2, 0).tensor("a", TypeF32, 0, 4).tensor("a", TypeF32, 32, 4).data(32, 96), ErrDuplicate, `tensor "a" repeated`},
		{"no data section", newRaw(3, 1, 0).tensor("a", TypeF32, 0, 4).b, ErrTruncated, "data section starts at 64"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("bad.gguf", c.file)
			require.ErrorIs(t, err, c.want)
			if c.want == ErrVersion {
				require.ErrorIs(t, err, model.ErrUnsupported)
			} else {
				require.ErrorIs(t, err, model.ErrFormat)
			}
			require.ErrorContains(t, err, "bad.gguf: offset ")
			require.ErrorContains(t, err, c.msg)
		})
	}
}

// TestTruncatedEverywhere cuts a valid file at every length short of its
// last tensor's end: each must fail with ErrTruncated (ErrMagic under 4
// bytes; ErrOffset where a whole tensor starts past the cut), never panic.
func TestTruncatedEverywhere(t *testing.T) {
	var buf bytes.Buffer
	kvs := append(allValues(), KV{Key: "general.alignment", Value: uint32(64)})
	infos := []TensorInfo{{Name: "a", Type: TypeQ8_0, Dims: []uint64{64, 3}}, {Name: "b", Type: TypeF16, Dims: []uint64{5}}}
	require.NoError(t, Write(&buf, kvs, infos, [][]byte{make([]byte, 204), make([]byte, 10)}))
	full := buf.Bytes()
	f, err := Parse("ok", full)
	require.NoError(t, err)
	end := int(f.DataOffset) + int(f.Tensors[1].Offset) + 10
	for n := 0; n < end; n++ {
		_, err := Parse("cut", full[:n])
		if n < 4 {
			require.ErrorIs(t, err, ErrMagic, "length %d", n)
			continue
		}
		if n > int(f.DataOffset) && errors.Is(err, ErrOffset) {
			continue
		}
		require.ErrorIs(t, err, ErrTruncated, "length %d", n)
	}
	_, err = Parse("ok", full[:end]) // the padding after the last tensor is optional
	require.NoError(t, err)
}

func TestModelErrors(t *testing.T) {
	m := tinyLlama(t, 3)
	kvs, infos, data, err := ModelLayout(m)
	require.NoError(t, err)
	write := func(kvs []KV, infos []TensorInfo, data [][]byte) []byte {
		var buf bytes.Buffer
		require.NoError(t, Write(&buf, kvs, append([]TensorInfo(nil), infos...), data))
		return buf.Bytes()
	}
	without := func(key string) []KV {
		var out []KV
		for _, kv := range kvs {
			if kv.Key != key {
				out = append(out, kv)
			}
		}
		return out
	}
	with := func(key string, v any) []KV { return append(without(key), KV{Key: key, Value: v}) }
	dropTensor := func(name string) ([]TensorInfo, [][]byte) {
		var ti []TensorInfo
		var td [][]byte
		for i := range infos {
			if infos[i].Name != name {
				ti, td = append(ti, infos[i]), append(td, data[i])
			}
		}
		return ti, td
	}
	noK, noKData := dropTensor("blk.1.attn_k.weight")
	bigQ := append([]TensorInfo(nil), infos...)
	bigQData := append([][]byte(nil), data...)
	for i := range bigQ {
		if bigQ[i].Name == "blk.0.attn_q.weight" {
			bigQ[i].Dims = []uint64{32, 16}
			bigQData[i] = make([]byte, 32*16*4)
		}
	}
	q5 := append([]TensorInfo(nil), infos...)
	q5Data := append([][]byte(nil), data...)
	q5[1] = TensorInfo{Name: q5[1].Name, Type: 16, Dims: []uint64{256}} // iq2_xxs: not loadable
	q5Data[1] = make([]byte, 66)

	cases := []struct {
		name string
		file []byte
		want error
		msg  string
	}{
		{"missing key", write(without("llama.embedding_length"), infos, data), model.ErrMissing, `"llama.embedding_length"`},
		{"missing arch", write(without("general.architecture"), infos, data), model.ErrMissing, `"general.architecture"`},
		{"key type", write(with("llama.block_count", "two"), infos, data), ErrKeyType, `key "llama.block_count" holds string`},
		{"key range", write(with("llama.block_count", int64(-2)), infos, data), model.ErrFormat, "out of range"},
		{"missing tensor", write(kvs, noK, noKData), model.ErrMissing, `tensor "blk.1.attn_k.weight"`},
		{"shape mismatch", write(kvs, bigQ, bigQData), model.ErrFormat, `tensor "blk.0.attn_q.weight" is 16×32, want 32×32`},
		{"heads", write(with("llama.attention.head_count_kv", uint32(3)), infos, data), model.ErrFormat, "not a multiple of 3"},
		{"arch", write(with("general.architecture", "mamba"), infos, data), model.ErrUnsupported, `"mamba"`},
		{"tensor type", write(kvs, q5, q5Data), model.ErrUnsupported, "has type iq2_xxs"},
		{"tokenizer model", write(with("tokenizer.ggml.model", "rwkv"), infos, data), model.ErrUnsupported, `"rwkv"`},
		{"scores", write(with("tokenizer.ggml.scores", []float32{1}), infos, data), model.ErrFormat, "1 entries for 40 tokens"},
		{"rope scaling", write(with("llama.rope.scaling.type", "yarn"), infos, data), model.ErrUnsupported, `"yarn"`},
		{"experts", write(with("llama.expert_count", uint32(8)), infos, data), model.ErrUnsupported, "expert_count = 8"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "m.gguf")
			require.NoError(t, os.WriteFile(path, c.file, 0o644))
			_, err := Load(path)
			require.ErrorIs(t, err, c.want)
			require.ErrorContains(t, err, path)
			require.ErrorContains(t, err, c.msg)
		})
	}
	// The unmodified layout loads.
	path := filepath.Join(t.TempDir(), "ok.gguf")
	require.NoError(t, os.WriteFile(path, write(kvs, infos, data), 0o644))
	got, err := Load(path)
	require.NoError(t, err)
	require.NoError(t, got.Close())
}

func TestOpenSmallFiles(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []int{0, 3} {
		p := filepath.Join(dir, fmt.Sprint(n))
		require.NoError(t, os.WriteFile(p, []byte("GGUF")[:n], 0o644))
		_, err := Open(p)
		require.ErrorIs(t, err, ErrMagic)
		require.ErrorContains(t, err, p+": offset 0")
	}
	_, err := Open(filepath.Join(dir, "absent"))
	require.ErrorIs(t, err, os.ErrNotExist)
}
