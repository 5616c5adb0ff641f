package gguf

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loomllm/loom/internal/testdata"
	"github.com/loomllm/loom/model"
	"github.com/loomllm/loom/runtime/backend"
)

// allValues holds one metadata entry of every value type, including
// nested and empty arrays.
func allValues() []KV {
	return []KV{
		{Key: "t.u8", Value: uint8(200)}, {Key: "t.i8", Value: int8(-100)},
		{Key: "t.u16", Value: uint16(60000)}, {Key: "t.i16", Value: int16(-30000)},
		{Key: "t.u32", Value: uint32(4000000000)}, {Key: "t.i32", Value: int32(-2000000000)},
		{Key: "t.f32", Value: float32(3.25)}, {Key: "t.bool", Value: true},
		{Key: "t.str", Value: "héllo\x00world"}, {Key: "t.u64", Value: uint64(1) << 63},
		{Key: "t.i64", Value: int64(-1) << 62}, {Key: "t.f64", Value: 2.5e300},
		{Key: "t.au8", Value: []uint8{1, 2, 3}}, {Key: "t.ai8", Value: []int8{-1, 2}},
		{Key: "t.au16", Value: []uint16{7}}, {Key: "t.ai16", Value: []int16{-7, 8}},
		{Key: "t.au32", Value: []uint32{9, 10}}, {Key: "t.ai32", Value: []int32{-9}},
		{Key: "t.af32", Value: []float32{0.5, -1}}, {Key: "t.abool", Value: []bool{true, false}},
		{Key: "t.astr", Value: []string{"a", "", "ccc"}}, {Key: "t.au64", Value: []uint64{1 << 40}},
		{Key: "t.ai64", Value: []int64{-1 << 40}}, {Key: "t.af64", Value: []float64{1e-300}},
		{Key: "t.empty", Value: []float32{}},
		{Key: "t.nested", Value: []any{[]int32{1, 2}, []string{"x"}, []any{[]uint8{}}, []any{}}},
	}
}

func TestMetadataRoundTrip(t *testing.T) {
	kvs := allValues()
	var buf bytes.Buffer
	require.NoError(t, Write(&buf, kvs, nil, nil))
	f, err := Parse("mem.gguf", buf.Bytes())
	require.NoError(t, err)
	require.Equal(t, uint32(3), f.Version)
	require.Len(t, f.KV, len(kvs))
	for i, kv := range kvs {
		require.Equal(t, kv.Key, f.KV[i].Key)
		require.Equal(t, kv.Value, f.KV[i].Value, kv.Key)
		require.Equal(t, kv.Type, f.KV[i].Type, kv.Key)
	}
	// Typed getters convert between compatible types.
	n, err := f.Int("t.u16")
	require.NoError(t, err)
	require.Equal(t, int64(60000), n)
	x, err := f.Float("t.i32")
	require.NoError(t, err)
	require.Equal(t, -2e9, x)
	ids, err := f.Int32s("t.au8")
	require.NoError(t, err)
	require.Equal(t, []int32{1, 2, 3}, ids)
	_, err = f.Int32s("t.au64")
	require.ErrorIs(t, err, ErrKeyType)
	_, err = f.Int("t.u64")
	require.ErrorIs(t, err, ErrKeyType)
	_, err = f.String("t.i8")
	require.ErrorIs(t, err, ErrKeyType)
	require.ErrorContains(t, err, `"t.i8"`)
	_, err = f.Bool("absent")
	require.ErrorIs(t, err, ErrKeyMissing)
	require.ErrorIs(t, err, model.ErrMissing)
	fs, err := f.Float32s("t.af64")
	require.NoError(t, err)
	require.Equal(t, []float32{0}, fs) // 1e-300 underflows float32
}

func TestWriteRejects(t *testing.T) {
	var buf bytes.Buffer
	require.ErrorIs(t, Write(&buf, []KV{{Key: "a", Value: 1}}, nil, nil), ErrValueType) // int has no GGUF type
	require.ErrorIs(t, Write(&buf, []KV{{Key: "a", Value: uint8(1)}, {Key: "a", Value: uint8(2)}}, nil, nil), ErrDuplicate)
	require.ErrorIs(t, Write(&buf, []KV{{Key: "general.alignment", Value: uint32(48)}}, nil, nil), ErrAlignment)
	require.ErrorIs(t, Write(&buf, nil, []TensorInfo{{Name: "x", Type: TypeQ8_0, Dims: []uint64{33}}}, [][]byte{nil}), ErrShape)
	require.ErrorIs(t, Write(&buf, nil, []TensorInfo{{Name: "x", Type: 99, Dims: []uint64{1}}}, [][]byte{nil}), ErrTensorType)
	require.Error(t, Write(&buf, nil, []TensorInfo{{Name: "x", Type: TypeF32, Dims: []uint64{2}}}, [][]byte{make([]byte, 7)}))
}

// tinyLlama returns a small llama description with random F32 weights in
// one buffer; it exercises grouped-query heads and untied output.
func tinyLlama(t testing.TB, seed uint64) *model.Model {
	cfg := model.Config{Arch: model.ArchLlama, Name: "tiny", VocabSize: 40, Dim: 32, Hidden: 48,
		Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 8, Context: 64, NormEps: 1e-6, RopeTheta: 500000, RopeDims: 8}
	specs, err := Tensors(&cfg)
	require.NoError(t, err)
	r := rand.New(rand.NewPCG(seed, 1))
	m := &model.Model{Config: cfg, Tensors: map[string]*model.Tensor{}, Meta: map[string]any{}, Path: "tiny"}
	for _, s := range specs {
		if s.Optional {
			continue
		}
		data := make([]byte, 4*s.Rows*s.Cols)
		for i := range data {
			data[i] = byte(r.Uint32())
		}
		m.Tensors[s.Name] = &model.Tensor{Name: s.Name, DType: backend.F32, Rows: s.Rows, Cols: s.Cols, Data: data}
	}
	m.Tokenizer = model.TokenizerSpec{Model: "llama", Pre: "default", BOS: 1, EOS: 2, EOT: -1, PAD: -1, UNK: 0,
		AddBOS: true, AddSpacePrefix: true}
	for i := 0; i < cfg.VocabSize; i++ {
		m.Tokenizer.Tokens = append(m.Tokenizer.Tokens, string(rune('a'+i)))
		m.Tokenizer.Scores = append(m.Tokenizer.Scores, float32(-i))
		m.Tokenizer.Types = append(m.Tokenizer.Types, 1)
	}
	return m
}

// requireSameModel checks that two descriptions have the same config,
// tokenizer and tensors, bit for bit.
func requireSameModel(t *testing.T, want, got *model.Model) {
	t.Helper()
	require.Equal(t, want.Config, got.Config)
	wt, gt := want.Tokenizer, got.Tokenizer
	wt.HFJSON, gt.HFJSON = nil, nil
	require.Equal(t, wt, gt)
	require.Equal(t, len(want.Tensors), len(got.Tensors))
	for name, w := range want.Tensors {
		g, ok := got.Tensors[name]
		require.True(t, ok, name)
		require.Equal(t, w.DType, g.DType, name)
		require.Equal(t, [2]int{w.Rows, w.Cols}, [2]int{g.Rows, g.Cols}, name)
		require.True(t, bytes.Equal(w.Data, g.Data), "tensor %s data differs", name)
	}
}

func TestModelRoundTrip(t *testing.T) {
	m := tinyLlama(t, 7)
	path := filepath.Join(t.TempDir(), "tiny.gguf")
	fd, err := os.Create(path)
	require.NoError(t, err)
	require.NoError(t, WriteModel(fd, m))
	require.NoError(t, fd.Close())
	got, err := Load(path)
	require.NoError(t, err)
	defer got.Close()
	requireSameModel(t, m, got)
}

func TestStories260KRoundTrip(t *testing.T) {
	m, err := Load(testdata.Path(t, "models/stories260K.gguf"))
	require.NoError(t, err)
	defer m.Close()
	var buf bytes.Buffer
	require.NoError(t, WriteModel(&buf, m))
	f, err := Parse("copy.gguf", buf.Bytes())
	require.NoError(t, err)
	got, err := f.Model()
	require.NoError(t, err)
	requireSameModel(t, m, got)
	for k, v := range m.Meta {
		require.Equal(t, v, got.Meta[k], k)
	}
}

func TestPermuteQK(t *testing.T) {
	// 2 heads of 4 rows, 2 columns: NeoX rows (h, j*2+i) go to (h, 2i+j).
	src := &model.Tensor{Name: "q", DType: backend.F16, Rows: 8, Cols: 2, Data: make([]byte, 32)}
	for r := 0; r < 8; r++ {
		src.Data[4*r] = byte(r)
	}
	inter, err := PermuteQK(src, 2, false)
	require.NoError(t, err)
	var order []byte
	for r := 0; r < 8; r++ {
		order = append(order, inter[4*r])
	}
	require.Equal(t, []byte{0, 2, 1, 3, 4, 6, 5, 7}, order)
	back, err := PermuteQK(&model.Tensor{Name: "q", DType: backend.F16, Rows: 8, Cols: 2, Data: inter}, 2, true)
	require.NoError(t, err)
	require.Equal(t, src.Data, back)
	_, err = PermuteQK(src, 3, false)
	require.ErrorIs(t, err, model.ErrFormat)
}
