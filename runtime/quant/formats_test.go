package quant

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loomllm/loom/model/gguf"
	"github.com/loomllm/loom/runtime/backend"
)

// TestGGMLVectors decodes blocks that ggml quantized and compares each
// value, bitwise, with what ggml's own dequantizer made of them
// (testdata/README.md), for every GGUF type loom reads.
func TestGGMLVectors(t *testing.T) {
	f, err := gguf.Open("testdata/ggml-quants.gguf")
	require.NoError(t, err)
	defer f.Close()
	in, ok := f.Tensor("input")
	require.True(t, ok)
	seen := map[backend.DType]bool{}
	for _, name := range []string{"q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "iq4_nl", "iq4_xs"} {
		gname := strings.Replace(name, "_k", "_K", 1) // ggml's spelling
		q, ok := f.Tensor(gname)
		require.True(t, ok, name)
		ref, ok := f.Tensor(gname + ".f32")
		require.True(t, ok, name)
		dt, ok := q.Type.DType()
		require.True(t, ok, "%s is not loadable", name)
		require.Equal(t, name, dt.String())
		seen[dt] = true
		require.Equal(t, in.Dims, q.Dims)
		want := make([]float32, in.Elems())
		for i := range want {
			want[i] = math.Float32frombits(binary.LittleEndian.Uint32(f.Data(ref)[4*i:]))
		}
		rb, err := dt.RowBytes(q.Cols())
		require.NoError(t, err)
		got := make([]float32, q.Cols())
		for r := 0; r < q.Rows(); r++ {
			require.NoError(t, Dequantize(dt, got, f.Data(q)[r*rb:(r+1)*rb]))
			for i, g := range got {
				w := want[r*q.Cols()+i]
				require.Equal(t, math.Float32bits(w), math.Float32bits(g), "%s row %d element %d: ggml %v, loom %v", name, r, i, w, g)
			}
			// Q3_K becomes Q6_K without loss.
			q6 := make([]byte, q.Cols()/256*210)
			if ExactQ6_K(dt, q6, f.Data(q)[r*rb:(r+1)*rb]) {
				back := make([]float32, q.Cols())
				DequantizeQ6_K(back, q6)
				require.Equal(t, got, back, "%s row %d through Q6_K", name, r)
				require.Equal(t, backend.Q3_K, dt)
			}
			// Where Q8_0 holds the type exactly, the conversion is exact.
			q8 := make([]byte, q.Cols()/32*34)
			if ExactQ8_0(dt, q8, f.Data(q)[r*rb:(r+1)*rb]) {
				back := make([]float32, q.Cols())
				DequantizeQ8_0(back, q8)
				require.Equal(t, got, back, "%s row %d through Q8_0", name, r)
			}
		}
		// The quantized values are near the input: the file is what its
		// description says, and each type's error is of its bit width.
		x := make([]float32, in.Elems())
		for i := range x {
			x[i] = math.Float32frombits(binary.LittleEndian.Uint32(f.Data(in)[4*i:]))
		}
		e := rmsRelErr(x[:512], want[:512])
		t.Logf("%-6s rms relative error on N(0,1): %.4f", name, e)
		require.Less(t, e, 0.35, name)
	}
	require.Len(t, seen, 12)
}

// TestExactQ8_0 converts random blocks of the types Q8_0 holds exactly and
// compares with the general path (dequantize), and leaves other types.
func TestExactQ8_0(t *testing.T) {
	r := rand.New(rand.NewPCG(rand.Uint64(), 9))
	for _, dt := range []backend.DType{backend.Q4_0, backend.Q5_0, backend.IQ4_NL} {
		const n = 8 * 32
		src := randomBlocks(r, n/32, dt.BlockBytes())
		for b := 0; b < n/32; b++ {
			binary.LittleEndian.PutUint16(src[b*dt.BlockBytes():], F32ToF16(r.Float32()-0.5))
		}
		want := make([]float32, n)
		require.NoError(t, Dequantize(dt, want, src))
		q8 := make([]byte, n/32*34)
		require.True(t, ExactQ8_0(dt, q8, src))
		got := make([]float32, n)
		DequantizeQ8_0(got, q8)
		require.Equal(t, want, got, "%v", dt)
	}
	require.False(t, ExactQ8_0(backend.Q4_1, make([]byte, 34), make([]byte, 20)))
}

// TestExactQ6_K: random Q3_K blocks (every quant, high bit and scale
// pattern) through Q6_K give bitwise the values of the Q3_K blocks.
func TestExactQ6_K(t *testing.T) {
	r := rand.New(rand.NewPCG(rand.Uint64(), 10))
	const nb = 16
	src := randomBlocks(r, nb, blockQ3_K)
	for b := 0; b < nb; b++ {
		binary.LittleEndian.PutUint16(src[b*blockQ3_K+108:], F32ToF16(r.Float32()-0.5))
	}
	want, got := make([]float32, nb*QK_K), make([]float32, nb*QK_K)
	DequantizeQ3_K(want, src)
	q6 := make([]byte, nb*blockQ6_K)
	require.True(t, ExactQ6_K(backend.Q3_K, q6, src))
	DequantizeQ6_K(got, q6)
	for i := range want {
		require.Equal(t, math.Float32bits(want[i]), math.Float32bits(got[i]), "element %d", i)
	}
	require.False(t, ExactQ6_K(backend.Q2_K, q6, src))
}
