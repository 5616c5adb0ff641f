package hf

import (
	"strconv"
	"strings"

	"github.com/loomllm/loom/model"
)

// nameTable pairs Hugging Face tensor names with GGUF's, for names outside
// the layers and for the suffixes of per-layer names.
type nameTable struct {
	layerHF, layerGGUF string      // per-layer prefixes: "model.layers." / "blk."
	global, perLayer   [][2]string // {hf, gguf}
	skip               []string    // per-layer HF suffixes that are buffers, not weights
	hfPrefix           string      // optional prefix of every HF name ("transformer.")
}

var tables = map[string]*nameTable{
	model.ArchLlama: {
		layerHF: "model.layers.", layerGGUF: "blk.",
		global: [][2]string{
			{"model.embed_tokens.weight", "token_embd.weight"},
			{"model.norm.weight", "output_norm.weight"},
			{"lm_head.weight", "output.weight"},
		},
		perLayer: [][2]string{
			{"input_layernorm.weight", "attn_norm.weight"},
			{"self_attn.q_proj.weight", "attn_q.weight"}, {"self_attn.q_proj.bias", "attn_q.bias"},
			{"self_attn.k_proj.weight", "attn_k.weight"}, {"self_attn.k_proj.bias", "attn_k.bias"},
			{"self_attn.v_proj.weight", "attn_v.weight"}, {"self_attn.v_proj.bias", "attn_v.bias"},
			{"self_attn.o_proj.weight", "attn_output.weight"}, {"self_attn.o_proj.bias", "attn_output.bias"},
			{"self_attn.q_norm.weight", "attn_q_norm.weight"}, {"self_attn.k_norm.weight", "attn_k_norm.weight"},
			{"post_attention_layernorm.weight", "ffn_norm.weight"},
			{"mlp.gate_proj.weight", "ffn_gate.weight"},
			{"mlp.up_proj.weight", "ffn_up.weight"},
			{"mlp.down_proj.weight", "ffn_down.weight"},
			{"self_attn.qkv_proj.weight", "attn_qkv.weight"}, // Phi-3
			{"mlp.gate_up_proj.weight", "ffn_up.weight"},
		},
		skip: []string{"self_attn.rotary_emb.inv_freq"},
	},
	model.ArchGPT2: {
		layerHF: "h.", layerGGUF: "blk.", hfPrefix: "transformer.",
		global: [][2]string{
			{"wte.weight", "token_embd.weight"},
			{"wpe.weight", "position_embd.weight"},
			{"ln_f.weight", "output_norm.weight"}, {"ln_f.bias", "output_norm.bias"},
			{"lm_head.weight", "output.weight"},
		},
		perLayer: [][2]string{
			{"ln_1.weight", "attn_norm.weight"}, {"ln_1.bias", "attn_norm.bias"},
			{"attn.c_attn.weight", "attn_qkv.weight"}, {"attn.c_attn.bias", "attn_qkv.bias"},
			{"attn.c_proj.weight", "attn_output.weight"}, {"attn.c_proj.bias", "attn_output.bias"},
			{"ln_2.weight", "ffn_norm.weight"}, {"ln_2.bias", "ffn_norm.bias"},
			{"mlp.c_fc.weight", "ffn_up.weight"}, {"mlp.c_fc.bias", "ffn_up.bias"},
			{"mlp.c_proj.weight", "ffn_down.weight"}, {"mlp.c_proj.bias", "ffn_down.bias"},
		},
		skip: []string{"attn.bias", "attn.masked_bias"},
	},
}

// GGUFName maps a Hugging Face tensor name of architecture arch to its
// GGUF name. skip reports buffers that are not weights (rotary inverse
// frequencies, GPT-2's attention masks); ok is false for names the table
// does not know, which loaders keep under their original name.
func GGUFName(arch, name string) (gguf string, skip, ok bool) {
	t := tables[arch]
	if t == nil {
		return "", false, false
	}
	if t.hfPrefix != "" && name != "lm_head.weight" {
		name = strings.TrimPrefix(name, t.hfPrefix)
	}
	for _, p := range t.global {
		if p[0] == name {
			return p[1], false, true
		}
	}
	layer, rest, found := splitLayer(name, t.layerHF)
	if !found {
		return "", false, false
	}
	for _, s := range t.skip {
		if s == rest {
			return "", true, true
		}
	}
	for _, p := range t.perLayer {
		if p[0] == rest {
			return t.layerGGUF + layer + "." + p[1], false, true
		}
	}
	return "", false, false
}

// HFName is the inverse of GGUFName; GPT-2 names get the "transformer."
// prefix that GPT2LMHeadModel's checkpoints use.
func HFName(arch, name string) (string, bool) {
	t := tables[arch]
	if t == nil {
		return "", false
	}
	prefix := t.hfPrefix
	for _, p := range t.global {
		if p[1] == name {
			if p[0] == "lm_head.weight" {
				return p[0], true
			}
			return prefix + p[0], true
		}
	}
	layer, rest, found := splitLayer(name, t.layerGGUF)
	if !found {
		return "", false
	}
	for _, p := range t.perLayer {
		if p[1] == rest {
			return prefix + t.layerHF + layer + "." + p[0], true
		}
	}
	return "", false
}

// splitLayer splits "<prefix>N.rest" into N and rest.
func splitLayer(name, prefix string) (layer, rest string, ok bool) {
	s, found := strings.CutPrefix(name, prefix)
	if !found {
		return "", "", false
	}
	layer, rest, found = strings.Cut(s, ".")
	if !found {
		return "", "", false
	}
	if n, err := strconv.Atoi(layer); err != nil || n < 0 || strconv.Itoa(n) != layer {
		return "", "", false
	}
	return layer, rest, true
}
