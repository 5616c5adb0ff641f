package loom

import (
	"context"
	"fmt"
	"iter"

	"github.com/loomllm/loom/model/chat"
	"github.com/loomllm/loom/runtime/generate"
)

// Message is one turn of a conversation: Role "system", "user",
// "assistant" or "tool", and its Content.
type Message = chat.Message

// EncodeChat renders a conversation with the model's chat template (ChatML
// when it has none), opening the assistant's turn, and returns the token
// ids to generate the reply from (see Stream); special tokens the template
// writes are parsed as such, those in the messages are not. vars are extra
// template variables, such as {"enable_thinking": false} for Qwen3 (nil
// for none).
func (m *Model) EncodeChat(messages []Message, vars map[string]any) ([]int32, error) {
	if m.tok == nil {
		return nil, fmt.Errorf("loom: %s: %w", m.desc.Path, ErrNoTokenizer)
	}
	m.chatOnce.Do(func() {
		src := m.desc.Tokenizer.ChatTemplate
		if src == "" {
			src = chat.ChatML
		}
		if m.chat, m.chatErr = chat.Parse(src); m.chatErr != nil {
			m.chatErr = fmt.Errorf("loom: %s: the chat template: %w", m.desc.Path, m.chatErr)
		}
	})
	if m.chatErr != nil {
		return nil, m.chatErr
	}
	ids, err := chat.Encode(m.chat, m.tok, messages, chat.Options{AddGenerationPrompt: true, Vars: vars})
	if err != nil {
		return nil, fmt.Errorf("loom: rendering the conversation: %w", err)
	}
	return ids, nil
}

// Chat returns an iterator over the tokens of the assistant's reply to
// messages (rendered by EncodeChat without extra variables); it ends at
// the model's end-of-turn token, like Generate.
func (m *Model) Chat(ctx context.Context, messages []Message, opt GenerateOptions) iter.Seq2[Token, error] {
	return func(yield func(Token, error) bool) {
		ids, err := m.EncodeChat(messages, nil)
		if err != nil {
			yield(Token{ID: -1}, err)
			return
		}
		m.streamSeq(ctx, ids, opt, yield)
	}
}

// Embed returns the embedding of text: the final hidden states of its
// tokens (Encode's, BOS included where the model wants one) pooled as
// pooling says ("mean", "last" or "cls"; "" for the pooling the model file
// declares) and scaled to unit length.
func (m *Model) Embed(ctx context.Context, text string, pooling string) ([]float32, error) {
	if pooling == "" {
		if pooling = m.desc.Config.Pooling; pooling == "" {
			return nil, fmt.Errorf("loom: %w: %s declares no pooling for embeddings; name one (mean, last or cls)", ErrOptions, m.desc.Path)
		}
	}
	ids, err := m.Encode(text)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.eng == nil {
		return nil, fmt.Errorf("loom: model is closed")
	}
	v, err := generate.Embed(ctx, m.eng, ids, pooling)
	if err != nil {
		return nil, fmt.Errorf("loom: %w", err)
	}
	return v, nil
}
