package loom

import (
	"context"
	"fmt"
	"iter"
	"strings"
	"time"

	"github.com/loomllm/loom/model/tokenizer"
	"github.com/loomllm/loom/runtime/constrain"
	"github.com/loomllm/loom/runtime/generate"
	"github.com/loomllm/loom/runtime/sample"
)

// GenerateOptions configures a generation. The zero value generates
// greedily until the context is full or the model ends its text.
type GenerateOptions struct {
	// MaxTokens is the most tokens to generate; 0 means until the context
	// is full. A prompt plus MaxTokens beyond the context is an error.
	MaxTokens int
	// Temperature divides the logits before sampling; 0 is greedy.
	Temperature float32
	// TopK, TopP and MinP truncate the distribution (0: off).
	TopK       int
	TopP, MinP float32
	// RepeatPenalty (1 or 0: off), PresencePenalty and FrequencyPenalty
	// discourage tokens already in the last 64 tokens.
	RepeatPenalty, PresencePenalty, FrequencyPenalty float32
	// LogitBias adds to the logits of token ids (-Inf bans one).
	LogitBias map[int32]float32
	// Seed makes sampling reproducible.
	Seed uint64
	// Stop strings end the text where they appear; they are not emitted.
	Stop []string
	// MinTokens keeps the model's end tokens from being sampled until that
	// many tokens have been generated.
	MinTokens int
	// Beams > 1 runs beam search with that many beams (the model needs
	// Options.Sequences ≥ Beams); LengthPenalty and EarlyStopping tune
	// it (see runtime/generate.Beam).
	Beams         int
	LengthPenalty float64
	EarlyStopping bool
	// JSON constrains the output to a JSON object (OpenAI's JSON mode):
	// only tokens that keep it a JSON prefix are sampled, and the
	// generation ends, with Finish "stop", when the object closes. Beam
	// search ignores it.
	JSON bool
	// JSONSchema, if set, constrains the output to an instance of this
	// JSON Schema (OpenAI's structured outputs; the subset
	// runtime/constrain.Schema describes); the generation ends, with
	// Finish "stop", when the instance is complete. A schema loom cannot
	// enforce is an error wrapping constrain.ErrSchema that names the
	// keyword. It replaces JSON; beam search ignores it.
	JSONSchema []byte
}

// Token is one generated token and the text it completes (which may be
// empty while a multi-byte character or a possible stop string is
// incomplete). ID is -1 for text released at the end.
type Token = generate.Token

// Stats are a generation's counts and times.
type Stats struct {
	PromptTokens int
	CachedTokens int // prompt tokens taken from the prefix cache (Options.PrefixCache)
	Tokens       int
	Prefill      time.Duration // until the first token
	Decode       time.Duration // the rest
	// Finish is why it ended: "end" (the model's end token), "stop" (a
	// stop string), "length" (MaxTokens) or "context" (the context is full).
	Finish string
	// Drafted and Accepted count the draft tokens verified and those the
	// model agreed with (Options.PromptLookup): each accepted draft is a
	// token made without a step of its own.
	Drafted, Accepted int
}

// PrefillRate is prompt tokens per second.
func (s Stats) PrefillRate() float64 { return rate(s.PromptTokens, s.Prefill) }

// DecodeRate is generated tokens per second after the first.
func (s Stats) DecodeRate() float64 { return rate(s.Tokens-1, s.Decode) }

func rate(n int, d time.Duration) float64 {
	if n <= 0 || d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// Encode turns a prompt into the token ids a generation starts from:
// the model's BOS token (where its vocabulary asks for one) followed by
// the text's tokens, as llama2.c does. Special tokens written in the text
// are not parsed. An empty prompt is just BOS.
func (m *Model) Encode(prompt string) ([]int32, error) {
	if m.tok == nil {
		return nil, fmt.Errorf("loom: %s: %w", m.desc.Path, ErrNoTokenizer)
	}
	ids := m.tok.Encode(prompt, tokenizer.EncodeOptions{AddSpecial: true})
	if len(ids) == 0 {
		if m.tok.BOS() < 0 {
			return nil, fmt.Errorf("loom: %w: an empty prompt, and the model has no BOS token to start from", ErrOptions)
		}
		ids = []int32{m.tok.BOS()}
	}
	return ids, nil
}

// Stream generates from prompt token ids (see Encode), calling emit with
// each token as it is produced; emit returns false to stop early. It
// returns when the generation ends, fails, or ctx is cancelled (then
// with ctx's error).
func (m *Model) Stream(ctx context.Context, ids []int32, opt GenerateOptions, emit func(Token) bool) (Stats, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.eng == nil {
		return Stats{}, fmt.Errorf("loom: model is closed")
	}
	if m.tok == nil {
		return Stats{}, fmt.Errorf("loom: %s: %w", m.desc.Path, ErrNoTokenizer)
	}
	gopt := generate.Options{
		MaxTokens: opt.MaxTokens,
		Sampling: sample.Options{Temperature: opt.Temperature, TopK: opt.TopK, TopP: opt.TopP, MinP: opt.MinP,
			RepeatPenalty: opt.RepeatPenalty, PresencePenalty: opt.PresencePenalty, FrequencyPenalty: opt.FrequencyPenalty,
			LogitBias: opt.LogitBias, Seed: opt.Seed},
		Stop:          opt.Stop,
		IsEnd:         m.tok.IsEndOfGeneration,
		MinTokens:     opt.MinTokens,
		NewDecoder:    func() generate.Decoder { return m.tok.NewStream() },
		Beams:         opt.Beams,
		LengthPenalty: opt.LengthPenalty,
		EarlyStopping: opt.EarlyStopping,
		PrefixCache:   m.prefixCache,
		PromptLookup:  m.promptLookup,
	}
	switch {
	case opt.JSONSchema != nil:
		schema, err := constrain.CompileSchema(opt.JSONSchema)
		if err != nil {
			return Stats{}, fmt.Errorf("loom: GenerateOptions.JSONSchema: %w", err)
		}
		vocab := m.vocabulary()
		gopt.NewConstraint = func() generate.Constraint { return constrain.NewSchemaTokens(vocab, schema) }
	case opt.JSON:
		vocab := m.vocabulary()
		gopt.NewConstraint = func() generate.Constraint { return constrain.NewTokens(vocab) }
	}
	if d := m.draft; d != nil && m.promptLookup > 0 {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.eng == nil {
			return Stats{}, fmt.Errorf("loom: the draft model is closed")
		}
		drafter := generate.NewModelDrafter(d.eng)
		defer drafter.Close()
		gopt.Drafter = drafter
	}
	st, err := generate.Generate(ctx, m.eng, ids, gopt, emit)
	return Stats{PromptTokens: st.PromptTokens, CachedTokens: st.CachedTokens, Tokens: st.Tokens, Prefill: st.Prefill,
		Decode: st.Decode, Finish: string(st.Finish), Drafted: st.Drafted, Accepted: st.Accepted}, err
}

// Generate returns an iterator over the tokens generated from prompt.
// The iteration ends with the generation; an error (including the
// context's, when it is cancelled) comes as the last pair. Breaking out
// of the loop stops the generation.
func (m *Model) Generate(ctx context.Context, prompt string, opt GenerateOptions) iter.Seq2[Token, error] {
	return func(yield func(Token, error) bool) {
		ids, err := m.Encode(prompt)
		if err != nil {
			yield(Token{ID: -1}, err)
			return
		}
		m.streamSeq(ctx, ids, opt, yield)
	}
}

// streamSeq runs Stream for an iterator: tokens go to yield, and an
// error (unless yield stopped the generation) as the last pair.
func (m *Model) streamSeq(ctx context.Context, ids []int32, opt GenerateOptions, yield func(Token, error) bool) {
	stopped := false
	_, err := m.Stream(ctx, ids, opt, func(t Token) bool {
		if !yield(t, nil) {
			stopped = true
			return false
		}
		return true
	})
	if err != nil && !stopped {
		yield(Token{ID: -1}, err)
	}
}

// GenerateText generates from prompt and returns the whole text.
func (m *Model) GenerateText(ctx context.Context, prompt string, opt GenerateOptions) (string, error) {
	var b strings.Builder
	for t, err := range m.Generate(ctx, prompt, opt) {
		if err != nil {
			return b.String(), err
		}
		b.WriteString(t.Text)
	}
	return b.String(), nil
}

// vocabulary returns the model's vocabulary as a trie for the JSON
// constraints, built on first use.
func (m *Model) vocabulary() *constrain.Vocab {
	m.vocabOnce.Do(func() { m.vocab = constrain.NewVocabOf(m.tok) })
	return m.vocab
}
