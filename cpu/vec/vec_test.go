package vec

import (
	"encoding/binary"
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
	{"F32", func(w []byte, x []float32) float32 { return Dot(bytesF32(w), x) },
		func(w []byte, x []float32) float32 { return DotGeneric(bytesF32(w), x) },
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
