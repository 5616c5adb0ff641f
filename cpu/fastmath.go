package cpu

import "math"

// expf returns e**x in float32 arithmetic, within 2 ulp of math.Exp for
// normal results (results below the smallest normal float32 flush to 0),
// about ten times faster than going through float64 math.Exp:
//
//	n = round(x / ln 2), r = x - n·ln 2 (in two parts, Cody–Waite)
//	e**x = 2**n · e**r, with e**r a degree-7 polynomial, |r| ≤ ln2/2
func expf(x float32) float32 {
	const (
		log2e = 1.44269504088896341
		ln2hi = 0.693359375 // ln 2 split so that n·ln2hi is exact
		ln2lo = -2.12194440e-4
		round = 0x1.8p23 // adding it rounds a float32 below 2^22 to an integer
	)
	if !(x > -87.33654) { // below the normal range, or NaN
		if x != x {
			return x
		}
		return 0
	}
	if x > 88.72283 {
		return float32(math.Inf(1))
	}
	t := x*log2e + round
	n := t - round                               // round(x / ln 2), exactly
	k := int32(math.Float32bits(t)) - 0x4b400000 // the same as an integer
	r := x - n*ln2hi - n*ln2lo
	// Minimax polynomial for e**r on |r| ≤ ln2/2 (Cephes' expf coefficients).
	p := ((((((1.9875691500e-4*r+1.3981999507e-3)*r+8.3334519073e-3)*r+4.1665795894e-2)*r+1.6666665459e-1)*r+5.0000001201e-1)*r*r + r) + 1
	// 2**k as float32 bits; k is in [-126, 128], and 2**128 overflows
	// float32, so that one is built as 2·2**127.
	if k > 127 {
		return p * 2 * math.Float32frombits(uint32(k-1+127)<<23)
	}
	return p * math.Float32frombits(uint32(k+127)<<23)
}

// sigmoid returns 1 / (1 + e**-x).
func sigmoid(x float32) float32 { return 1 / (1 + expf(-x)) }
