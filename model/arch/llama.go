package arch

import (
	"fmt"
	"math"

	"github.com/loomllm/loom/model"
	"github.com/loomllm/loom/runtime/backend"
	"github.com/loomllm/loom/runtime/quant"
)

// llama is the forward pass of the Llama family:
//
//	x = embed[tokens]
//	for each layer:
//		h = rmsnorm(x) · [Wq; Wk; Wv] (+ bias)     one matmul, q/k/v are column views
//		(q, k = rmsnorm of each head of q and k)   Qwen3 (QKNorm), on contiguous copies
//		q, k = rope(q), rope(k)                    one call: adjacent columns
//		x += attention(q, k, v; cache) · Wo
//		h = rmsnorm(x) · [Wgate; Wup]               one matmul (Phi-3's fused tensors are these matrices)
//		x += swiglu(gate, up) · Wdown
//	logits = rmsnorm(x[out rows]) · Woutput
type llama struct {
	be  backend.Backend
	cfg model.Config
	opt Options
	w   *weights

	embed  backend.Tensor // token_embd: V × dim
	layers []llamaLayer
	norm   backend.Tensor // output_norm: 1 × dim
	output linear         // output, or token_embd when tied: V × dim
	freqs  backend.Tensor // RoPE inverse frequencies: 1 × RopeDims/2

	// Activations for MaxRows rows (x, h, qkv, att, ffn; qn and kn, the
	// normalised queries and keys, only with QKNorm) and MaxOut rows (xo,
	// logits).
	x, h, qkv, att, ffn backend.Tensor
	qn, kn              backend.Tensor
	xo, logits          backend.Tensor
	hidden              backend.Tensor // the last Forward's xo rows
}

type llamaLayer struct {
	attnNorm backend.Tensor // 1 × dim
	qkv      linear         // (q + 2·kv) × dim
	qkvBias  backend.Tensor // 1 × (q + 2·kv), zero when the model has none
	qNorm    backend.Tensor // 1 × HeadDim (QKNorm), else zero
	kNorm    backend.Tensor // 1 × HeadDim (QKNorm), else zero
	wo       linear         // dim × q
	ffnNorm  backend.Tensor // 1 × dim
	gateUp   linear         // 2·hidden × dim
	down     linear         // dim × hidden
}

func newLlama(be backend.Backend, m *model.Model, c model.Config, opt Options) (*llama, error) {
	w := newWeights(be, m, opt)
	qd, kvd := c.Heads*c.HeadDim, c.KVHeads*c.HeadDim
	l := &llama{be: be, cfg: c, opt: opt, w: w}
	l.embed = w.load(w.tensor("token_embd.weight", c.VocabSize, c.Dim))
	for i := range c.Layers {
		name := func(s string) string { return fmt.Sprintf("blk.%d.%s", i, s) }
		var ly llamaLayer
		ly.attnNorm = w.vector(part{name("attn_norm.weight"), c.Dim})
		if c.FusedWeights { // Phi-3
			ly.qkv = w.matrix(c.Dim, part{name("attn_qkv.weight"), qd + 2*kvd})
		} else {
			ly.qkv = w.matrix(c.Dim, part{name("attn_q.weight"), qd}, part{name("attn_k.weight"), kvd}, part{name("attn_v.weight"), kvd})
		}
		if w.has(name("attn_q.bias")) { // Qwen2
			ly.qkvBias = w.vector(part{name("attn_q.bias"), qd}, part{name("attn_k.bias"), kvd}, part{name("attn_v.bias"), kvd})
		}
		switch {
		case c.QKNorm:
			ly.qNorm = w.vector(part{name("attn_q_norm.weight"), c.HeadDim})
			ly.kNorm = w.vector(part{name("attn_k_norm.weight"), c.HeadDim})
		case w.has(name("attn_q_norm.weight")) || w.has(name("attn_k_norm.weight")):
			w.fail(fmt.Errorf("%s: %s: a per-head Q/K norm in a model not marked as having one (a Qwen3 file needs general.architecture qwen3): %w",
				m.Path, name("attn_q_norm.weight"), model.ErrFormat))
		}
		if w.has(name("attn_output.bias")) {
			w.fail(fmt.Errorf("%s: %s: an output projection bias (Llama with attention_bias): %w", m.Path, name("attn_output.bias"), model.ErrUnsupported))
		}
		ly.wo = w.matrix(qd, part{name("attn_output.weight"), c.Dim})
		ly.ffnNorm = w.vector(part{name("ffn_norm.weight"), c.Dim})
		if c.FusedWeights {
			ly.gateUp = w.matrix(c.Dim, part{name("ffn_up.weight"), 2 * c.Hidden})
		} else {
			ly.gateUp = w.matrix(c.Dim, part{name("ffn_gate.weight"), c.Hidden}, part{name("ffn_up.weight"), c.Hidden})
		}
		ly.down = w.matrix(c.Hidden, part{name("ffn_down.weight"), c.Dim})
		l.layers = append(l.layers, ly)
	}
	l.norm = w.vector(part{"output_norm.weight", c.Dim})
	if c.TiedEmbeddings || !w.has("output.weight") {
		l.output = linear{parts: []backend.Tensor{l.embed}, offs: []int{0}}
	} else {
		l.output = w.matrix(c.Dim, part{"output.weight", c.VocabSize})
	}
	if w.has("rope_factors_long.weight") || w.has("rope_factors_short.weight") {
		w.fail(fmt.Errorf("%s: rope_factors_long.weight: LongRoPE scaling (Phi-3 128k): %w", m.Path, model.ErrUnsupported))
	}
	var factors []float32
	if w.has("rope_freqs.weight") { // per-frequency divisors (Llama 3.1 GGUF files)
		factors = make([]float32, c.RopeDims/2)
		if t := w.tensor("rope_freqs.weight", 1, len(factors)); t != nil {
			w.fail(quant.Dequantize(t.DType, factors, t.Data))
		}
	}
	l.freqs = w.f32(1, c.RopeDims/2, ropeFreqs(c, factors))

	r, k := opt.MaxRows, opt.MaxOut
	l.x = w.alloc(backend.F32, r, c.Dim)
	l.h = w.alloc(backend.F32, r, c.Dim)
	l.qkv = w.alloc(backend.F32, r, qd+2*kvd)
	l.att = w.alloc(backend.F32, r, qd)
	l.ffn = w.alloc(backend.F32, r, 2*c.Hidden)
	if c.QKNorm {
		l.qn = w.alloc(backend.F32, r, qd)
		l.kn = w.alloc(backend.F32, r, kvd)
	}
	l.xo = w.alloc(backend.F32, k, c.Dim)
	l.logits = w.alloc(backend.F32, k, c.VocabSize)
	if w.err != nil {
		w.free()
		return nil, w.err
	}
	return l, nil
}

// ropeFreqs returns RoPE's inverse frequencies, computed in float32 as
// llama2.c and Hugging Face do (1 / theta^(2i/dims)), with the model's
// frequency scaling applied and then divided by factors, if any.
func ropeFreqs(c model.Config, factors []float32) []float32 {
	f := make([]float32, c.RopeDims/2)
	s := c.RopeScaling
	for i := range f {
		e := float32(2*i) / float32(c.RopeDims)
		freq := float64(1 / float32(math.Pow(c.RopeTheta, float64(e))))
		switch s.Type {
		case "linear":
			if s.Factor > 0 {
				freq /= s.Factor
			}
		case "llama3":
			// Long wavelengths are stretched by Factor, short ones kept,
			// and the band between blended (Llama 3.1's rope_scaling).
			if s.Factor > 0 && s.HighFreqFactor > s.LowFreqFactor && s.OriginalContext > 0 {
				old := float64(s.OriginalContext)
				wave := 2 * math.Pi / freq
				switch {
				case wave > old/s.LowFreqFactor:
					freq /= s.Factor
				case wave >= old/s.HighFreqFactor:
					smooth := (old/wave - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor)
					freq = (1-smooth)*freq/s.Factor + smooth*freq
				}
			}
		}
		if factors != nil && factors[i] > 0 {
			freq /= float64(factors[i])
		}
		f[i] = float32(freq)
	}
	return f
}

func (l *llama) Config() model.Config { return l.cfg }
func (l *llama) MaxRows() int         { return l.opt.MaxRows }
func (l *llama) MaxOut() int          { return l.opt.MaxOut }
func (l *llama) MaxContext() int      { return l.cfg.SlidingWindow }

// Hidden is the last Forward's final hidden states (Model.Hidden).
func (l *llama) Hidden() backend.Tensor { return l.hidden }
func (l *llama) Close()                 { l.w.free() }

func (l *llama) KVSpec(blockSize, blocks int, dt backend.DType) backend.KVSpec {
	c := l.cfg
	return backend.KVSpec{Layers: c.Layers, KVHeads: c.KVHeads, HeadDim: c.HeadDim, BlockSize: blockSize, Blocks: blocks, DType: dt}
}

func (l *llama) Forward(b Batch) (backend.Tensor, error) {
	if err := checkBatch(b, l.opt); err != nil {
		return backend.Tensor{}, err
	}
	be, c := l.be, l.cfg
	n, k := b.Tokens.Rows(), b.Out.Rows()
	x := l.x.Slice(0, n)
	be.Embed(x, l.embed, b.Tokens)
	for i := range l.layers {
		l.layers[i].forward(l, b, i, x)
		if l.opt.Trace != nil {
			l.opt.Trace(i, x)
		}
	}
	// Only the rows that need logits go through the final norm and the
	// (large) output matrix.
	xo := l.xo.Slice(0, k)
	be.Embed(xo, x, b.Out)
	be.RMSNorm(xo, xo, l.norm, c.NormEps)
	if l.opt.Trace != nil {
		l.opt.Trace(c.Layers, xo)
	}
	l.hidden = xo
	if k == b.Hidden {
		return backend.Tensor{}, nil // hidden states only
	}
	logits := l.logits.Slice(0, k-b.Hidden)
	l.output.forward(be, logits, xo.Slice(0, k-b.Hidden))
	return logits, nil
}

// forward runs one decoder layer on the residual stream x (n rows).
func (ly *llamaLayer) forward(l *llama, b Batch, layer int, x backend.Tensor) {
	be, c := l.be, l.cfg
	n := x.Rows()
	qd, kvd := c.Heads*c.HeadDim, c.KVHeads*c.HeadDim
	h, qkv, att, ffn := l.h.Slice(0, n), l.qkv.Slice(0, n), l.att.Slice(0, n), l.ffn.Slice(0, n)
	q, k, v := qkv.ColSlice(0, qd), qkv.ColSlice(qd, qd+kvd), qkv.ColSlice(qd+kvd, qd+2*kvd)
	gate, up := ffn.ColSlice(0, c.Hidden), ffn.ColSlice(c.Hidden, 2*c.Hidden)

	// Attention.
	be.RMSNorm(h, x, ly.attnNorm, c.NormEps)
	ly.qkv.forward(be, qkv, h)
	if !ly.qkvBias.IsZero() {
		be.Add(qkv, qkv, ly.qkvBias)
	}
	if !ly.qNorm.IsZero() {
		// Qwen3: each head of q and k RMS-normalised before the rotation,
		// on contiguous copies so that a head is a row.
		qn, kn := l.qn.Slice(0, n), l.kn.Slice(0, n)
		be.Copy(qn, q)
		be.Copy(kn, k)
		qh, kh := qn.Reshape(n*c.Heads, c.HeadDim), kn.Reshape(n*c.KVHeads, c.HeadDim)
		be.RMSNorm(qh, qh, ly.qNorm, c.NormEps)
		be.RMSNorm(kh, kh, ly.kNorm, c.NormEps)
		be.RoPE(qn, qn, b.Pos, l.freqs, c.HeadDim, c.RopeNeoX)
		be.RoPE(kn, kn, b.Pos, l.freqs, c.HeadDim, c.RopeNeoX)
		q, k = qn, kn
	} else {
		qk := qkv.ColSlice(0, qd+kvd) // q's heads then k's: one rotation for both
		be.RoPE(qk, qk, b.Pos, l.freqs, c.HeadDim, c.RopeNeoX)
	}
	be.Attention(att, q, k, v, b.Cache, backend.Attn{Layer: layer, Pos: b.Pos, Seq: b.Seq, Blocks: b.Blocks,
		Scale: float32(1 / math.Sqrt(float64(c.HeadDim)))})
	ly.wo.forward(be, h, att)
	be.Add(x, x, h)

	// Feed-forward.
	be.RMSNorm(h, x, ly.ffnNorm, c.NormEps)
	ly.gateUp.forward(be, ffn, h)
	be.SwiGLU(gate, gate, up)
	ly.down.forward(be, h, gate)
	be.Add(x, x, h)
}

// checkBatch rejects a batch the model's activations cannot hold.
func checkBatch(b Batch, o Options) error {
	n, k := b.Tokens.Rows(), b.Out.Rows()
	if b.Tokens.IsZero() || b.Out.IsZero() || n > o.MaxRows || k > o.MaxOut ||
		b.Pos.Rows() != n || b.Seq.Rows() != n || b.Cache == nil || b.Hidden < 0 || b.Hidden > k {
		return fmt.Errorf("arch: batch of %d rows, %d outputs (model sized for %d, %d): %w",
			n, k, o.MaxRows, o.MaxOut, backend.ErrShape)
	}
	return nil
}
