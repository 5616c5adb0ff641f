package hf

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/loomllm/loom/model"
	"github.com/loomllm/loom/model/gguf"
	"github.com/loomllm/loom/model/safetensors"
	"github.com/loomllm/loom/runtime/backend"
)

var stDTypes = map[backend.DType]string{backend.F32: "F32", backend.F16: "F16", backend.BF16: "BF16"}
var torchDTypes = map[backend.DType]string{backend.F32: "float32", backend.F16: "float16", backend.BF16: "bfloat16"}

// Write writes m into dir (created if needed) as a Hugging Face model
// directory that transformers loads: config.json, model.safetensors,
// generation_config.json, and tokenizer.json when m.Tokenizer.HFJSON is
// set. Llama Q/K rows in the interleaved layout (RopeNeoX false, as GGUF
// stores them) are permuted back to Hugging Face's order; GPT-2's Conv1D
// weights are written transposed, as GPT2LMHeadModel stores them. Only
// F32, F16 and BF16 tensors can be written.
func Write(dir string, m *model.Model) error {
	c := &m.Config
	if c.FusedWeights {
		return fmt.Errorf("%s: writing Phi-3's fused tensors as a Hugging Face directory: %w", dir, model.ErrUnsupported)
	}
	var tensors []safetensors.Tensor
	qkvBias := false
	specs, err := gguf.Tensors(c)
	if err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	for _, s := range specs {
		t, ok := m.Tensors[s.Name]
		if !ok || (s.Name == "output.weight" && c.TiedEmbeddings) {
			continue
		}
		if s.Name == "blk.0.attn_q.bias" {
			qkvBias = true
		}
		st, err := toSafetensors(c, t)
		if err != nil {
			return fmt.Errorf("%s: %w", dir, err)
		}
		tensors = append(tensors, st)
	}
	for name := range m.Tensors {
		if _, ok := HFName(c.Arch, name); !ok && name != "rope_freqs.weight" {
			return fmt.Errorf("%s: tensor %q has no Hugging Face name: %w", dir, name, model.ErrUnsupported)
		}
	}
	dtype := ""
	if e, ok := m.Tensors["token_embd.weight"]; ok {
		dtype = torchDTypes[e.DType]
	}
	cfg, err := fromConfig(c, dtype, qkvBias)
	if err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	tok := &m.Tokenizer
	gen := map[string]int{}
	if tok.BOS >= 0 {
		gen["bos_token_id"] = tok.BOS
		cfg.BOSTokenID, _ = json.Marshal(tok.BOS)
	}
	if tok.EOS >= 0 {
		gen["eos_token_id"] = tok.EOS
		cfg.EOSTokenID, _ = json.Marshal(tok.EOS)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(dir, ConfigFile), cfg); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(dir, GenerationConfigFile), gen); err != nil {
		return err
	}
	if tok.HFJSON != nil {
		if err := os.WriteFile(filepath.Join(dir, TokenizerFile), tok.HFJSON, 0o644); err != nil {
			return err
		}
	}
	f, err := os.Create(filepath.Join(dir, WeightsFile))
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 4<<20)
	if err := safetensors.Write(bw, tensors, map[string]string{"format": "pt"}); err != nil {
		f.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// toSafetensors converts one tensor to its Hugging Face name and layout.
func toSafetensors(c *model.Config, t *model.Tensor) (safetensors.Tensor, error) {
	name, _ := HFName(c.Arch, t.Name)
	dt, ok := stDTypes[t.DType]
	if !ok {
		return safetensors.Tensor{}, fmt.Errorf("tensor %q: %v cannot be stored in safetensors: %w", t.Name, t.DType, model.ErrUnsupported)
	}
	out := safetensors.Tensor{Name: name, DType: dt, Shape: []int64{int64(t.Rows), int64(t.Cols)}, Data: t.Data}
	if t.Rows == 1 {
		out.Shape = []int64{int64(t.Cols)}
	}
	_, rest, _ := splitLayer(t.Name, "blk.")
	switch {
	case c.Arch == model.ArchLlama && !c.RopeNeoX && (rest == "attn_q.weight" || rest == "attn_q.bias" || rest == "attn_k.weight" || rest == "attn_k.bias"):
		heads := c.Heads
		if rest == "attn_k.weight" || rest == "attn_k.bias" {
			heads = c.KVHeads
		}
		var err error
		if out.Data, err = gguf.PermuteQK(t, heads, true); err != nil {
			return out, err
		}
	case c.Arch == model.ArchGPT2 && conv1D[rest]:
		out.Shape = []int64{int64(t.Cols), int64(t.Rows)}
		out.Data = transpose(t.Data, t.Rows, t.Cols, len(t.Data)/(t.Rows*t.Cols))
	}
	return out, nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
