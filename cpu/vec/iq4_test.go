package vec

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loomllm/loom/runtime/backend"
	"github.com/loomllm/loom/runtime/quant"
)

// iq4 is one IQ4 type's routines.
type iq4 struct {
	dt           backend.DType
	elems        int // per block
	blockBytes   int
	widen        func(dst []float32, src []byte)
	dot          func(w []byte, x []float32) float32
	dotQ8, plain func(w []byte, q []int8, d []float32) float32
}

var iq4s = []iq4{
	{backend.IQ4_NL, QK, IQ4_NLBlockBytes, WidenIQ4_NL, DotIQ4_NL, DotIQ4_NLQ8, DotIQ4_NLQ8Generic},
	{backend.IQ4_XS, QKK, IQ4_XSBlockBytes, WidenIQ4_XS, DotIQ4_XS, DotIQ4_XSQ8, DotIQ4_XSQ8Generic},
}

// randIQ4 returns nb blocks of random indices and scales with a small
// positive F16 d.
func randIQ4(r *rand.Rand, k iq4, nb int) []byte {
	w := make([]byte, nb*k.blockBytes)
	for i := range w {
		w[i] = byte(r.Uint32())
	}
	for b := range nb {
		binary.LittleEndian.PutUint16(w[b*k.blockBytes:], quant.F32ToF16(r.Float32()/512))
	}
	return w
}

// TestWidenIQ4: bitwise runtime/quant's dequantizers (bitwise ggml's).
func TestWidenIQ4(t *testing.T) {
	r := newRand(t)
	for _, k := range iq4s {
		for _, nb := range []int{1, 3, 8} {
			w := randIQ4(r, k, nb)
			want, got := make([]float32, nb*k.elems), make([]float32, nb*k.elems)
			require.NoError(t, quant.Dequantize(k.dt, want, w))
			k.widen(got, w)
			for i := range want {
				require.Equal(t, math.Float32bits(want[i]), math.Float32bits(got[i]), "%v nb %d element %d", k.dt, nb, i)
			}
		}
	}
}

// TestDotIQ4: the integer dots (fast and generic) against a float64 sum
// of the dequantized weights times the dequantized activations, the float
// dot against the weights times x, the extreme levels, and a non-finite
// activation.
func TestDotIQ4(t *testing.T) {
	r := newRand(t)
	for _, k := range iq4s {
		check := func(what string, w []byte, x []float32) {
			n := len(x)
			q, d := make([]int8, n), make([]float32, n/QK)
			QuantizeQ8(q, d, x)
			wf := make([]float32, n)
			require.NoError(t, quant.Dequantize(k.dt, wf, w))
			xq := make([]float32, n)
			for i := range xq {
				xq[i] = float32(q[i]) * d[i/QK]
			}
			want, abs := ref64(wf, xq)
			requireClose(t, fmt.Sprintf("%v fast %s", k.dt, what), n, k.dotQ8(w, q, d), want, abs)
			requireClose(t, fmt.Sprintf("%v generic %s", k.dt, what), n, k.plain(w, q, d), want, abs)
			want, abs = ref64(wf, x)
			requireClose(t, fmt.Sprintf("%v float %s", k.dt, what), n, k.dot(w, x), want, abs)
		}
		for _, nb := range []int{1, 2, 3, 5, 16} {
			for range 20 {
				check(fmt.Sprintf("nb=%d", nb), randIQ4(r, k, nb), randF32(r, nb*k.elems))
			}
		}
		w := randIQ4(r, k, 2)
		for b := 0; b < 2; b++ { // every index 0 (level -127), then 15 (113), activations ±127
			idx := b * k.blockBytes
			start := idx + 2
			if k.dt == backend.IQ4_XS {
				start = idx + 8
			}
			for i := start; i < idx+k.blockBytes; i++ {
				w[i] = byte(0xFF * b)
			}
		}
		x := make([]float32, 2*k.elems)
		for i := range x {
			x[i] = float32(1 - 2*(i%2))
		}
		check("extreme", w, x)
		x = randF32(r, 2*k.elems)
		x[k.elems+3] = float32(math.NaN())
		q, d := make([]int8, len(x)), make([]float32, len(x)/QK)
		QuantizeQ8(q, d, x)
		require.True(t, math.IsNaN(float64(k.dotQ8(w, q, d))), "%v", k.dt)
		require.True(t, math.IsNaN(float64(k.plain(w, q, d))), "%v", k.dt)
		require.Zero(t, k.dotQ8(nil, nil, nil))
	}
}

func BenchmarkDotIQ4Q8(b *testing.B) {
	r := newRand(b)
	const n = 4096
	for _, k := range iq4s {
		w, x := randIQ4(r, k, n/k.elems), randF32(r, n)
		q, d := make([]int8, n), make([]float32, n/QK)
		QuantizeQ8(q, d, x)
		for _, im := range []struct {
			name string
			f    func(w []byte, q []int8, d []float32) float32
		}{{"fast", k.dotQ8}, {"generic", k.plain}} {
			b.Run(k.dt.String()+"/"+im.name, func(b *testing.B) {
				for b.Loop() {
					sink = im.f(w, q, d)
				}
				reportFlops(b, 2*n)
			})
		}
	}
}
