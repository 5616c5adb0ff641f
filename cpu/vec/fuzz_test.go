package vec

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// The fuzz tests compare the fast and generic routines with a float64
// reference on arbitrary bit patterns. Run each by hand for a few minutes,
// for example
//
//	go test -run '^$' -fuzz '^FuzzDotQ8_0$' -fuzztime 2m ./cpu/vec/
//
// Finite inputs are capped at about 1e15 in magnitude so that no float32
// partial sum can overflow in any summation order: then whether the result
// is NaN, an infinity or finite does not depend on the order, and a finite
// result must be within the float32 summation error bound.

const fuzzMaxN = 1 << 14

// tame caps a finite float32 bit pattern at magnitude < 2 when it exceeds
// 1e15 by clearing the top exponent bit; NaN and infinities pass unchanged.
func tame(bits uint32) float32 {
	v := math.Float32frombits(bits)
	if bits&0x7f800000 != 0x7f800000 && math.Abs(float64(v)) > 1e15 {
		v = math.Float32frombits(bits &^ 0x40000000)
	}
	return v
}

// fuzzF32 decodes little-endian float32 values from b, tamed, starting at
// element offset off of a fresh slice so alignment varies.
func fuzzF32(b []byte, off uint8) []float32 {
	n := min(len(b)/4, fuzzMaxN)
	o := int(off % 8)
	s := make([]float32, o+n)[o:]
	for i := range s {
		s[i] = tame(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return s
}

// checkDot compares got with the float64 dot product ref of terms whose
// absolute values sum to abs.
func checkDot(t *testing.T, name string, n int, got float32, ref, abs float64) {
	t.Helper()
	switch {
	case math.IsNaN(ref):
		require.True(t, isNaN(got), "%s: got %v, want NaN", name, got)
	case math.IsInf(ref, 0):
		require.Equal(t, float32(ref), got, "%s", name)
	default:
		tol := (float64(n)+2)*0x1p-24*abs + 0x1p-100
		require.InDelta(t, ref, float64(got), tol, "%s n=%d", name, n)
	}
}

// refDot returns sum(w[i]*x[i]) in float64 and the sum of the terms'
// absolute values. With |terms| < 1e35 the float64 sum cannot overflow,
// so NaN and infinities arise exactly as in any float32 order.
func refDot(w func(i int) float64, x []float32) (ref, abs float64) {
	for i, v := range x {
		p := w(i) * float64(v)
		ref += p
		abs += math.Abs(p)
	}
	return ref, abs
}

func FuzzDot(f *testing.F) {
	f.Add([]byte{0, 0, 128, 63, 0, 0, 0, 64}, []byte{0, 0, 128, 63, 0, 0, 128, 127}, uint8(3))
	f.Fuzz(func(t *testing.T, ab, bb []byte, off uint8) {
		a, b := fuzzF32(ab, off), fuzzF32(bb, off/8)
		n := min(len(a), len(b))
		a, b = a[:n], b[:n]
		ref, abs := refDot(func(i int) float64 { return float64(a[i]) }, b)
		checkDot(t, "Dot", n, Dot(a, b), ref, abs)
		checkDot(t, "DotGeneric", n, DotGeneric(a, b), ref, abs)
	})
}

func FuzzDotF16(f *testing.F) {
	f.Add([]byte{0, 0x3c, 0, 0x7c}, []byte{0, 0, 128, 63, 0, 0, 0, 0}, uint8(1))
	f.Fuzz(func(t *testing.T, w, xb []byte, off uint8) {
		x := fuzzF32(xb, off)
		x = x[:min(len(x), len(w)/2)]
		ref, abs := refDot(func(i int) float64 {
			return float64(f16ToF32(binary.LittleEndian.Uint16(w[2*i:])))
		}, x)
		checkDot(t, "DotF16", len(x), DotF16(w, x), ref, abs)
		checkDot(t, "DotF16Generic", len(x), DotF16Generic(w, x), ref, abs)
	})
}

func FuzzDotBF16(f *testing.F) {
	f.Add([]byte{0x80, 0x3f, 0x80, 0xff}, []byte{0, 0, 128, 63, 0, 0, 0, 0}, uint8(1))
	f.Fuzz(func(t *testing.T, wb, xb []byte, off uint8) {
		x := fuzzF32(xb, off)
		x = x[:min(len(x), len(wb)/2)]
		// Tame the weights too (bfloat16 reaches float32's range).
		w := make([]byte, 2*len(x))
		for i := range x {
			h := uint32(binary.LittleEndian.Uint16(wb[2*i:])) << 16
			binary.LittleEndian.PutUint16(w[2*i:], uint16(math.Float32bits(tame(h))>>16))
		}
		ref, abs := refDot(func(i int) float64 {
			return float64(math.Float32frombits(uint32(binary.LittleEndian.Uint16(w[2*i:])) << 16))
		}, x)
		checkDot(t, "DotBF16", len(x), DotBF16(w, x), ref, abs)
		checkDot(t, "DotBF16Generic", len(x), DotBF16Generic(w, x), ref, abs)
	})
}

// fuzzBlocks trims x to whole blocks that w can hold.
func fuzzBlocks(w []byte, x []float32, blockBytes int) []float32 {
	nb := min(len(x)/QK, len(w)/blockBytes)
	return x[:nb*QK]
}

// badScales reports whether any of the first nb blocks of w (blockBytes
// each) has an infinite or NaN scale. Such a block makes the quantized dot
// products NaN or ±Inf depending on the summation order.
func badScales(w []byte, nb, blockBytes int) bool {
	for b := range nb {
		d := f16ToF32(binary.LittleEndian.Uint16(w[b*blockBytes:]))
		if math.IsInf(float64(d), 0) || isNaN(d) {
			return true
		}
	}
	return false
}

// checkNonFinite requires got to be NaN or an infinity.
func checkNonFinite(t *testing.T, name string, got float32) {
	t.Helper()
	require.True(t, isNaN(got) || math.IsInf(float64(got), 0), "%s: non-finite scale gave %v", name, got)
}

func FuzzDotQ8_0(f *testing.F) {
	f.Add(make([]byte, 2*Q8_0BlockBytes), make([]byte, 4*64), uint8(5))
	f.Fuzz(func(t *testing.T, w, xb []byte, off uint8) {
		x := fuzzBlocks(w, fuzzF32(xb, off), Q8_0BlockBytes)
		ref, abs := refDot(func(i int) float64 {
			blk := w[i/QK*Q8_0BlockBytes:]
			d := float64(f16ToF32(binary.LittleEndian.Uint16(blk)))
			return d * float64(int8(blk[2+i%QK]))
		}, x)
		if badScales(w, len(x)/QK, Q8_0BlockBytes) {
			checkNonFinite(t, "DotQ8_0", DotQ8_0(w, x))
			checkNonFinite(t, "DotQ8_0Generic", DotQ8_0Generic(w, x))
			return
		}
		checkDot(t, "DotQ8_0", len(x), DotQ8_0(w, x), ref, abs)
		checkDot(t, "DotQ8_0Generic", len(x), DotQ8_0Generic(w, x), ref, abs)
	})
}

func FuzzDotQ4_0(f *testing.F) {
	f.Add(make([]byte, 2*Q4_0BlockBytes), make([]byte, 4*64), uint8(5))
	f.Fuzz(func(t *testing.T, w, xb []byte, off uint8) {
		x := fuzzBlocks(w, fuzzF32(xb, off), Q4_0BlockBytes)
		ref, abs := refDot(func(i int) float64 {
			blk := w[i/QK*Q4_0BlockBytes:]
			d := float64(f16ToF32(binary.LittleEndian.Uint16(blk)))
			j := i % QK
			q := int(blk[2+j%16] & 15)
			if j >= 16 {
				q = int(blk[2+j%16] >> 4)
			}
			return d * float64(q-8)
		}, x)
		if badScales(w, len(x)/QK, Q4_0BlockBytes) {
			checkNonFinite(t, "DotQ4_0", DotQ4_0(w, x))
			checkNonFinite(t, "DotQ4_0Generic", DotQ4_0Generic(w, x))
			return
		}
		checkDot(t, "DotQ4_0", len(x), DotQ4_0(w, x), ref, abs)
		checkDot(t, "DotQ4_0Generic", len(x), DotQ4_0Generic(w, x), ref, abs)
	})
}

func FuzzAxpy(f *testing.F) {
	f.Add(uint32(0x3f800000), []byte{0, 0, 128, 63}, []byte{0, 0, 128, 63}, uint8(0))
	f.Fuzz(func(t *testing.T, ab uint32, xb, yb []byte, off uint8) {
		a := tame(ab)
		x, y := fuzzF32(xb, off), fuzzF32(yb, off/8)
		n := min(len(x), len(y))
		x = x[:n]
		yf := append([]float32(nil), y...)
		yg := append([]float32(nil), y...)
		Axpy(a, x, yf)
		AxpyGeneric(a, x, yg)
		for i := n; i < len(y); i++ {
			require.Equal(t, math.Float32bits(y[i]), math.Float32bits(yf[i]), "Axpy wrote y[%d] past len(x)=%d", i, n)
		}
		for i := range n {
			ref := float64(y[i]) + float64(a)*float64(x[i])
			abs := math.Abs(float64(y[i])) + math.Abs(float64(a)*float64(x[i]))
			checkDot(t, "Axpy", 0, yf[i], ref, abs)
			checkDot(t, "AxpyGeneric", 0, yg[i], ref, abs)
		}
	})
}

func FuzzDotRows(f *testing.F) {
	f.Add([]byte{0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64}, []byte{0, 0, 128, 63}, uint8(3), uint8(1))
	f.Fuzz(func(t *testing.T, wb, xb []byte, rows, extra uint8) {
		x := fuzzF32(xb, rows)
		w := fuzzF32(wb, extra)
		stride := len(x) + int(extra%5)
		nr := int(rows % 9)
		if len(x) == 0 || stride == 0 || nr == 0 {
			return
		}
		nr = min(nr, (len(w)-len(x))/stride+1)
		if len(w) < len(x) || nr <= 0 {
			return
		}
		dst := make([]float32, nr)
		DotRows(dst, w, stride, x)
		for k := range nr {
			row := w[k*stride : k*stride+len(x)]
			ref, abs := refDot(func(i int) float64 { return float64(row[i]) }, x)
			checkDot(t, "DotRows", len(x), dst[k], ref, abs)
		}
	})
}
