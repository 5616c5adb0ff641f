package gguf

import (
	"fmt"

	"github.com/loomllm/loom/model"
)

// TensorSpec names one tensor an architecture uses and its shape in loom's
// terms (rows × cols; a vector is 1 × n).
type TensorSpec struct {
	Name       string
	Rows, Cols int
	// Optional tensors may be absent (output.weight of a model with tied
	// embeddings, the Q/K/V biases of Qwen2).
	Optional bool
}

// maxLayers bounds the layer count read from a file before the tensor
// table is built from it.
const maxLayers = 1 << 12

// Tensors lists the tensors of cfg's architecture with their GGUF names, in
// the order llama.cpp's converters write them. output.weight is optional
// when cfg.TiedEmbeddings is set; llama biases are listed as optional.
func Tensors(cfg *model.Config) ([]TensorSpec, error) {
	if err := checkConfig(cfg); err != nil {
		return nil, err
	}
	d, v, f := cfg.Dim, cfg.VocabSize, cfg.Hidden
	q, kv := cfg.Heads*cfg.HeadDim, cfg.KVHeads*cfg.HeadDim
	var out []TensorSpec
	add := func(name string, rows, cols int, optional bool) {
		out = append(out, TensorSpec{name, rows, cols, optional})
	}
	switch cfg.Arch {
	case model.ArchLlama:
		add("token_embd.weight", v, d, false)
		for i := 0; i < cfg.Layers; i++ {
			p := fmt.Sprintf("blk.%d.", i)
			add(p+"attn_norm.weight", 1, d, false)
			if cfg.FusedWeights { // Phi-3
				add(p+"attn_qkv.weight", q+2*kv, d, false)
			} else {
				add(p+"attn_q.weight", q, d, false)
				add(p+"attn_q.bias", 1, q, true)
				add(p+"attn_k.weight", kv, d, false)
				add(p+"attn_k.bias", 1, kv, true)
				add(p+"attn_v.weight", kv, d, false)
				add(p+"attn_v.bias", 1, kv, true)
			}
			if cfg.QKNorm {
				add(p+"attn_q_norm.weight", 1, cfg.HeadDim, false)
				add(p+"attn_k_norm.weight", 1, cfg.HeadDim, false)
			}
			add(p+"attn_output.weight", d, q, false)
			add(p+"ffn_norm.weight", 1, d, false)
			if cfg.FusedWeights {
				add(p+"ffn_up.weight", 2*f, d, false) // gate, then up
			} else {
				add(p+"ffn_gate.weight", f, d, false)
				add(p+"ffn_up.weight", f, d, false)
			}
			add(p+"ffn_down.weight", d, f, false)
		}
	case model.ArchGPT2:
		add("token_embd.weight", v, d, false)
		add("position_embd.weight", cfg.Context, d, false)
		for i := 0; i < cfg.Layers; i++ {
			p := fmt.Sprintf("blk.%d.", i)
			add(p+"attn_norm.weight", 1, d, false)
			add(p+"attn_norm.bias", 1, d, false)
			add(p+"attn_qkv.weight", 3*d, d, false)
			add(p+"attn_qkv.bias", 1, 3*d, false)
			add(p+"attn_output.weight", d, d, false)
			add(p+"attn_output.bias", 1, d, false)
			add(p+"ffn_norm.weight", 1, d, false)
			add(p+"ffn_norm.bias", 1, d, false)
			add(p+"ffn_up.weight", f, d, false)
			add(p+"ffn_up.bias", 1, f, false)
			add(p+"ffn_down.weight", d, f, false)
			add(p+"ffn_down.bias", 1, d, false)
		}
	}
	add("output_norm.weight", 1, d, false)
	if cfg.Arch == model.ArchGPT2 {
		add("output_norm.bias", 1, d, false)
	}
	add("output.weight", v, d, cfg.TiedEmbeddings)
	return out, nil
}

// checkConfig checks the hyperparameters an architecture with weights needs.
func checkConfig(cfg *model.Config) error {
	if cfg.Arch != model.ArchLlama && cfg.Arch != model.ArchGPT2 {
		return fmt.Errorf("architecture %q: %w", cfg.Arch, model.ErrUnsupported)
	}
	for _, p := range []struct {
		name string
		v    int
	}{{"vocabulary size", cfg.VocabSize}, {"embedding length", cfg.Dim}, {"feed-forward length", cfg.Hidden},
		{"block count", cfg.Layers}, {"head count", cfg.Heads}, {"key/value head count", cfg.KVHeads},
		{"head size", cfg.HeadDim}, {"context length", cfg.Context}} {
		if p.v <= 0 || p.v > 1<<30 {
			return fmt.Errorf("%s %d: %w", p.name, p.v, model.ErrFormat)
		}
	}
	if cfg.Layers > maxLayers {
		return fmt.Errorf("block count %d exceeds %d: %w", cfg.Layers, maxLayers, model.ErrFormat)
	}
	if cfg.Heads%cfg.KVHeads != 0 {
		return fmt.Errorf("%d heads are not a multiple of %d key/value heads: %w", cfg.Heads, cfg.KVHeads, model.ErrFormat)
	}
	if int64(cfg.Heads)*int64(cfg.HeadDim) > 1<<30 {
		return fmt.Errorf("%d heads of %d: %w", cfg.Heads, cfg.HeadDim, model.ErrFormat)
	}
	if cfg.Arch == model.ArchGPT2 && cfg.Heads*cfg.HeadDim != cfg.Dim {
		return fmt.Errorf("gpt2: %d heads of %d do not make the embedding length %d: %w", cfg.Heads, cfg.HeadDim, cfg.Dim, model.ErrFormat)
	}
	if cfg.Arch == model.ArchLlama && (cfg.RopeDims <= 0 || cfg.RopeDims%2 != 0 || cfg.RopeDims > cfg.HeadDim) {
		return fmt.Errorf("rope dimension count %d with head size %d: %w", cfg.RopeDims, cfg.HeadDim, model.ErrFormat)
	}
	return nil
}

// Check checks that m has every tensor its architecture needs with the
// shape its hyperparameters imply. Tensors beyond those are allowed. A
// model without tensors (a vocabulary-only file) passes.
func Check(m *model.Model) error {
	if len(m.Tensors) == 0 {
		return nil
	}
	if m.Config.Layers > len(m.Tensors) {
		return fmt.Errorf("%s: block count %d but only %d tensors: %w", m.Path, m.Config.Layers, len(m.Tensors), model.ErrFormat)
	}
	specs, err := Tensors(&m.Config)
	if err != nil {
		return fmt.Errorf("%s: %w", m.Path, err)
	}
	for _, s := range specs {
		if _, ok := m.Tensors[s.Name]; !ok && s.Optional {
			continue
		}
		if _, err := m.Tensor(s.Name, s.Rows, s.Cols); err != nil {
			return err
		}
	}
	return nil
}
