package conformance

import "math"

// The float64 reference implementations: each is the loop in the
// operation's doc comment (package backend), on rows-packed float32 inputs
// already rounded as the backend stores them, computed in float64.

func refMatMul(x, w []float32, n, in, out int) []float32 {
	dst := make([]float32, n*out)
	for r := 0; r < n; r++ {
		for o := 0; o < out; o++ {
			var s float64
			for i := 0; i < in; i++ {
				s += float64(x[r*in+i]) * float64(w[o*in+i])
			}
			dst[r*out+o] = float32(s)
		}
	}
	return dst
}

func refRMSNorm(x, w []float32, n, d int, eps float32) []float32 {
	dst := make([]float32, n*d)
	for r := 0; r < n; r++ {
		row := x[r*d : (r+1)*d]
		var ss float64
		for _, v := range row {
			ss += float64(v) * float64(v)
		}
		s := 1 / math.Sqrt(ss/float64(d)+float64(eps))
		for c, v := range row {
			dst[r*d+c] = float32(float64(v) * s * float64(w[c]))
		}
	}
	return dst
}

func refLayerNorm(x, w, b []float32, n, d int, eps float32) []float32 {
	dst := make([]float32, n*d)
	for r := 0; r < n; r++ {
		row := x[r*d : (r+1)*d]
		var mean, variance float64
		for _, v := range row {
			mean += float64(v)
		}
		mean /= float64(d)
		for _, v := range row {
			variance += (float64(v) - mean) * (float64(v) - mean)
		}
		s := 1 / math.Sqrt(variance/float64(d)+float64(eps))
		for c, v := range row {
			dst[r*d+c] = float32((float64(v)-mean)*s*float64(w[c]) + float64(b[c]))
		}
	}
	return dst
}

func refRoPE(x []float32, pos []int32, freqs []float32, n, d, headDim int, neox bool) []float32 {
	dst := append([]float32(nil), x...)
	half := len(freqs)
	for r := 0; r < n; r++ {
		for h := 0; h < d/headDim; h++ {
			for i := 0; i < half; i++ {
				theta := float64(float32(pos[r]) * freqs[i]) // rounded to F32, as documented
				a, b := h*headDim+2*i, h*headDim+2*i+1
				if neox {
					a, b = h*headDim+i, h*headDim+i+half
				}
				xa, xb := float64(x[r*d+a]), float64(x[r*d+b])
				dst[r*d+a] = float32(xa*math.Cos(theta) - xb*math.Sin(theta))
				dst[r*d+b] = float32(xa*math.Sin(theta) + xb*math.Cos(theta))
			}
		}
	}
	return dst
}

func refSwiGLU(gate, up []float32) []float32 {
	dst := make([]float32, len(gate))
	for i, g := range gate {
		dst[i] = float32(float64(g) / (1 + math.Exp(-float64(g))) * float64(up[i]))
	}
	return dst
}

func refGELU(x []float32) []float32 {
	dst := make([]float32, len(x))
	for i, v := range x {
		f := float64(v)
		dst[i] = float32(0.5 * f * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(f+0.044715*f*f*f))))
	}
	return dst
}

func refAdd(a, b []float32, n, d int) []float32 {
	dst := make([]float32, n*d)
	for r := 0; r < n; r++ {
		rb := r
		if len(b) == d {
			rb = 0
		}
		for c := 0; c < d; c++ {
			dst[r*d+c] = float32(float64(a[r*d+c]) + float64(b[rb*d+c]))
		}
	}
	return dst
}

// refAttend is one row's attention: for each of the hq query heads in q
// (hq·dim values), softmax(scale·q·kᵀ)·v over the positions in keys and
// values (each hkv·dim values).
func refAttend(q []float32, keys, values [][]float32, hq, hkv, dim int, scale float32) []float32 {
	out := make([]float32, hq*dim)
	score := make([]float64, len(keys))
	for h := 0; h < hq; h++ {
		g := h / (hq / hkv)
		qh := q[h*dim : (h+1)*dim]
		m := math.Inf(-1)
		for j, k := range keys {
			var s float64
			for i, v := range qh {
				s += float64(v) * float64(k[g*dim+i])
			}
			score[j] = float64(scale) * s
			m = max(m, score[j])
		}
		var sum float64
		for j := range score {
			score[j] = math.Exp(score[j] - m)
			sum += score[j]
		}
		for i := 0; i < dim; i++ {
			var acc float64
			for j, v := range values {
				acc += score[j] * float64(v[g*dim+i])
			}
			out[h*dim+i] = float32(acc / sum)
		}
	}
	return out
}
