package gpu

import (
	"testing"

	"github.com/loomllm/loom/runtime/backend"
	"github.com/stretchr/testify/require"
)

// hostBuf stands in for device memory in the shape checks.
type hostBuf struct{ n int }

func (b *hostBuf) Bytes() int { return b.n }

func tensor(t *testing.T, dt backend.DType, rows, cols int) backend.Tensor {
	t.Helper()
	rb, err := dt.RowBytes(cols)
	require.NoError(t, err)
	x, err := backend.NewTensor(&hostBuf{rows * rb}, 0, dt, rows, cols)
	require.NoError(t, err)
	return x
}

func TestOverlap(t *testing.T) {
	p := tensor(t, backend.F32, 4, 12)
	require.True(t, overlap(p, p))
	require.False(t, overlap(p.ColSlice(0, 4), p.ColSlice(4, 12)), "adjacent column slices")
	require.True(t, overlap(p.ColSlice(0, 5), p.ColSlice(4, 12)))
	require.False(t, overlap(p.Slice(0, 2), p.Slice(2, 4)), "row slices")
	require.True(t, overlap(p.Slice(0, 3), p.Slice(2, 4)))
	require.False(t, overlap(p.Slice(0, 2).ColSlice(4, 8), p.Slice(2, 4).ColSlice(0, 12)))
	require.False(t, overlap(p, tensor(t, backend.F32, 4, 12)), "different buffers")
}

func TestChecks(t *testing.T) {
	all := func(backend.DType) bool { return true }
	x, w := tensor(t, backend.F32, 3, 64), tensor(t, backend.BF16, 10, 64)
	y := tensor(t, backend.F32, 3, 10)
	require.NoError(t, checkMatMul(y, x, w, all))
	require.ErrorIs(t, checkMatMul(y, x, tensor(t, backend.BF16, 10, 32), all), backend.ErrShape)
	require.ErrorIs(t, checkMatMul(y, x, w, func(backend.DType) bool { return false }), backend.ErrDType)
	fused := tensor(t, backend.F32, 3, 74)
	require.NoError(t, checkMatMul(fused.ColSlice(64, 74), fused.ColSlice(0, 64), w, all))
	require.ErrorIs(t, checkMatMul(fused.ColSlice(60, 70), fused.ColSlice(0, 64), w, all), backend.ErrShape)

	require.NoError(t, checkAdd(x, x, tensor(t, backend.F32, 1, 64)))
	require.ErrorIs(t, checkAdd(x, x, tensor(t, backend.F32, 2, 64)), backend.ErrShape)

	pos, freqs := tensor(t, backend.I32, 3, 1), tensor(t, backend.F32, 1, 8)
	require.NoError(t, checkRoPE(x, x, pos, freqs, 16))
	require.ErrorIs(t, checkRoPE(x, x, pos, freqs, 12), backend.ErrShape)
	require.ErrorIs(t, checkRoPE(x, x, pos, tensor(t, backend.F32, 1, 9), 16), backend.ErrShape)
	require.ErrorIs(t, checkRoPE(x, x, tensor(t, backend.F32, 3, 1), freqs, 16), backend.ErrDType)

	spec := backend.KVSpec{Layers: 2, KVHeads: 2, HeadDim: 16, BlockSize: 4, Blocks: 8, DType: backend.F16}
	q, kv := tensor(t, backend.F32, 3, 64), tensor(t, backend.F32, 3, 32)
	a := backend.Attn{Layer: 1, Pos: pos, Seq: pos, Blocks: tensor(t, backend.I32, 1, 4)}
	require.NoError(t, checkAttention(q, q, kv, kv, spec, a), "in place over q")
	a.Layer = 2
	require.ErrorIs(t, checkAttention(q, q, kv, kv, spec, a), backend.ErrIndex)
	a.Layer = 0
	require.ErrorIs(t, checkAttention(q, q, tensor(t, backend.F32, 3, 48), kv, spec, a), backend.ErrShape)
	spec.KVHeads = 3
	require.ErrorIs(t, checkAttention(q, q, kv, kv, spec, a), backend.ErrShape, "4 query heads over 3 KV heads")
}

func TestLaunchShapes(t *testing.T) {
	require.Equal(t, dim3{16, 65535, 1}, rowGrid(100000, 4096, 256))
	require.Equal(t, dim3{1, 3, 1}, rowGrid(3, 1, 256))
	// H100: 132 SMs. One row of 8 KV heads fills it with 33 splits, capped
	// by the 64-position minimum.
	require.Equal(t, 33, decodeSplits(132, 1, 8, 8192))
	require.Equal(t, 2, decodeSplits(132, 1, 8, 128))
	require.Equal(t, 1, decodeSplits(132, 1, 8, 16))
	require.Equal(t, 1, decodeSplits(132, 64, 8, 8192))
	for k, s := range kernelSpecs {
		require.NotEmpty(t, s.name, "kernel %d has no spec", k)
		require.LessOrEqual(t, s.args, maxArgs, s.name)
	}
}

func TestDeviceError(t *testing.T) {
	err := deviceError(errWordToken | errWordPosition)
	require.ErrorIs(t, err, backend.ErrIndex)
	require.Contains(t, err.Error(), "token id")
	require.Contains(t, err.Error(), "block id")
	require.Equal(t, "1.5 GiB", human(3<<29))
	require.Equal(t, "17 B", human(17))
}
