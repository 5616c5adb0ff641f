// Package loader opens a model from whatever the user points at: a GGUF
// file or a Hugging Face model directory (config.json beside safetensors
// weights). It is the one entry point the command line and the generation
// code use; the format packages (gguf, hf) do the work.
package loader

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/loomllm/loom/model"
	"github.com/loomllm/loom/model/gguf"
	"github.com/loomllm/loom/model/hf"
)

// Open loads the model at path: a GGUF file (recognised by its magic, not
// its name) or a directory holding config.json. Close the Model to release
// its file mappings.
func Open(path string) (*model.Model, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		if _, err := os.Stat(filepath.Join(path, "config.json")); err != nil {
			return nil, fmt.Errorf("%s: a directory without config.json is not a Hugging Face model: %w", path, model.ErrFormat)
		}
		return hf.Load(path)
	}
	if ok, err := isGGUF(path); err != nil {
		return nil, err
	} else if !ok {
		return nil, fmt.Errorf("%s: not a GGUF file or a model directory: %w", path, model.ErrFormat)
	}
	return gguf.Load(path)
}

// isGGUF reports whether the file at path starts with the GGUF magic.
func isGGUF(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	var magic [4]byte
	if _, err := io.ReadFull(f, magic[:]); err != nil {
		return false, nil
	}
	return string(magic[:]) == gguf.Magic, nil
}
