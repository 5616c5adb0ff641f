package gpu

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/loomllm/loom/runtime/backend"
	"github.com/loomllm/loom/runtime/quant"
	"github.com/stretchr/testify/require"
)

// TestSplitBlocks checks the split layout against kernels/ABI.md §1 element
// by element, and that joining restores the GGUF bytes.
func TestSplitBlocks(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, dt := range []backend.DType{backend.Q8_0, backend.Q4_0} {
		rows, cols := 3, 96
		rb, err := dt.RowBytes(cols)
		require.NoError(t, err)
		raw := make([]byte, rows*rb)
		for i := range raw {
			raw[i] = byte(rng.Uint32())
		}
		// Keep the scales finite so the dequantized values compare.
		for b := 0; b < len(raw)/dt.BlockBytes(); b++ {
			binary.LittleEndian.PutUint16(raw[b*dt.BlockBytes():], quant.F32ToF16(rng.Float32()))
		}
		qsRow, dRow, ok := splitLayout(dt, cols)
		require.True(t, ok)
		require.Equal(t, rb, qsRow+dRow, "%v: the split layout keeps the size", dt)
		dev := make([]byte, len(raw))
		splitBlocks(dt, dev[:rows*qsRow], dev[rows*qsRow:], raw)

		want := make([]float32, rows*cols)
		require.NoError(t, quant.Dequantize(dt, want, raw))
		for o := 0; o < rows; o++ {
			for c := 0; c < cols; c++ {
				blk := o*cols/32 + c/32
				d := quant.F16ToF32(binary.LittleEndian.Uint16(dev[rows*qsRow+2*blk:]))
				var q int
				if dt == backend.Q8_0 {
					q = int(int8(dev[o*cols+c]))
				} else {
					p := dev[blk*16+c%32%16]
					q = int(p&15) - 8
					if c%32 >= 16 {
						q = int(p>>4) - 8
					}
				}
				require.Equal(t, want[o*cols+c], d*float32(q), "%v element (%d, %d)", dt, o, c)
			}
		}
		back := make([]byte, len(raw))
		joinBlocks(dt, back, dev[:rows*qsRow], dev[rows*qsRow:])
		require.Equal(t, raw, back, "%v: join undoes split", dt)
	}
	_, _, ok := splitLayout(backend.BF16, 64)
	require.False(t, ok)
}
