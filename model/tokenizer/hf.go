package tokenizer

import (
	"fmt"

	"github.com/loomllm/loom/model"
)

func newHF(spec *model.TokenizerSpec) (*Tokenizer, error) {
	return nil, fmt.Errorf("tokenizer.json: %w", model.ErrUnsupported)
}
