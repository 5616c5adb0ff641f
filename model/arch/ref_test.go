package arch

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/loomllm/loom/model"
	"github.com/loomllm/loom/runtime/backend"
	"github.com/loomllm/loom/runtime/quant"
)

// This file is an independent reference: random models built in memory,
// and the Llama and GPT-2 forward passes as plain float64 loops over the
// whole sequence (no cache, no backend), in the style of llama2.c.

// randModel builds a model description with random F32 weights.
func randModel(r *rand.Rand, c model.Config, bias, untied bool) *model.Model {
	return buildModel(c, bias, untied, backend.F32, func(_ string, v []float32, scale, mean float64) {
		for i := range v {
			v[i] = float32(mean + scale*r.NormFloat64())
		}
	})
}

// buildModel builds a model description with the tensors of c's
// architecture (Q/K/V biases when bias is set, an output matrix when untied
// is set), in type dt (F32 or F16), filled by fill with values of the given
// standard deviation around mean.
func buildModel(c model.Config, bias, untied bool, dt backend.DType, fill func(name string, v []float32, scale, mean float64)) *model.Model {
	if full, err := checkConfig(c); err == nil {
		c = full
	}
	m := &model.Model{Config: c, Tensors: map[string]*model.Tensor{}, Path: "random"}
	add := func(name string, rows, cols int, scale float64, mean float64) {
		v := make([]float32, rows*cols)
		fill(name, v, scale, mean)
		data := quant.F32Bytes(v)
		if dt == backend.F16 && rows > 1 {
			data = make([]byte, 2*len(v))
			quant.EncodeF16(data, v)
		}
		t := &model.Tensor{Name: name, DType: backend.F32, Rows: rows, Cols: cols, Data: data}
		if dt == backend.F16 && rows > 1 {
			t.DType = backend.F16
		}
		m.Tensors[name] = t
	}
	d, qd, kvd := c.Dim, c.Heads*c.HeadDim, c.KVHeads*c.HeadDim
	w := func(in int) float64 { return 1 / math.Sqrt(float64(in)) }
	add("token_embd.weight", c.VocabSize, d, 1, 0)
	add("output_norm.weight", 1, d, 0.1, 1)
	if untied {
		add("output.weight", c.VocabSize, d, w(d), 0)
	}
	if c.Arch == model.ArchGPT2 {
		add("position_embd.weight", c.Context, d, 0.5, 0)
		add("output_norm.bias", 1, d, 0.1, 0)
	}
	for l := range c.Layers {
		p := fmt.Sprintf("blk.%d.", l)
		add(p+"attn_norm.weight", 1, d, 0.1, 1)
		add(p+"ffn_norm.weight", 1, d, 0.1, 1)
		add(p+"attn_output.weight", d, qd, w(qd), 0)
		add(p+"ffn_down.weight", d, c.Hidden, w(c.Hidden), 0)
		add(p+"ffn_up.weight", c.Hidden, d, w(d), 0)
		if c.Arch == model.ArchGPT2 {
			add(p+"attn_qkv.weight", 3*d, d, w(d), 0)
			for _, b := range []struct {
				n string
				k int
			}{{"attn_norm.bias", d}, {"ffn_norm.bias", d}, {"attn_qkv.bias", 3 * d}, {"attn_output.bias", d}, {"ffn_up.bias", c.Hidden}, {"ffn_down.bias", d}} {
				add(p+b.n, 1, b.k, 0.1, 0)
			}
			continue
		}
		add(p+"attn_q.weight", qd, d, w(d), 0)
		add(p+"attn_k.weight", kvd, d, w(d), 0)
		add(p+"attn_v.weight", kvd, d, w(d), 0)
		add(p+"ffn_gate.weight", c.Hidden, d, w(d), 0)
		if bias {
			add(p+"attn_q.bias", 1, qd, 0.3, 0)
			add(p+"attn_k.bias", 1, kvd, 0.3, 0)
			add(p+"attn_v.bias", 1, kvd, 0.3, 0)
		}
		if c.QKNorm {
			add(p+"attn_q_norm.weight", 1, c.HeadDim, 0.3, 1)
			add(p+"attn_k_norm.weight", 1, c.HeadDim, 0.3, 1)
		}
	}
	return m
}

// ref is a float64 view of a model's weights.
type ref struct {
	c model.Config
	t map[string][]float64
}

func newRef(m *model.Model) *ref {
	r := &ref{c: m.Config, t: map[string][]float64{}}
	for name, t := range m.Tensors {
		v := make([]float32, t.Rows*t.Cols)
		if err := quant.Dequantize(t.DType, v, t.Data); err != nil {
			panic(err)
		}
		f := make([]float64, len(v))
		for i := range v {
			f[i] = float64(v[i])
		}
		r.t[name] = f
	}
	return r
}

func (r *ref) get(format string, a ...any) []float64 { return r.t[fmt.Sprintf(format, a...)] }

// matvec returns W·x for W out × len(x).
func matvec(w, x []float64) []float64 {
	out := make([]float64, len(w)/len(x))
	for o := range out {
		for i, xi := range x {
			out[o] += w[o*len(x)+i] * xi
		}
	}
	return out
}

func addTo(dst, b []float64) {
	for i := range dst {
		dst[i] += b[i]
	}
}

func rmsnorm(x, w []float64, eps float64) []float64 {
	var ss float64
	for _, v := range x {
		ss += v * v
	}
	s := 1 / math.Sqrt(ss/float64(len(x))+eps)
	out := make([]float64, len(x))
	for i := range x {
		out[i] = x[i] * s * w[i]
	}
	return out
}

func layernorm(x, w, b []float64, eps float64) []float64 {
	var mean, vr float64
	for _, v := range x {
		mean += v
	}
	mean /= float64(len(x))
	for _, v := range x {
		vr += (v - mean) * (v - mean)
	}
	s := 1 / math.Sqrt(vr/float64(len(x))+eps)
	out := make([]float64, len(x))
	for i := range x {
		out[i] = (x[i]-mean)*s*w[i] + b[i]
	}
	return out
}

// headNorm RMS-normalises each head (hd elements) of x in place by w.
func headNorm(x, w []float64, hd int, eps float64) {
	for h := 0; h < len(x); h += hd {
		copy(x[h:h+hd], rmsnorm(x[h:h+hd], w, eps))
	}
}

// rope rotates the heads of x in place by position pos.
func (r *ref) rope(x []float64, pos int, freqs []float64) {
	c := r.c
	half := c.RopeDims / 2
	for h := 0; h < len(x)/c.HeadDim; h++ {
		for i := range half {
			a, b := h*c.HeadDim+2*i, h*c.HeadDim+2*i+1
			if c.RopeNeoX {
				a, b = h*c.HeadDim+i, h*c.HeadDim+i+half
			}
			th := float64(pos) * freqs[i]
			x[a], x[b] = x[a]*math.Cos(th)-x[b]*math.Sin(th), x[a]*math.Sin(th)+x[b]*math.Cos(th)
		}
	}
}

// attend runs causal attention of q (all heads) against keys and values
// of positions 0..len(ks)-1.
func (r *ref) attend(q []float64, ks, vs [][]float64) []float64 {
	c := r.c
	hd := c.HeadDim
	out := make([]float64, len(q))
	for h := 0; h < c.Heads; h++ {
		g := h / (c.Heads / c.KVHeads)
		scores := make([]float64, len(ks))
		m := math.Inf(-1)
		for j := range ks {
			for i := range hd {
				scores[j] += q[h*hd+i] * ks[j][g*hd+i]
			}
			scores[j] /= math.Sqrt(float64(hd))
			m = max(m, scores[j])
		}
		var sum float64
		for j := range scores {
			scores[j] = math.Exp(scores[j] - m)
			sum += scores[j]
		}
		for j := range vs {
			for i := range hd {
				out[h*hd+i] += scores[j] / sum * vs[j][g*hd+i]
			}
		}
	}
	return out
}

// forward returns the logits at every position of tokens.
func (r *ref) forward(tokens []int32, freqs []float64) [][]float64 {
	c := r.c
	d := c.Dim
	eps := float64(c.NormEps)
	ks := make([][][]float64, c.Layers)
	vs := make([][][]float64, c.Layers)
	var logits [][]float64
	for p, tok := range tokens {
		x := append([]float64(nil), r.get("token_embd.weight")[int(tok)*d:int(tok+1)*d]...)
		gpt := c.Arch == model.ArchGPT2
		if gpt {
			addTo(x, r.get("position_embd.weight")[p*d:(p+1)*d])
		}
		for l := range c.Layers {
			w := func(s string) []float64 { return r.get("blk.%d.%s", l, s) }
			var h, q, k, v []float64
			if gpt {
				h = layernorm(x, w("attn_norm.weight"), w("attn_norm.bias"), eps)
				qkv := matvec(w("attn_qkv.weight"), h)
				addTo(qkv, w("attn_qkv.bias"))
				q, k, v = qkv[:d], qkv[d:2*d], qkv[2*d:]
			} else {
				h = rmsnorm(x, w("attn_norm.weight"), eps)
				q, k, v = matvec(w("attn_q.weight"), h), matvec(w("attn_k.weight"), h), matvec(w("attn_v.weight"), h)
				if b := w("attn_q.bias"); b != nil {
					addTo(q, b)
					addTo(k, w("attn_k.bias"))
					addTo(v, w("attn_v.bias"))
				}
				if c.QKNorm {
					headNorm(q, w("attn_q_norm.weight"), c.HeadDim, eps)
					headNorm(k, w("attn_k_norm.weight"), c.HeadDim, eps)
				}
				r.rope(q, p, freqs)
				r.rope(k, p, freqs)
			}
			ks[l] = append(ks[l], k)
			vs[l] = append(vs[l], v)
			o := matvec(w("attn_output.weight"), r.attend(q, ks[l], vs[l]))
			if gpt {
				addTo(o, w("attn_output.bias"))
			}
			addTo(x, o)
			if gpt {
				h = layernorm(x, w("ffn_norm.weight"), w("ffn_norm.bias"), eps)
				u := matvec(w("ffn_up.weight"), h)
				addTo(u, w("ffn_up.bias"))
				for i, a := range u {
					u[i] = 0.5 * a * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(a+0.044715*a*a*a)))
				}
				o = matvec(w("ffn_down.weight"), u)
				addTo(o, w("ffn_down.bias"))
			} else {
				h = rmsnorm(x, w("ffn_norm.weight"), eps)
				g, u := matvec(w("ffn_gate.weight"), h), matvec(w("ffn_up.weight"), h)
				for i := range g {
					g[i] = g[i] / (1 + math.Exp(-g[i])) * u[i]
				}
				o = matvec(w("ffn_down.weight"), g)
			}
			addTo(x, o)
		}
		if gpt {
			x = layernorm(x, r.get("output_norm.weight"), r.get("output_norm.bias"), eps)
		} else {
			x = rmsnorm(x, r.get("output_norm.weight"), eps)
		}
		out := r.get("output.weight")
		if out == nil {
			out = r.get("token_embd.weight")
		}
		logits = append(logits, matvec(out, x))
	}
	return logits
}
