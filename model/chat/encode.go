package chat

import (
	"errors"

	"github.com/loomllm/loom/model/tokenizer"
)

// ErrEmpty reports a conversation that renders to no tokens.
var ErrEmpty = errors.New("chat: the rendered prompt is empty")

// Encode renders messages with t and tokenizes the text as a chat prompt:
// special tokens written by the template are parsed as such, and the
// tokenizer's BOS is put first where the model wants one and the template
// did not write it. opt.BOS and opt.EOS default to the texts of tok's BOS
// and EOS tokens.
func Encode(t *Template, tok *tokenizer.Tokenizer, messages []Message, opt Options) ([]int32, error) {
	ids, _, err := EncodeText(t, tok, messages, opt)
	return ids, err
}

// EncodeText is Encode that also returns the rendered text.
func EncodeText(t *Template, tok *tokenizer.Tokenizer, messages []Message, opt Options) ([]int32, string, error) {
	if id := tok.BOS(); opt.BOS == "" && id >= 0 {
		opt.BOS = tok.Piece(id)
	}
	if id := tok.EOS(); opt.EOS == "" && id >= 0 {
		opt.EOS = tok.Piece(id)
	}
	text, err := t.Render(messages, opt)
	if err != nil {
		return nil, "", err
	}
	ids := tok.Encode(text, tokenizer.EncodeOptions{ParseSpecial: true})
	if bos := tok.BOS(); bos >= 0 && tok.AddBOS() && (len(ids) == 0 || ids[0] != bos) {
		ids = append([]int32{bos}, ids...)
	}
	if len(ids) == 0 {
		return nil, text, ErrEmpty
	}
	return ids, text, nil
}
