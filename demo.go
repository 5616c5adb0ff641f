package loom

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/loomllm/loom/model"
	"github.com/loomllm/loom/runtime/backend"
	"github.com/loomllm/loom/runtime/quant"
)

// demoWords is the demo model's vocabulary of whole words; the vocabulary
// also holds every prefix of them and the 256 byte tokens, so any text
// encodes.
const demoWords = `the a an and or but so then when while after before because if
once upon time day night morning sun moon star sky sea river tree forest
garden park house door window room bed table chair box ball book cake
bread milk tea apple flower bird cat dog fox bear rabbit fish frog bee
girl boy mom dad friend king queen dragon robot wizard teacher baby
little big small tall happy sad brave kind funny quiet loud warm cold
red blue green yellow bright dark old new soft shiny
was is were are had has did went saw said ran jumped played found
looked smiled laughed sang walked flew made wanted loved liked gave
took helped asked thought knew felt came lived slept
to of in on at with from under over into near by for about around
he she it they we you i his her their them him
very too not all every some many one two three
home away up down out back together again
. , ! ?`

// demoConfig is the demo model's shape: a tiny Llama.
var demoConfig = model.Config{Arch: model.ArchLlama, Name: "loom random-weight demo", Dim: 64, Hidden: 176,
	Layers: 4, Heads: 4, KVHeads: 2, Context: 512, NormEps: 1e-5, RopeTheta: 10000}

// demoModel builds the built-in demo: a tiny Llama with deterministic
// random weights and a SentencePiece-style vocabulary of common words. It
// writes text made of real words and proves the whole pipeline runs, but
// its weights were never trained, so the text means nothing.
func demoModel() *model.Model {
	spec := model.TokenizerSpec{Model: "llama", BOS: 1, EOS: 2, EOT: -1, PAD: -1, UNK: 0, AddBOS: true, AddSpacePrefix: true}
	add := func(piece string, typ int32, score float32) {
		spec.Tokens = append(spec.Tokens, piece)
		spec.Types = append(spec.Types, typ)
		spec.Scores = append(spec.Scores, score)
	}
	add("<unk>", 2, 0)
	add("<s>", 3, 0)
	add("</s>", 3, 0)
	for b := range 256 {
		add(fmt.Sprintf("<0x%02X>", b), 6, 0)
	}
	// Words, with every prefix so SentencePiece merges can build them
	// (a longer piece scores higher, so it is merged first).
	ids := map[string]int{}
	var words []int // token ids of whole words, which the output favours
	for _, w := range strings.Fields(demoWords) {
		piece := "\u2581" + w
		if strings.ContainsAny(w, ".,!?") {
			piece = w
		}
		runes := []rune(piece)
		for n := 1; n <= len(runes); n++ {
			for _, p := range []string{string(runes[:n]), string(runes[n-1 : n])} {
				if _, ok := ids[p]; !ok {
					ids[p] = len(spec.Tokens)
					add(p, 1, float32(len([]rune(p))))
				}
			}
		}
		words = append(words, ids[piece])
	}

	c := demoConfig
	c.VocabSize = len(spec.Tokens)
	c.HeadDim = c.Dim / c.Heads
	c.RopeDims = c.HeadDim
	m := &model.Model{Config: c, Tensors: map[string]*model.Tensor{}, Tokenizer: spec,
		Meta: map[string]any{"general.name": c.Name}, Path: "demo"}
	r := rand.New(rand.NewPCG(0x6c6f6f6d, 1)) // "loom": the demo is the same on every run
	tensor := func(name string, rows, cols int, f func() float64) {
		v := make([]float32, rows*cols)
		for i := range v {
			v[i] = float32(f())
		}
		m.Tensors[name] = &model.Tensor{Name: name, DType: backend.F32, Rows: rows, Cols: cols, Data: quant.F32Bytes(v)}
	}
	normal := func(in int) func() float64 {
		s := 1 / math.Sqrt(float64(in))
		return func() float64 { return s * r.NormFloat64() }
	}
	one := func() float64 { return 1 }
	d, qd, kvd := c.Dim, c.Heads*c.HeadDim, c.KVHeads*c.HeadDim
	tensor("token_embd.weight", c.VocabSize, d, normal(1))
	for l := range c.Layers {
		p := fmt.Sprintf("blk.%d.", l)
		tensor(p+"attn_norm.weight", 1, d, one)
		tensor(p+"attn_q.weight", qd, d, normal(d))
		tensor(p+"attn_k.weight", kvd, d, normal(d))
		tensor(p+"attn_v.weight", kvd, d, normal(d))
		tensor(p+"attn_output.weight", d, qd, normal(qd))
		tensor(p+"ffn_norm.weight", 1, d, one)
		tensor(p+"ffn_gate.weight", c.Hidden, d, normal(d))
		tensor(p+"ffn_up.weight", c.Hidden, d, normal(d))
		tensor(p+"ffn_down.weight", d, c.Hidden, normal(c.Hidden))
	}
	tensor("output_norm.weight", 1, d, one)
	// The output layer scores whole words only (other rows are zero), with
	// a wide spread, so even random weights pick words, not fragments.
	out := make([]float32, c.VocabSize*d)
	for _, id := range words {
		for i := range d {
			out[id*d+i] = float32(4 * r.NormFloat64() / math.Sqrt(float64(d)))
		}
	}
	m.Tensors["output.weight"] = &model.Tensor{Name: "output.weight", DType: backend.F32, Rows: c.VocabSize, Cols: d, Data: quant.F32Bytes(out)}
	return m
}
