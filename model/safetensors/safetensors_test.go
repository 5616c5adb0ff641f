package safetensors

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loomllm/loom/model"
)

func randomBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(rand.Uint64(), 2))
	in := []Tensor{
		{Name: "model.embed_tokens.weight", DType: "BF16", Shape: []int64{7, 5}, Data: randomBytes(r, 70)},
		{Name: "model.norm.weight", DType: "F32", Shape: []int64{5}, Data: randomBytes(r, 20)},
		{Name: "scalar", DType: "F16", Shape: []int64{}, Data: randomBytes(r, 2)},
		{Name: "empty", DType: "I64", Shape: []int64{0, 3}, Data: nil},
	}
	path := filepath.Join(t.TempDir(), "model.safetensors")
	fd, err := os.Create(path)
	require.NoError(t, err)
	require.NoError(t, Write(fd, in, map[string]string{"format": "pt"}))
	require.NoError(t, fd.Close())

	f, err := Open(path)
	require.NoError(t, err)
	defer f.Close()
	require.Equal(t, "pt", f.Metadata["format"])
	require.Zero(t, f.DataOffset%8)
	require.Len(t, f.Tensors, len(in))
	for _, w := range in {
		g, ok := f.Tensor(w.Name)
		require.True(t, ok, w.Name)
		require.Equal(t, w.DType, g.DType)
		require.Equal(t, w.Shape, g.Shape)
		require.Equal(t, len(w.Data), len(f.Data(g)))
		require.True(t, bytes.Equal(w.Data, f.Data(g)), w.Name)
	}
	require.NoError(t, f.Close())
}

// file assembles a safetensors file from a raw JSON header and data.
func file(header string, data int) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	return append(b, make([]byte, data)...)
}

func TestMalformed(t *testing.T) {
	huge := binary.LittleEndian.AppendUint64(nil, 1<<62)
	cases := []struct {
		name string
		file []byte
		want error
		msg  string
	}{
		{"empty", nil, ErrTruncated, "offset 0"},
		{"header length", file(`{}`, 0)[:9], ErrTruncated, "header of 2 bytes"},
		{"header huge", huge, ErrHeader, "exceeds"},
		{"json", file(`{"a":`, 0), ErrHeader, "offset 8"},
		{"not object", file(`[1,2]`, 0), ErrHeader, "offset 8"},
		{"entry type", file(`{"a":{"dtype":3}}`, 0), ErrHeader, `tensor "a"`},
		{"dtype", file(`{"w":{"dtype":"Q4","shape":[2],"data_offsets":[0,2]}}`, 2), ErrDType, `dtype "Q4"`},
		{"no offsets", file(`{"w":{"dtype":"F32","shape":[2]}}`, 8), ErrHeader, "data_offsets"},
		{"negative dim", file(`{"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`, 8), ErrShape, "dimension 0 is -2"},
		{"overflow", file(`{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}`, 8), ErrShape, "overflows"},
		{"size mismatch", file(`{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, 8), ErrShape, "needs 12 bytes"},
		{"outside", file(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}`, 8), ErrOffset, "outside the 8-byte data section"},
		{"reversed", file(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}`, 8), ErrOffset, "[8, 0)"},
		{"overlap", file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, 12), ErrOverlap, `"b" at [4, 12) overlaps "a"`},
		{"metadata", file(`{"__metadata__":{"a":1}}`, 0), ErrHeader, "__metadata__"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("bad.safetensors", c.file)
			require.ErrorIs(t, err, c.want)
			require.ErrorContains(t, err, "bad.safetensors: offset ")
			require.ErrorContains(t, err, c.msg)
			if c.want == ErrDType {
				require.ErrorIs(t, err, model.ErrUnsupported)
			} else {
				require.ErrorIs(t, err, model.ErrFormat)
			}
		})
	}
}

func TestWriteRejects(t *testing.T) {
	var buf bytes.Buffer
	require.Error(t, Write(&buf, []Tensor{{Name: "a", DType: "F32", Shape: []int64{2}, Data: make([]byte, 4)}}, nil))
	require.ErrorIs(t, Write(&buf, []Tensor{{Name: "a", DType: "Q8", Shape: []int64{2}}}, nil), ErrDType)
	two := Tensor{Name: "a", DType: "U8", Shape: []int64{1}, Data: []byte{1}}
	require.Error(t, Write(&buf, []Tensor{two, two}, nil))
}

// FuzzParse: arbitrary bytes give an error or a consistent File, never a
// panic. Run by hand: go test -run '^$' -fuzz FuzzParse ./model/safetensors
func FuzzParse(f *testing.F) {
	var buf bytes.Buffer
	r := rand.New(rand.NewPCG(1, 2))
	if err := Write(&buf, []Tensor{
		{Name: "a", DType: "F32", Shape: []int64{2, 2}, Data: randomBytes(r, 16)},
		{Name: "b", DType: "BF16", Shape: []int64{3}, Data: randomBytes(r, 6)},
	}, map[string]string{"format": "pt"}); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add(file(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 8))
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := Parse("fuzz", data)
		if err != nil {
			return
		}
		for i := range g.Tensors {
			ti := &g.Tensors[i]
			if int64(len(g.Data(ti))) != ti.Elems()*int64(DTypeSize(ti.DType)) {
				t.Fatalf("tensor %q: %d bytes for %v", ti.Name, len(g.Data(ti)), ti.Shape)
			}
		}
	})
}
