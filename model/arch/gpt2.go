package arch

import (
	"fmt"
	"math"

	"github.com/loomllm/loom/model"
	"github.com/loomllm/loom/runtime/backend"
)

// gpt2 is GPT-2's forward pass:
//
//	x = wte[tokens] + wpe[positions]
//	for each layer:
//		h = layernorm(x) · Wqkv + bqkv
//		x += attention(q, k, v; cache) · Wo + bo
//		x += gelu(layernorm(x) · Wup + bup) · Wdown + bdown
//	logits = layernorm(x[out rows]) · wteᵀ
type gpt2 struct {
	be  backend.Backend
	cfg model.Config
	opt Options
	w   *weights

	embed, pos backend.Tensor // token_embd: V × dim, position_embd: context × dim
	layers     []gpt2Layer
	normW      backend.Tensor // output_norm weight and bias: 1 × dim
	normB      backend.Tensor
	output     linear // output, or token_embd when tied

	// Activations for MaxRows rows (x, h, qkv, att, ffn) and MaxOut rows
	// (xo, logits).
	x, h, qkv, att, ffn backend.Tensor
	xo, logits          backend.Tensor
	hidden              backend.Tensor // the last Forward's xo rows
}

type gpt2Layer struct {
	attnNormW, attnNormB backend.Tensor // 1 × dim
	qkv                  linear         // 3·dim × dim
	qkvBias              backend.Tensor // 1 × 3·dim
	wo                   linear         // dim × dim
	woBias               backend.Tensor // 1 × dim
	ffnNormW, ffnNormB   backend.Tensor
	up                   linear // hidden × dim
	upBias               backend.Tensor
	down                 linear // dim × hidden
	downBias             backend.Tensor
}

func newGPT2(be backend.Backend, m *model.Model, c model.Config, opt Options) (*gpt2, error) {
	if c.Context <= 0 || c.Context > 1<<20 {
		return nil, fmt.Errorf("%s: gpt2 needs the size of its position table: %w: context %d", m.Path, ErrConfig, c.Context)
	}
	if c.KVHeads != c.Heads || c.Heads*c.HeadDim != c.Dim {
		return nil, fmt.Errorf("%s: gpt2 with %d heads, %d kv heads of %d for dim %d: %w", m.Path, c.Heads, c.KVHeads, c.HeadDim, c.Dim, ErrConfig)
	}
	w := newWeights(be, m, opt)
	d := c.Dim
	g := &gpt2{be: be, cfg: c, opt: opt, w: w}
	g.embed = w.load(w.tensor("token_embd.weight", c.VocabSize, d))
	g.pos = w.load(w.tensor("position_embd.weight", c.Context, d))
	for i := range c.Layers {
		name := func(s string) string { return fmt.Sprintf("blk.%d.%s", i, s) }
		vec := func(s string, n int) backend.Tensor { return w.vector(part{name(s), n}) }
		g.layers = append(g.layers, gpt2Layer{
			attnNormW: vec("attn_norm.weight", d),
			attnNormB: vec("attn_norm.bias", d),
			qkv:       w.matrix(d, part{name("attn_qkv.weight"), 3 * d}),
			qkvBias:   vec("attn_qkv.bias", 3*d),
			wo:        w.matrix(d, part{name("attn_output.weight"), d}),
			woBias:    vec("attn_output.bias", d),
			ffnNormW:  vec("ffn_norm.weight", d),
			ffnNormB:  vec("ffn_norm.bias", d),
			up:        w.matrix(d, part{name("ffn_up.weight"), c.Hidden}),
			upBias:    vec("ffn_up.bias", c.Hidden),
			down:      w.matrix(c.Hidden, part{name("ffn_down.weight"), d}),
			downBias:  vec("ffn_down.bias", d),
		})
	}
	g.normW = w.vector(part{"output_norm.weight", d})
	g.normB = w.vector(part{"output_norm.bias", d})
	if c.TiedEmbeddings || !w.has("output.weight") {
		g.output = linear{parts: []backend.Tensor{g.embed}, offs: []int{0}}
	} else {
		g.output = w.matrix(d, part{"output.weight", c.VocabSize})
	}

	r, k := opt.MaxRows, opt.MaxOut
	g.x = w.alloc(backend.F32, r, d)
	g.h = w.alloc(backend.F32, r, d)
	g.qkv = w.alloc(backend.F32, r, 3*d)
	g.att = w.alloc(backend.F32, r, d)
	g.ffn = w.alloc(backend.F32, r, c.Hidden)
	g.xo = w.alloc(backend.F32, k, d)
	g.logits = w.alloc(backend.F32, k, c.VocabSize)
	if w.err != nil {
		w.free()
		return nil, w.err
	}
	return g, nil
}

func (g *gpt2) Config() model.Config { return g.cfg }
func (g *gpt2) MaxRows() int         { return g.opt.MaxRows }
func (g *gpt2) MaxOut() int          { return g.opt.MaxOut }
func (g *gpt2) MaxContext() int      { return g.cfg.Context }

// Hidden is the last Forward's final hidden states (Model.Hidden).
func (g *gpt2) Hidden() backend.Tensor { return g.hidden }
func (g *gpt2) Close()                 { g.w.free() }

func (g *gpt2) KVSpec(blockSize, blocks int, dt backend.DType) backend.KVSpec {
	c := g.cfg
	return backend.KVSpec{Layers: c.Layers, KVHeads: c.KVHeads, HeadDim: c.HeadDim, BlockSize: blockSize, Blocks: blocks, DType: dt}
}

func (g *gpt2) Forward(b Batch) (backend.Tensor, error) {
	if err := checkBatch(b, g.opt); err != nil {
		return backend.Tensor{}, err
	}
	be, c := g.be, g.cfg
	n, k := b.Tokens.Rows(), b.Out.Rows()
	x, h := g.x.Slice(0, n), g.h.Slice(0, n)
	be.Embed(x, g.embed, b.Tokens)
	be.Embed(h, g.pos, b.Pos) // learned positions: the position is the row
	be.Add(x, x, h)
	for i := range g.layers {
		g.layers[i].forward(g, b, i, x)
		if g.opt.Trace != nil {
			g.opt.Trace(i, x)
		}
	}
	xo := g.xo.Slice(0, k)
	be.Embed(xo, x, b.Out)
	be.LayerNorm(xo, xo, g.normW, g.normB, c.NormEps)
	if g.opt.Trace != nil {
		g.opt.Trace(c.Layers, xo)
	}
	g.hidden = xo
	if k == b.Hidden {
		return backend.Tensor{}, nil // hidden states only
	}
	logits := g.logits.Slice(0, k-b.Hidden)
	g.output.forward(be, logits, xo.Slice(0, k-b.Hidden))
	return logits, nil
}

// forward runs one decoder layer on the residual stream x (n rows).
func (ly *gpt2Layer) forward(g *gpt2, b Batch, layer int, x backend.Tensor) {
	be, c := g.be, g.cfg
	n, d := x.Rows(), c.Dim
	h, qkv, att, ffn := g.h.Slice(0, n), g.qkv.Slice(0, n), g.att.Slice(0, n), g.ffn.Slice(0, n)

	// Attention.
	be.LayerNorm(h, x, ly.attnNormW, ly.attnNormB, c.NormEps)
	ly.qkv.forward(be, qkv, h)
	be.Add(qkv, qkv, ly.qkvBias)
	be.Attention(att, qkv.ColSlice(0, d), qkv.ColSlice(d, 2*d), qkv.ColSlice(2*d, 3*d), b.Cache,
		backend.Attn{Layer: layer, Pos: b.Pos, Seq: b.Seq, Blocks: b.Blocks, Scale: float32(1 / math.Sqrt(float64(c.HeadDim)))})
	ly.wo.forward(be, h, att)
	be.Add(h, h, ly.woBias)
	be.Add(x, x, h)

	// Feed-forward.
	be.LayerNorm(h, x, ly.ffnNormW, ly.ffnNormB, c.NormEps)
	ly.up.forward(be, ffn, h)
	be.Add(ffn, ffn, ly.upBias)
	be.GELU(ffn, ffn)
	ly.down.forward(be, h, ffn)
	be.Add(h, h, ly.downBias)
	be.Add(x, x, h)
}
