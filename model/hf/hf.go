// Package hf loads Hugging Face model directories: config.json, the
// weights in model.safetensors or in shards listed by
// model.safetensors.index.json, and the tokenizer files (tokenizer.json,
// tokenizer_config.json, generation_config.json) where present. It also
// writes such directories (config.json + model.safetensors), so loom's
// synthetic models can be checked against transformers.
//
// Load produces the same description gguf.Load does for the converted
// file, with these differences, each stated in model.Config:
//
//   - Q/K rows stay in Hugging Face's order, so Config.RopeNeoX is set for
//     every llama-family model (GGUF llama files hold them permuted for
//     the interleaved layout; the backends' RoPE supports both layouts, so
//     no permutation is done at load).
//   - One-dimensional tensors (norm weights, biases) are widened to F32, as
//     GGUF converters do, so the model code sees the same types.
//   - GPT-2's Conv1D weights, stored [in, out], are transposed to the
//     [out, in] layout of every other weight (a copy at load).
//
// Other weights share the memory-mapped files; only F32, F16 and BF16
// tensors are supported. The raw tokenizer.json is kept in
// TokenizerSpec.HFJSON for the tokenizer package, and its vocabulary and
// merges are also decoded into Tokens, Types and Merges.
package hf

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/loomllm/loom/model"
	"github.com/loomllm/loom/model/gguf"
	"github.com/loomllm/loom/model/safetensors"
	"github.com/loomllm/loom/runtime/backend"
	"github.com/loomllm/loom/runtime/quant"
)

// File names in a model directory.
const (
	ConfigFile           = "config.json"
	WeightsFile          = "model.safetensors"
	IndexFile            = "model.safetensors.index.json"
	TokenizerFile        = "tokenizer.json"
	TokenizerConfigFile  = "tokenizer_config.json"
	GenerationConfigFile = "generation_config.json"
)

// PoolingFile is sentence-transformers' pooling configuration.
const PoolingFile = "1_Pooling/config.json"

// readPooling returns the pooling PoolingFile names ("" without one).
func readPooling(dir string) (string, error) {
	var p map[string]any
	path := filepath.Join(dir, PoolingFile)
	if ok, err := readJSON(path, &p); err != nil || !ok {
		return "", err
	}
	var modes []string
	for k, v := range p {
		if on, _ := v.(bool); on && strings.HasPrefix(k, "pooling_mode_") {
			modes = append(modes, strings.TrimPrefix(k, "pooling_mode_"))
		}
	}
	if len(modes) != 1 {
		return "", fmt.Errorf("%s: %d pooling modes set (want one): %w", path, len(modes), model.ErrFormat)
	}
	switch m := modes[0]; m {
	case "mean_tokens":
		return "mean", nil
	case "lasttoken":
		return "last", nil
	case "cls_token":
		return "cls", nil
	default:
		return m, nil
	}
}

// maxJSON bounds the size of the JSON files read whole (tokenizer.json of
// large vocabularies is tens of megabytes).
const maxJSON = 256 << 20

// readJSON decodes the JSON file at path into v; ok is false when the
// file does not exist.
func readJSON(path string, v any) (ok bool, err error) {
	b, err := readFile(path)
	if err != nil || b == nil {
		return false, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return true, fmt.Errorf("%s: %v: %w", path, err, model.ErrFormat)
	}
	return true, nil
}

// readFile reads a file of at most maxJSON bytes; it returns nil, nil when
// the file does not exist.
func readFile(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if st.Size() > maxJSON {
		return nil, fmt.Errorf("%s: %d bytes exceeds the %d-byte limit: %w", path, st.Size(), maxJSON, model.ErrFormat)
	}
	return os.ReadFile(path)
}

// Load loads the Hugging Face model directory dir. Close the Model to
// unmap its weight files.
func Load(dir string) (_ *model.Model, err error) {
	var cfg config
	cfgPath := filepath.Join(dir, ConfigFile)
	if ok, err := readJSON(cfgPath, &cfg); err != nil {
		return nil, err
	} else if !ok {
		return nil, fmt.Errorf("%s: %w", cfgPath, os.ErrNotExist)
	}
	m := &model.Model{Path: dir, Tensors: map[string]*model.Tensor{}, Meta: map[string]any{}}
	if m.Config, err = cfg.toConfig(cfgPath, filepath.Base(filepath.Clean(dir))); err != nil {
		return nil, err
	}
	m.Meta["general.architecture"] = cfg.ModelType
	if cfg.TorchDType != "" {
		m.Meta["hf.torch_dtype"] = cfg.TorchDType
	}
	shards, err := openShards(dir)
	if err != nil {
		return nil, err
	}
	closeAll := func() error {
		var first error
		for _, s := range shards {
			if err := s.Close(); err != nil && first == nil {
				first = err
			}
		}
		return first
	}
	defer func() {
		if err != nil {
			closeAll()
		}
	}()
	for _, s := range shards {
		for i := range s.Tensors {
			ti := &s.Tensors[i]
			name, skip, known := GGUFName(m.Config.Arch, ti.Name)
			if skip {
				continue
			}
			if !known {
				name = ti.Name
			}
			if _, dup := m.Tensors[name]; dup {
				return nil, fmt.Errorf("%s: tensor %q (%s) appears twice: %w", s.Path, ti.Name, name, model.ErrFormat)
			}
			t, err := convert(m.Config.Arch, name, s, ti)
			if err != nil {
				return nil, err
			}
			m.Tensors[name] = t
		}
	}
	if m.Config.TiedEmbeddings {
		delete(m.Tensors, "output.weight")
	}
	if err := gguf.Check(m); err != nil {
		return nil, err
	}
	if m.Tokenizer, err = loadTokenizer(dir, &cfg); err != nil {
		return nil, err
	}
	if m.Config.Pooling, err = readPooling(dir); err != nil {
		return nil, err
	}
	if n := len(m.Tokenizer.Tokens); n > m.Config.VocabSize {
		return nil, fmt.Errorf("%s: %d tokens for a vocabulary of %d: %w", dir, n, m.Config.VocabSize, model.ErrFormat)
	}
	m.SetCloser(closeAll)
	return m, nil
}

// openShards opens model.safetensors, or every shard the index lists.
func openShards(dir string) ([]*safetensors.File, error) {
	single := filepath.Join(dir, WeightsFile)
	if _, err := os.Stat(single); err == nil {
		f, err := safetensors.Open(single)
		if err != nil {
			return nil, err
		}
		return []*safetensors.File{f}, nil
	}
	idxPath := filepath.Join(dir, IndexFile)
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	ok, err := readJSON(idxPath, &idx)
	if err != nil {
		return nil, err
	}
	if !ok {
		if _, err := os.Stat(filepath.Join(dir, "pytorch_model.bin")); err == nil {
			return nil, fmt.Errorf("%s: only PyTorch pickle weights (pytorch_model.bin); loom reads safetensors: %w", dir, model.ErrUnsupported)
		}
		return nil, fmt.Errorf("%s: no %s or %s: %w", dir, WeightsFile, IndexFile, model.ErrMissing)
	}
	names := map[string]bool{}
	for tensor, file := range idx.WeightMap {
		if file == "" || filepath.Base(file) != file || file == "." || file == ".." {
			return nil, fmt.Errorf("%s: tensor %q maps to %q, not a file in the directory: %w", idxPath, tensor, file, model.ErrFormat)
		}
		names[file] = true
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%s: empty weight_map: %w", idxPath, model.ErrFormat)
	}
	files := make([]string, 0, len(names))
	for n := range names {
		files = append(files, n)
	}
	sort.Strings(files)
	var shards []*safetensors.File
	byFile := map[string]*safetensors.File{}
	for _, n := range files {
		f, err := safetensors.Open(filepath.Join(dir, n))
		if err != nil {
			for _, s := range shards {
				s.Close()
			}
			return nil, err
		}
		shards = append(shards, f)
		byFile[n] = f
	}
	for tensor, file := range idx.WeightMap {
		if _, ok := byFile[file].Tensor(tensor); !ok {
			for _, s := range shards {
				s.Close()
			}
			return nil, fmt.Errorf("%s: tensor %q is not in %s: %w", idxPath, tensor, file, model.ErrMissing)
		}
	}
	return shards, nil
}

var dtypes = map[string]backend.DType{"F32": backend.F32, "F16": backend.F16, "BF16": backend.BF16}

// conv1D lists GPT-2's weights stored transposed ([in, out]).
var conv1D = map[string]bool{"attn_qkv.weight": true, "attn_output.weight": true, "ffn_up.weight": true, "ffn_down.weight": true}

// convert makes the model tensor named name from a safetensors tensor.
func convert(arch, name string, s *safetensors.File, ti *safetensors.TensorInfo) (*model.Tensor, error) {
	dt, ok := dtypes[ti.DType]
	if !ok {
		return nil, fmt.Errorf("%s: tensor %q has dtype %s (loom reads F32, F16, BF16): %w", s.Path, ti.Name, ti.DType, model.ErrUnsupported)
	}
	t := &model.Tensor{Name: name, DType: dt}
	switch len(ti.Shape) {
	case 1:
		t.Rows, t.Cols = 1, int(ti.Shape[0])
	case 2:
		t.Rows, t.Cols = int(ti.Shape[0]), int(ti.Shape[1])
	default:
		return nil, fmt.Errorf("%s: tensor %q has shape %v, want 1 or 2 dimensions: %w", s.Path, ti.Name, ti.Shape, model.ErrFormat)
	}
	if t.Rows == 0 || t.Cols == 0 {
		return nil, fmt.Errorf("%s: tensor %q is empty (%v): %w", s.Path, ti.Name, ti.Shape, model.ErrFormat)
	}
	es := int64(safetensors.DTypeSize(ti.DType))
	t.Data = s.Data(ti)
	if (s.DataOffset+ti.Begin)%es != 0 { // mapped files are page-aligned
		t.Data = append([]byte(nil), t.Data...)
	}
	if arch == model.ArchGPT2 {
		if _, rest, ok := splitLayer(name, "blk."); ok && conv1D[rest] {
			t.Rows, t.Cols = t.Cols, t.Rows
			t.Data = transpose(t.Data, t.Cols, t.Rows, int(es))
		}
	}
	if t.Rows == 1 && dt != backend.F32 {
		t.Data, t.DType = widen(dt, t.Data), backend.F32
	}
	return t, nil
}

// transpose returns the rows × cols matrix of es-byte elements in src
// transposed (cols × rows).
func transpose(src []byte, rows, cols, es int) []byte {
	dst := make([]byte, len(src))
	for r := 0; r < rows; r++ {
		for c := 0; c < cols; c++ {
			copy(dst[(c*rows+r)*es:(c*rows+r+1)*es], src[(r*cols+c)*es:(r*cols+c+1)*es])
		}
	}
	return dst
}

// widen converts F16 or BF16 bytes to F32 bytes.
func widen(dt backend.DType, src []byte) []byte {
	out := make([]float32, len(src)/2)
	quant.Dequantize(dt, out, src)
	return quant.F32Bytes(out) // the bytes keep out alive
}
