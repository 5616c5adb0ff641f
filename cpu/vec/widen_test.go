package vec

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loomllm/loom/runtime/quant"
)

// sameFloats requires got and want equal bit for bit, except that any NaN
// matches any NaN.
func sameFloats(t *testing.T, name string, want, got []float32) {
	t.Helper()
	require.Equal(t, len(want), len(got), name)
	for i := range want {
		if isNaN(want[i]) && isNaN(got[i]) {
			continue
		}
		require.Equal(t, math.Float32bits(want[i]), math.Float32bits(got[i]), "%s [%d]: want %v got %v", name, i, want[i], got[i])
	}
}

type widenCase struct {
	name       string
	fast, gen  func([]float32, []byte)
	ref        func([]float32, []byte) // runtime/quant's reference
	bytesPer32 int                     // bytes per 32 elements
	block      int
}

var widenCases = []widenCase{
	{"F16", WidenF16, WidenF16Generic, func(d []float32, s []byte) {
		for i := range d {
			d[i] = quant.F16ToF32(binary.LittleEndian.Uint16(s[2*i:]))
		}
	}, 64, 1},
	{"BF16", WidenBF16, WidenBF16Generic, func(d []float32, s []byte) {
		for i := range d {
			d[i] = quant.BF16ToF32(binary.LittleEndian.Uint16(s[2*i:]))
		}
	}, 64, 1},
	{"Q8_0", WidenQ8_0, WidenQ8_0Generic, quant.DequantizeQ8_0, Q8_0BlockBytes, QK},
	{"Q4_0", WidenQ4_0, WidenQ4_0Generic, quant.DequantizeQ4_0, Q4_0BlockBytes, QK},
}

func TestWiden(t *testing.T) {
	r := newRand(t)
	for _, c := range widenCases {
		for _, n := range lengths {
			// Random bit patterns: every scale and value, NaN and Inf
			// included.
			src := make([]byte, (n+31)/32*c.bytesPer32+7)
			for i := range src {
				src[i] = byte(r.Uint32())
			}
			for off := range 3 {
				s := src[off:]
				want := make([]float32, n+1)
				gen := make([]float32, n+1)
				fast := make([]float32, n+1)
				for _, d := range [][]float32{want, gen, fast} {
					for i := range d {
						d[i] = -7 // poison: must survive past the last whole block
					}
				}
				c.ref(want[:n], s)
				c.gen(gen[:n], s)
				c.fast(fast[:n], s)
				sameFloats(t, c.name+" generic", want, gen)
				sameFloats(t, c.name+" fast", want, fast)
				for i := n / c.block * c.block; i <= n; i++ {
					require.Equal(t, float32(-7), fast[i], "%s n=%d wrote dst[%d]", c.name, n, i)
				}
			}
		}
	}
}

// TestWidenF16All converts all 65536 half-precision encodings.
func TestWidenF16All(t *testing.T) {
	src := make([]byte, 2<<16)
	for h := range 1 << 16 {
		binary.LittleEndian.PutUint16(src[2*h:], uint16(h))
	}
	want := make([]float32, 1<<16)
	got := make([]float32, 1<<16)
	for h := range want {
		want[h] = quant.F16ToF32(uint16(h))
	}
	WidenF16(got, src)
	sameFloats(t, "WidenF16", want, got)
	WidenF16Generic(got, src)
	sameFloats(t, "WidenF16Generic", want, got)
}
