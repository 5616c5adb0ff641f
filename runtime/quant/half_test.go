package quant

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestF16Exhaustive checks every binary16 value round-trips through float32
// and that F16ToF32 agrees with an independent float64 formula.
func TestF16Exhaustive(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		f := F16ToF32(h)
		exp := int(h>>10) & 0x1f
		man := float64(h & 0x3ff)
		sign := 1.0
		if h&0x8000 != 0 {
			sign = -1
		}
		var want float64
		switch {
		case exp == 0x1f && man == 0:
			want = math.Inf(int(sign))
		case exp == 0x1f:
			require.True(t, math.IsNaN(float64(f)), "h=%#04x", h)
			require.Equal(t, h|0x200, F32ToF16(f)|0x200, "NaN payload h=%#04x", h)
			continue
		case exp == 0:
			want = sign * man * math.Pow(2, -24)
		default:
			want = sign * (1 + man/1024) * math.Pow(2, float64(exp-15))
		}
		require.Equal(t, want, float64(f), "h=%#04x", h)
		require.Equal(t, h, F32ToF16(f), "round trip h=%#04x", h)
	}
}

// TestF32ToF16Rounding checks round-to-nearest-even at midpoints, overflow
// and underflow, against exact rational comparisons.
func TestF32ToF16Rounding(t *testing.T) {
	cases := []struct {
		in   float32
		want uint16
	}{
		{0, 0}, {float32(math.Copysign(0, -1)), 0x8000},
		{1, 0x3c00}, {-2, 0xc000}, {65504, 0x7bff},
		{65520, 0x7c00},                  // midpoint between max and 2^16 rounds to even: Inf
		{65519.99, 0x7bff},               // below the midpoint stays finite
		{float32(math.Inf(1)), 0x7c00},   // Inf
		{float32(math.Inf(-1)), 0xfc00},  // -Inf
		{1e10, 0x7c00},                   // overflow
		{5.960464477539063e-08, 0x0001},  // smallest subnormal 2^-24
		{2.9802322387695312e-08, 0x0000}, // 2^-25: tie between 0 and 2^-24 → even (0)
		{4.470348358154297e-08, 0x0001},  // 1.5·2^-25 → rounds up to 2^-24
		{8.940696716308594e-08, 0x0002},  // 1.5·2^-24: tie between 1 and 2 → even (2)
		{6.097555160522461e-05, 0x03ff},  // largest subnormal
		{6.103515625e-05, 0x0400},        // smallest normal
		{1 + 1.0/2048, 0x3c00},           // tie → even (down)
		{1 + 3.0/2048, 0x3c02},           // tie → even (up)
		{1e-10, 0},
	}
	for _, c := range cases {
		require.Equal(t, c.want, F32ToF16(c.in), "in=%g", c.in)
	}
	require.True(t, math.IsNaN(float64(F16ToF32(F32ToF16(float32(math.NaN()))))))
}

// TestF32ToF16Nearest compares against a brute-force nearest search on
// random float32 values across the half range.
func TestF32ToF16Nearest(t *testing.T) {
	r := uint32(12345)
	for i := 0; i < 200000; i++ {
		r = r*1664525 + 1013904223
		// Exponents that cover subnormal, normal and overflow half values.
		bits := (r & 0x807fffff) | uint32(100+int(r>>24)%50)<<23
		f := math.Float32frombits(bits)
		h := F32ToF16(f)
		got := float64(F16ToF32(h))
		if math.IsInf(got, 0) {
			require.GreaterOrEqual(t, math.Abs(float64(f)), 65520.0, "f=%g", f)
			continue
		}
		// Neighbours one ulp away must not be closer.
		for _, nb := range []uint16{h + 1, h - 1} {
			if nb&0x7fff >= 0x7c00 {
				continue
			}
			d0 := math.Abs(got - float64(f))
			d1 := math.Abs(float64(F16ToF32(nb)) - float64(f))
			require.True(t, d0 < d1 || (d0 == d1 && h&1 == 0), "f=%g h=%#04x nb=%#04x", f, h, nb)
		}
	}
}

func TestBF16(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		f := BF16ToF32(h)
		if math.IsNaN(float64(f)) {
			require.True(t, math.IsNaN(float64(BF16ToF32(F32ToBF16(f)))))
			continue
		}
		require.Equal(t, h, F32ToBF16(f), "round trip %#04x", h)
	}
	cases := []struct {
		in   uint32
		want uint16
	}{
		{0x3f808000, 0x3f80},          // tie, even stays
		{0x3f818000, 0x3f82},          // tie, odd rounds up
		{0x3f808001, 0x3f81},          // above tie
		{0x7f7fffff, 0x7f80},          // max float rounds to Inf
		{0x00000001, 0x0000},          // tiny subnormal
		{0x00018000, 0x0002},          // subnormal tie → even
		{0xff800000, 0xff80},          // -Inf
		{0x80000000, 0x8000},          // -0
		{0x7fc00000, 0x7fc0},          // NaN
		{0x7f800001, 0x7fc0 | 0x0000}, // signalling NaN with low payload → quiet NaN
	}
	for _, c := range cases {
		got := F32ToBF16(math.Float32frombits(c.in))
		if c.in&0x7fffffff > 0x7f800000 {
			require.True(t, math.IsNaN(float64(BF16ToF32(got))), "in=%#08x", c.in)
			continue
		}
		require.Equal(t, c.want, got, "in=%#08x", c.in)
	}
}
