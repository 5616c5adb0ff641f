package vec

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// lengths covers empty, tiny, around every unroll width the kernels use, and
// large odd sizes.
var lengths = []int{0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257, 1000, 1024, 4096, 4097}

func newRand(t testing.TB) *rand.Rand {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

func randF32(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64())
	}
	return s
}

// randHalf returns n random finite binary16 values (including subnormals)
// as bytes, together with their float32 values.
func randF16(r *rand.Rand, n int) ([]byte, []float32) {
	b := make([]byte, 2*n)
	f := make([]float32, n)
	for i := range f {
		var h uint16
		for {
			h = uint16(r.Uint32())
			if h&0x7c00 != 0x7c00 && h&0x7c00 >= 0x2000 || h&0x7c00 == 0 && r.IntN(8) == 0 {
				break // mostly magnitudes in [2^-7, 2^16), some subnormals
			}
		}
		binary.LittleEndian.PutUint16(b[2*i:], h)
		f[i] = f16ToF32(h)
	}
	return b, f
}

func randBF16(r *rand.Rand, n int) ([]byte, []float32) {
	b := make([]byte, 2*n)
	f := make([]float32, n)
	for i := range f {
		v := float32(r.NormFloat64())
		h := uint16(math.Float32bits(v) >> 16)
		binary.LittleEndian.PutUint16(b[2*i:], h)
		f[i] = math.Float32frombits(uint32(h) << 16)
	}
	return b, f
}

func randQ8_0(r *rand.Rand, n int) ([]byte, []float32) {
	nb := n / QK
	b := make([]byte, nb*Q8_0BlockBytes)
	f := make([]float32, nb*QK)
	for k := 0; k < nb; k++ {
		blk := b[k*Q8_0BlockBytes:]
		h := uint16(0x2000 + r.IntN(0x2000)) // d in about [2^-7, 2^1)
		binary.LittleEndian.PutUint16(blk, h)
		d := f16ToF32(h)
		for j := 0; j < QK; j++ {
			q := int8(r.Uint32())
			blk[2+j] = byte(q)
			f[k*QK+j] = d * float32(q)
		}
	}
	return b, f
}

func randQ4_0(r *rand.Rand, n int) ([]byte, []float32) {
	nb := n / QK
	b := make([]byte, nb*Q4_0BlockBytes)
	f := make([]float32, nb*QK)
	for k := 0; k < nb; k++ {
		blk := b[k*Q4_0BlockBytes:]
		h := uint16(0x2000 + r.IntN(0x2000))
		binary.LittleEndian.PutUint16(blk, h)
		d := f16ToF32(h)
		for j := 0; j < 16; j++ {
			p := byte(r.Uint32())
			blk[2+j] = p
			f[k*QK+j] = d * float32(int(p&15)-8)
			f[k*QK+j+16] = d * float32(int(p>>4)-8)
		}
	}
	return b, f
}

// ref64 returns the float64 dot product of w and x and the sum of the
// absolute values of the terms, which bounds the rounding error of any
// float32 summation order.
func ref64(w, x []float32) (dot, abs float64) {
	for i := range x {
		p := float64(w[i]) * float64(x[i])
		dot += p
		abs += math.Abs(p)
	}
	return dot, abs
}

// requireClose checks got against the float64 reference: the error of a
// float32 sum of n terms in any order is at most about n*eps*sum|terms|.
func requireClose(t *testing.T, name string, n int, got float32, want, abs float64) {
	t.Helper()
	tol := (float64(n) + 2) * 0x1p-24 * abs
	require.InDelta(t, want, float64(got), tol, "%s n=%d", name, n)
}

type dotCase struct {
	name    string
	fast    func([]byte, []float32) float32
	generic func([]byte, []float32) float32
	gen     func(*rand.Rand, int) ([]byte, []float32)
	block   int // lengths must be a multiple of this
}

// f32Bytes returns the memory of s as bytes, without copying.
func f32Bytes(s []float32) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), 4*len(s))
}

// bytesF32 returns the memory of b, which must be 4-byte aligned, as
// float32 values without copying. The F32 test case passes weights as bytes
// like the other types, and its bytes come from f32Bytes or from large
// (page-aligned) allocations.
func bytesF32(b []byte) []float32 {
	if len(b) < 4 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/4)
}

var dotCases = []dotCase{
	{"F32", func(w []byte, x []float32) float32 { return Dot(bytesF32(w)[:len(x)], x) },
		func(w []byte, x []float32) float32 { return DotGeneric(bytesF32(w)[:len(x)], x) },
		func(r *rand.Rand, n int) ([]byte, []float32) { f := randF32(r, n); return f32Bytes(f), f }, 1},
	{"F16", DotF16, DotF16Generic, randF16, 1},
	{"BF16", DotBF16, DotBF16Generic, randBF16, 1},
	{"Q8_0", DotQ8_0, DotQ8_0Generic, randQ8_0, QK},
	{"Q4_0", DotQ4_0, DotQ4_0Generic, randQ4_0, QK},
}

func TestDots(t *testing.T) {
	t.Logf("features: %s", Features())
	r := newRand(t)
	for _, c := range dotCases {
		for _, n := range lengths {
			n -= n % c.block
			w, wf := c.gen(r, n)
			x := randF32(r, n)
			want, abs := ref64(wf, x)
			requireClose(t, c.name+" fast", n, c.fast(w, x), want, abs)
			requireClose(t, c.name+" generic", n, c.generic(w, x), want, abs)
		}
	}
}

func TestAxpy(t *testing.T) {
	r := newRand(t)
	for _, n := range lengths {
		x := randF32(r, n+1)[1:]
		y := randF32(r, n+3)
		y0 := append([]float32(nil), y...)
		yg := append([]float32(nil), y...)
		a := float32(r.NormFloat64())
		Axpy(a, x, y)
		AxpyGeneric(a, x, yg)
		for i := range y {
			if i >= n {
				require.Equal(t, y0[i], y[i], "Axpy wrote past len(x) at %d (n=%d)", i, n)
				require.Equal(t, y0[i], yg[i], "AxpyGeneric wrote past len(x) at %d (n=%d)", i, n)
				continue
			}
			want := float64(y0[i]) + float64(a)*float64(x[i])
			tol := 0x1p-23 * (math.Abs(float64(y0[i])) + math.Abs(float64(a)*float64(x[i])))
			require.InDelta(t, want, float64(y[i]), tol, "Axpy n=%d i=%d", n, i)
			require.InDelta(t, want, float64(yg[i]), tol, "AxpyGeneric n=%d i=%d", n, i)
		}
	}
}

// TestDotsUnaligned runs every routine on weights and activations that
// start at every small offset into their allocations, so the assembly's
// unaligned loads are exercised, and checks fast against generic.
func TestDotsUnaligned(t *testing.T) {
	r := newRand(t)
	for _, c := range dotCases {
		for _, n := range []int{32, 96, 4096} {
			w, wf := c.gen(r, n+32)
			x := randF32(r, n+8)
			for xo := 0; xo < 8; xo++ {
				// Byte offsets for the encoded weights (F32 stays 4-byte
				// aligned: see bytesF32); whole elements for x.
				step := 1
				if c.name == "F32" {
					step = 4
				}
				for wo := 0; wo < 16; wo += step {
					ww := append(make([]byte, wo), w...)[wo:]
					want, abs := ref64(wf[:n], x[xo:xo+n])
					requireClose(t, c.name+" fast", n, c.fast(ww, x[xo:xo+n]), want, abs)
				}
			}
		}
	}
}

// TestDotsSpecial checks that NaN and infinities in either operand reach
// the result the same way on both paths.
func TestDotsSpecial(t *testing.T) {
	r := newRand(t)
	nan := float32(math.NaN())
	inf := float32(math.Inf(1))
	for _, c := range dotCases {
		for _, n := range []int{32, 33, 64, 1000, 4097} {
			n -= n % c.block
			w, _ := c.gen(r, n)
			for _, pos := range []int{0, n / 2, n - 1} {
				x := randF32(r, n)
				x[pos] = nan
				require.True(t, isNaN(c.fast(w, x)), "%s fast n=%d NaN at %d", c.name, n, pos)
				require.True(t, isNaN(c.generic(w, x)), "%s generic n=%d NaN at %d", c.name, n, pos)

				// One infinity meets a weight that may be zero (quantized
				// weights often are): then both paths must give NaN, else
				// both the same signed infinity.
				x[pos] = inf
				f, g := c.fast(w, x), c.generic(w, x)
				if isNaN(g) {
					require.True(t, isNaN(f), "%s n=%d Inf at %d: generic NaN, fast %v", c.name, n, pos, f)
				} else {
					require.True(t, math.IsInf(float64(g), 0), "%s generic n=%d Inf at %d gave %v", c.name, n, pos, g)
					require.Equal(t, g, f, "%s n=%d Inf at %d", c.name, n, pos)
				}
			}
		}
	}
}

func isNaN(f float32) bool { return f != f }

// TestF16ToF32 checks the package's private half-precision widening against
// the IEEE definition for every one of the 65536 encodings.
func TestF16ToF32(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		sign := 1.0
		if h&0x8000 != 0 {
			sign = -1
		}
		e, m := h>>10&0x1f, float64(h&0x3ff)
		got := f16ToF32(uint16(h))
		switch {
		case e == 0x1f && m == 0:
			require.Equal(t, float32(math.Inf(int(sign))), got, "h=%#04x", h)
		case e == 0x1f:
			require.True(t, isNaN(got), "h=%#04x", h)
		case e == 0:
			require.Equal(t, float32(sign*m*0x1p-24), got, "h=%#04x", h)
			require.Equal(t, h&0x8000 != 0, math.Signbit(float64(got)), "h=%#04x sign", h)
		default:
			require.Equal(t, float32(sign*(1+m/1024)*math.Ldexp(1, e-15)), got, "h=%#04x", h)
		}
	}
}

func TestDotRows(t *testing.T) {
	r := newRand(t)
	for _, n := range lengths {
		for _, rows := range []int{0, 1, 3, 4, 5, 8, 11} {
			stride := n + r.IntN(5)
			w := randF32(r, rows*stride+3)[3:] // unaligned start
			x := randF32(r, n+1)[1:]
			for _, impl := range []struct {
				name string
				f    func(dst, w []float32, stride int, x []float32)
			}{{"DotRows", DotRows}, {"DotRowsGeneric", DotRowsGeneric}} {
				dst := make([]float32, rows+1)
				dst[rows] = 42
				impl.f(dst[:rows], w, stride, x)
				require.Equal(t, float32(42), dst[rows], "%s wrote past dst", impl.name)
				for k := range rows {
					want, abs := ref64(w[k*stride:k*stride+n], x)
					requireClose(t, fmt.Sprintf("%s row %d/%d", impl.name, k, rows), n, dst[k], want, abs)
				}
			}
		}
	}
	// Rows only as long as x at the end of w (no slack past the last row).
	w := randF32(r, 4*100+33)
	dst := make([]float32, 5)
	DotRows(dst, w, 100, w[400:433])
	for k := range dst {
		want, abs := ref64(w[k*100:k*100+33], w[400:433])
		requireClose(t, "DotRows tight", 33, dst[k], want, abs)
	}
}

// TestDotRowsSpecial puts a NaN into one row (at the start, in the middle
// and in the masked tail) and checks it reaches that row's sum only.
func TestDotRowsSpecial(t *testing.T) {
	r := newRand(t)
	for _, n := range []int{5, 37, 100, 4097} {
		const rows = 6
		for _, pos := range []int{0, n / 2, n - 1} {
			for bad := range rows {
				w := randF32(r, rows*n)
				x := randF32(r, n)
				w[bad*n+pos] = float32(math.NaN())
				dst := make([]float32, rows)
				DotRows(dst, w, n, x)
				for k, v := range dst {
					require.Equal(t, k == bad, isNaN(v), "n=%d pos=%d NaN row %d: dst[%d] = %v", n, pos, bad, k, v)
				}
			}
			w := randF32(r, rows*n)
			x := randF32(r, n)
			x[pos] = float32(math.Inf(1))
			dst := make([]float32, rows)
			DotRows(dst, w, n, x)
			for k, v := range dst {
				require.True(t, math.IsInf(float64(v), 0), "n=%d Inf at %d: dst[%d] = %v", n, pos, k, v)
			}
		}
	}
}
