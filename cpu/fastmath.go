package cpu

import "math"

// expf returns e**x in float32 arithmetic, within 2 ulp of math.Exp for
// normal results (results below the smallest normal float32 flush to 0),
// about ten times faster than going through float64 math.Exp:
//
//	n = round(x / ln 2), r = x - n·ln 2 (in two parts, Cody–Waite)
//	e**x = 2**n · e**r, with e**r a degree-7 Taylor polynomial, |r| ≤ ln2/2
func expf(x float32) float32 {
	const (
		log2e = 1.44269504088896341
		ln2hi = 0.693359375 // ln 2 split so that n·ln2hi is exact
		ln2lo = -2.12194440e-4
	)
	switch {
	case x != x:
		return x
	case x > 88.72283:
		return float32(math.Inf(1))
	case x < -87.33654:
		return 0
	}
	n := float32(int32(x*log2e + 0.5))
	if x*log2e+0.5 < 0 && n != x*log2e+0.5 {
		n-- // floor for negative arguments
	}
	r := x - n*ln2hi - n*ln2lo
	p := 1 + r*(1+r*(1.0/2+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720+r*(1.0/5040)))))))
	// 2**n as float32 bits; n is in [-126, 128], and 2**128 overflows
	// float32, so build it as 2**(n-1)·2 where n = 128.
	if n > 127 {
		return p * 2 * math.Float32frombits(uint32(int32(n)-1+127)<<23)
	}
	return p * math.Float32frombits(uint32(int32(n)+127)<<23)
}

// sigmoid returns 1 / (1 + e**-x).
func sigmoid(x float32) float32 { return 1 / (1 + expf(-x)) }
