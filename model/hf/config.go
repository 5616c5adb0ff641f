package hf

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/loomllm/loom/model"
)

// config is the part of a Hugging Face config.json loom reads. Pointer
// fields are optional.
type config struct {
	Architectures []string `json:"architectures,omitempty"`
	ModelType     string   `json:"model_type"`

	// Llama family (llama, mistral, qwen2, qwen3, phi3).
	HiddenSize            *int         `json:"hidden_size,omitempty"`
	IntermediateSize      *int         `json:"intermediate_size,omitempty"`
	NumHiddenLayers       *int         `json:"num_hidden_layers,omitempty"`
	NumAttentionHeads     *int         `json:"num_attention_heads,omitempty"`
	NumKeyValueHeads      *int         `json:"num_key_value_heads,omitempty"`
	HeadDim               *int         `json:"head_dim,omitempty"`
	MaxPositionEmbeddings *int         `json:"max_position_embeddings,omitempty"`
	RMSNormEps            *float64     `json:"rms_norm_eps,omitempty"`
	RopeTheta             *float64     `json:"rope_theta,omitempty"`
	RopeScaling           *ropeScaling `json:"rope_scaling,omitempty"`
	RopeParameters        *ropeScaling `json:"rope_parameters,omitempty"` // transformers 5
	PartialRotaryFactor   *float64     `json:"partial_rotary_factor,omitempty"`
	HiddenAct             string       `json:"hidden_act,omitempty"`
	AttentionBias         *bool        `json:"attention_bias,omitempty"`
	SlidingWindow         *int         `json:"sliding_window,omitempty"`     // Mistral v0.1, Phi-3, Qwen2 (see UseSlidingWindow)
	UseSlidingWindow      *bool        `json:"use_sliding_window,omitempty"` // Qwen2: false leaves sliding_window unused

	// GPT-2.
	NEmbd              *int     `json:"n_embd,omitempty"`
	NLayer             *int     `json:"n_layer,omitempty"`
	NHead              *int     `json:"n_head,omitempty"`
	NPositions         *int     `json:"n_positions,omitempty"`
	NCtx               *int     `json:"n_ctx,omitempty"`
	NInner             *int     `json:"n_inner,omitempty"`
	LayerNormEpsilon   *float64 `json:"layer_norm_epsilon,omitempty"`
	ActivationFunction string   `json:"activation_function,omitempty"`

	VocabSize         *int            `json:"vocab_size,omitempty"`
	TieWordEmbeddings *bool           `json:"tie_word_embeddings,omitempty"`
	BOSTokenID        json.RawMessage `json:"bos_token_id,omitempty"`
	EOSTokenID        json.RawMessage `json:"eos_token_id,omitempty"`
	TorchDType        string          `json:"torch_dtype,omitempty"`
}

// ropeScaling is config.json's rope_scaling (or transformers 5's
// rope_parameters, which also holds rope_theta).
type ropeScaling struct {
	Type                          string   `json:"type,omitempty"`
	RopeType                      string   `json:"rope_type,omitempty"`
	Factor                        *float64 `json:"factor,omitempty"`
	LowFreqFactor                 *float64 `json:"low_freq_factor,omitempty"`
	HighFreqFactor                *float64 `json:"high_freq_factor,omitempty"`
	OriginalMaxPositionEmbeddings *int     `json:"original_max_position_embeddings,omitempty"`
	RopeTheta                     *float64 `json:"rope_theta,omitempty"`
}

func get[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// toConfig maps config.json onto model.Config. name is the directory's.
func (c *config) toConfig(path, name string) (model.Config, error) {
	var m model.Config
	m.Name = name
	need := func(field string, p *int) (int, error) {
		if p == nil {
			return 0, fmt.Errorf("%s: config.json: %q: %w", path, field, model.ErrMissing)
		}
		if *p <= 0 || *p > math.MaxInt32 {
			return 0, fmt.Errorf("%s: config.json: %q = %d: %w", path, field, *p, model.ErrFormat)
		}
		return *p, nil
	}
	var err error
	fields := func(dst []*int, names []string, ptrs []*int) error {
		for i := range dst {
			if *dst[i], err = need(names[i], ptrs[i]); err != nil {
				return err
			}
		}
		return nil
	}
	switch c.ModelType {
	case "llama", "mistral", "qwen2", "qwen3", "phi3":
		m.Arch, m.RopeNeoX, m.QKNorm = model.ArchLlama, true, c.ModelType == "qwen3"
		m.FusedWeights = c.ModelType == "phi3" // qkv_proj, gate_up_proj
		if w := get(c.SlidingWindow, 0); w > 0 && get(c.UseSlidingWindow, true) {
			m.SlidingWindow = w
		}
		if get(c.AttentionBias, false) && c.ModelType != "qwen2" {
			return m, fmt.Errorf("%s: config.json: attention_bias with model_type %q: %w", path, c.ModelType, model.ErrUnsupported)
		}
		if err := fields([]*int{&m.Dim, &m.Hidden, &m.Layers, &m.Heads, &m.Context, &m.VocabSize},
			[]string{"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "max_position_embeddings", "vocab_size"},
			[]*int{c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers, c.NumAttentionHeads, c.MaxPositionEmbeddings, c.VocabSize}); err != nil {
			return m, err
		}
		m.KVHeads = get(c.NumKeyValueHeads, m.Heads)
		m.HeadDim = get(c.HeadDim, m.Dim/m.Heads)
		m.NormEps = float32(get(c.RMSNormEps, 1e-6))
		rs := c.RopeScaling
		if c.RopeParameters != nil {
			rs = c.RopeParameters
		}
		theta := get(c.RopeTheta, 10000)
		if rs != nil && rs.RopeTheta != nil {
			theta = *rs.RopeTheta
		}
		m.RopeTheta = theta
		m.RopeDims = int(float64(m.HeadDim) * get(c.PartialRotaryFactor, 1))
		if m.RopeScaling, err = rs.toScaling(path); err != nil {
			return m, err
		}
		m.TiedEmbeddings = get(c.TieWordEmbeddings, false)
		if c.HiddenAct != "" && c.HiddenAct != "silu" {
			return m, fmt.Errorf("%s: config.json: hidden_act %q: %w", path, c.HiddenAct, model.ErrUnsupported)
		}
	case "gpt2":
		m.Arch = model.ArchGPT2
		pos := c.NPositions
		if pos == nil {
			pos = c.NCtx
		}
		if err := fields([]*int{&m.Dim, &m.Layers, &m.Heads, &m.Context, &m.VocabSize},
			[]string{"n_embd", "n_layer", "n_head", "n_positions", "vocab_size"},
			[]*int{c.NEmbd, c.NLayer, c.NHead, pos, c.VocabSize}); err != nil {
			return m, err
		}
		m.KVHeads, m.HeadDim = m.Heads, m.Dim/m.Heads
		m.Hidden = get(c.NInner, 4*m.Dim)
		m.NormEps = float32(get(c.LayerNormEpsilon, 1e-5))
		m.TiedEmbeddings = get(c.TieWordEmbeddings, true)
		switch c.ActivationFunction {
		case "", "gelu_new", "gelu_pytorch_tanh", "gelu_fast":
		default:
			return m, fmt.Errorf("%s: config.json: activation_function %q (loom has tanh-approximated GELU): %w", path, c.ActivationFunction, model.ErrUnsupported)
		}
	case "":
		return m, fmt.Errorf("%s: config.json: %q: %w", path, "model_type", model.ErrMissing)
	default:
		return m, fmt.Errorf("%s: config.json: model_type %q: %w", path, c.ModelType, model.ErrUnsupported)
	}
	return m, nil
}

func (r *ropeScaling) toScaling(path string) (model.RopeScaling, error) {
	var s model.RopeScaling
	if r == nil {
		return s, nil
	}
	typ := r.RopeType
	if typ == "" {
		typ = r.Type
	}
	switch typ {
	case "", "default":
		return s, nil
	case "linear", "llama3":
		s.Type = typ
	default:
		return s, fmt.Errorf("%s: config.json: rope scaling %q: %w", path, typ, model.ErrUnsupported)
	}
	s.Factor = get(r.Factor, 0)
	if !(s.Factor > 0) {
		return s, fmt.Errorf("%s: config.json: rope scaling factor %v: %w", path, s.Factor, model.ErrFormat)
	}
	if typ == "llama3" {
		s.LowFreqFactor = get(r.LowFreqFactor, 1)
		s.HighFreqFactor = get(r.HighFreqFactor, 4)
		s.OriginalContext = get(r.OriginalMaxPositionEmbeddings, 8192)
		if !(s.HighFreqFactor > s.LowFreqFactor && s.LowFreqFactor > 0) || s.OriginalContext <= 0 {
			return s, fmt.Errorf("%s: config.json: llama3 rope scaling %+v: %w", path, s, model.ErrFormat)
		}
	}
	return s, nil
}

// fromConfig is the inverse of toConfig, for writing.
func fromConfig(m *model.Config, dtype string, qkvBias bool) (*config, error) {
	c := &config{VocabSize: &m.VocabSize, TieWordEmbeddings: &m.TiedEmbeddings, TorchDType: dtype}
	switch m.Arch {
	case model.ArchLlama:
		c.ModelType, c.Architectures = "llama", []string{"LlamaForCausalLM"}
		if qkvBias {
			c.ModelType, c.Architectures = "qwen2", []string{"Qwen2ForCausalLM"}
		}
		if m.QKNorm {
			c.ModelType, c.Architectures = "qwen3", []string{"Qwen3ForCausalLM"}
		}
		eps := float64(m.NormEps)
		theta := m.RopeTheta
		c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers = &m.Dim, &m.Hidden, &m.Layers
		c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim = &m.Heads, &m.KVHeads, &m.HeadDim
		c.MaxPositionEmbeddings, c.RMSNormEps, c.RopeTheta = &m.Context, &eps, &theta
		c.HiddenAct = "silu"
		if m.RopeDims != m.HeadDim {
			f := float64(m.RopeDims) / float64(m.HeadDim)
			c.PartialRotaryFactor = &f
		}
		if s := m.RopeScaling; s.Type != "" {
			c.RopeScaling = &ropeScaling{RopeType: s.Type, Factor: &s.Factor}
			if s.Type == "llama3" {
				c.RopeScaling.LowFreqFactor, c.RopeScaling.HighFreqFactor = &s.LowFreqFactor, &s.HighFreqFactor
				c.RopeScaling.OriginalMaxPositionEmbeddings = &s.OriginalContext
			}
		}
	case model.ArchGPT2:
		if !m.TiedEmbeddings {
			return nil, fmt.Errorf("gpt2 with an untied output projection: %w", model.ErrUnsupported)
		}
		eps := float64(m.NormEps)
		c.ModelType, c.Architectures = "gpt2", []string{"GPT2LMHeadModel"}
		c.NEmbd, c.NLayer, c.NHead, c.NPositions, c.NCtx, c.NInner = &m.Dim, &m.Layers, &m.Heads, &m.Context, &m.Context, &m.Hidden
		c.LayerNormEpsilon, c.ActivationFunction = &eps, "gelu_new"
	default:
		return nil, fmt.Errorf("architecture %q: %w", m.Arch, model.ErrUnsupported)
	}
	return c, nil
}
