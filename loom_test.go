package loom

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/loomllm/loom/internal/testdata"
	"github.com/loomllm/loom/runtime/constrain"
	"github.com/loomllm/loom/runtime/generate"
)

func loadStories(t *testing.T, opt Options) *Model {
	m, err := Load(testdata.Path(t, "models/stories260K.gguf"), opt)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, m.Close()) })
	return m
}

// TestGolden: the Go API reproduces llama2.c's published output.
func TestGolden(t *testing.T) {
	want, err := os.ReadFile(testdata.Path(t, "golden/stories260K_greedy_n200.txt"))
	require.NoError(t, err)
	raw, err := os.ReadFile(testdata.Path(t, "golden/stories260K_greedy_n200_ids.txt"))
	require.NoError(t, err)
	m := loadStories(t, Options{Device: "cpu"})
	var ids []string
	var text strings.Builder
	for tok, err := range m.Generate(context.Background(), "", GenerateOptions{MaxTokens: 200}) {
		require.NoError(t, err)
		ids = append(ids, strconv.Itoa(int(tok.ID)))
		text.WriteString(tok.Text)
	}
	require.Equal(t, string(want), text.String())
	require.Equal(t, strings.Fields(string(raw)), ids)

	info := m.Info()
	require.Equal(t, "llama", info.Arch)
	require.Equal(t, 2048, info.Context, "the file says 2048")
	require.Equal(t, 512, info.Vocab)
	require.False(t, info.Demo)
}

func TestCancelAndBreak(t *testing.T) {
	m := loadStories(t, Options{Device: "cpu"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := 0
	var last error
	for _, err := range m.Generate(ctx, "Once upon a time", GenerateOptions{MaxTokens: 100}) {
		if err != nil {
			last = err
			break
		}
		if n++; n == 5 {
			cancel()
		}
	}
	require.ErrorIs(t, last, context.Canceled)
	require.Equal(t, 5, n)

	n = 0
	for range m.Generate(context.Background(), "Once upon a time", GenerateOptions{MaxTokens: 100}) {
		if n++; n == 3 {
			break
		}
	}
	require.Equal(t, 3, n)
	// The model is free again, and greedy output is the same every time.
	a, err := m.GenerateText(context.Background(), "Once upon a time", GenerateOptions{MaxTokens: 20})
	require.NoError(t, err)
	b, err := m.GenerateText(context.Background(), "Once upon a time", GenerateOptions{MaxTokens: 20})
	require.NoError(t, err)
	require.Equal(t, a, b)
	require.NotEmpty(t, a)
}

func TestOptions(t *testing.T) {
	path := testdata.Path(t, "models/stories260K.gguf")
	for _, opt := range []Options{{Device: "tpu"}, {Device: "cuda:x"}, {Threads: -1}, {WeightType: "q5_k"}} {
		_, err := Load(path, opt)
		require.ErrorIs(t, err, ErrOptions, "%+v", opt)
	}
	_, err := Load(path+".missing", Options{})
	require.Error(t, err)

	m := loadStories(t, Options{Device: "cpu", Context: 32})
	_, err = m.GenerateText(context.Background(), "", GenerateOptions{MaxTokens: 40})
	require.Error(t, err, "the prompt plus 40 tokens do not fit 32 positions")
	_, err = m.GenerateText(context.Background(), "", GenerateOptions{Temperature: -1})
	require.Error(t, err)
}

// TestQ8AndBeams: weights converted to Q8_0 still tell the story, and
// beam search runs through the API.
func TestQ8AndBeams(t *testing.T) {
	m := loadStories(t, Options{Device: "cpu", WeightType: "q8_0", Sequences: 4})
	text, err := m.GenerateText(context.Background(), "Once upon a time", GenerateOptions{MaxTokens: 30})
	require.NoError(t, err)
	require.Contains(t, text, "Lily")
	var st Stats
	ids, err := m.Encode("Once upon a time")
	require.NoError(t, err)
	st, err = m.Stream(context.Background(), ids, GenerateOptions{MaxTokens: 20, Beams: 4}, func(Token) bool { return true })
	require.NoError(t, err)
	require.Equal(t, 20, st.Tokens)
	require.Equal(t, "length", st.Finish)
}

// TestPrefixCache: with Options.PrefixCache a second generation whose
// prompt repeats the first's prompt and output skips those positions and
// gives the text it gives without the cache.
func TestPrefixCache(t *testing.T) {
	prompt := "Once upon a time, there was a little girl named Lily. She loved to play outside in the sun."
	opt := GenerateOptions{MaxTokens: 24}
	run := func(m *Model, p string) (string, Stats) {
		ids, err := m.Encode(p)
		require.NoError(t, err)
		var text strings.Builder
		st, err := m.Stream(context.Background(), ids, opt, func(tok Token) bool {
			text.WriteString(tok.Text)
			return true
		})
		require.NoError(t, err)
		return text.String(), st
	}
	plain := loadStories(t, Options{Device: "cpu"})
	cached := loadStories(t, Options{Device: "cpu", PrefixCache: true})
	first, st := run(cached, prompt)
	require.Zero(t, st.CachedTokens)
	want, _ := run(plain, prompt)
	require.Equal(t, want, first)

	next := prompt + first + " Then"
	got, st := run(cached, next)
	require.Greater(t, st.CachedTokens, 32, "the first prompt and its output")
	want, _ = run(plain, next)
	require.Equal(t, want, got)
}

// TestJSONOption: GenerateOptions.JSON keeps the output a JSON object
// prefix, and a greedy run repeats exactly.
func TestJSONOption(t *testing.T) {
	m := loadStories(t, Options{Device: "cpu"})
	gen := func() string {
		text, err := m.GenerateText(context.Background(), "Once upon a time", GenerateOptions{MaxTokens: 40, JSON: true})
		require.NoError(t, err)
		return text
	}
	text := gen()
	require.True(t, strings.HasPrefix(text, "{"), "%q", text)
	var j constrain.JSON
	for i := range len(text) {
		require.True(t, j.Feed(text[i]), "%q at %d", text, i)
	}
	require.Equal(t, text, gen())
}

// TestJSONSchemaOption: GenerateOptions.JSONSchema makes the output an
// instance of the schema, greedy runs repeat, and a schema loom cannot
// enforce is an error naming the keyword.
func TestJSONSchemaOption(t *testing.T) {
	m := loadStories(t, Options{Device: "cpu"})
	schema := []byte(`{"type": "object", "properties": {"hero": {"type": "string", "maxLength": 10},
		"happy": {"type": "boolean"}, "year": {"type": "integer"}}, "required": ["hero", "happy", "year"]}`)
	gen := func() (string, Stats) {
		var text strings.Builder
		ids, err := m.Encode("Once upon a time")
		require.NoError(t, err)
		st, err := m.Stream(context.Background(), ids, GenerateOptions{MaxTokens: 200, JSONSchema: schema}, func(tk Token) bool {
			text.WriteString(tk.Text)
			return true
		})
		require.NoError(t, err)
		return text.String(), st
	}
	text, st := gen()
	require.Equal(t, "stop", st.Finish, "%q", text)
	var v struct {
		Hero  *string `json:"hero"`
		Happy *bool   `json:"happy"`
		Year  *int    `json:"year"`
	}
	d := json.NewDecoder(strings.NewReader(text))
	d.DisallowUnknownFields()
	require.NoError(t, d.Decode(&v), "%q", text)
	require.True(t, v.Hero != nil && v.Happy != nil && v.Year != nil, "%q", text)
	require.LessOrEqual(t, utf8.RuneCountInString(*v.Hero), 10)
	again, _ := gen()
	require.Equal(t, text, again)

	_, err := m.GenerateText(context.Background(), "x", GenerateOptions{JSONSchema: []byte(`{"type": "object", "patternProperties": {}}`)})
	require.ErrorIs(t, err, constrain.ErrSchema)
	require.ErrorContains(t, err, "patternProperties")
}

// TestDraftModel: speculative decoding through the Go API, stories260K
// drafting for itself: the golden output, most tokens made by accepted
// drafts; a draft model of another vocabulary is refused.
func TestDraftModel(t *testing.T) {
	want, err := os.ReadFile(testdata.Path(t, "golden/stories260K_greedy_n200.txt"))
	require.NoError(t, err)
	draft := loadStories(t, Options{Device: "cpu", Threads: 1})
	m := loadStories(t, Options{Device: "cpu", PromptLookup: 4, Draft: draft})
	ids, err := m.Encode("")
	require.NoError(t, err)
	var text strings.Builder
	st, err := m.Stream(context.Background(), ids, GenerateOptions{MaxTokens: 200}, func(tk Token) bool {
		text.WriteString(tk.Text)
		return true
	})
	require.NoError(t, err)
	require.Equal(t, string(want), text.String())
	require.Equal(t, st.Drafted, st.Accepted)
	require.Greater(t, st.Accepted, 150)

	demo, err := Demo(Options{Device: "cpu"})
	require.NoError(t, err)
	defer demo.Close()
	_, err = Load(testdata.Path(t, "models/stories260K.gguf"), Options{Device: "cpu", PromptLookup: 4, Draft: demo})
	require.ErrorIs(t, err, ErrOptions)
	_, err = Load(testdata.Path(t, "models/stories260K.gguf"), Options{Device: "cpu", Draft: draft})
	require.ErrorIs(t, err, ErrOptions, "a draft model without PromptLookup")
}

// TestChat: EncodeChat renders the conversation with the model's template
// (ChatML for stories260K, which has none), assistant turn open, and Chat
// generates from exactly those ids.
func TestChat(t *testing.T) {
	m := loadStories(t, Options{Device: "cpu"})
	msgs := []Message{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "Tell me a story"}}
	ids, err := m.EncodeChat(msgs, nil)
	require.NoError(t, err)
	text := m.Tokenizer().Decode(ids)
	require.Contains(t, text, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nTell me a story<|im_end|>\n")
	require.True(t, strings.HasSuffix(text, "<|im_start|>assistant\n"), "%q", text)

	opt := GenerateOptions{MaxTokens: 30}
	var want strings.Builder
	_, err = m.Stream(context.Background(), ids, opt, func(tk Token) bool { want.WriteString(tk.Text); return true })
	require.NoError(t, err)
	var got strings.Builder
	for tk, err := range m.Chat(context.Background(), msgs, opt) {
		require.NoError(t, err)
		got.WriteString(tk.Text)
	}
	require.Equal(t, want.String(), got.String())
	require.NotEmpty(t, got.String())

	_, err = m.EncodeChat([]Message{{Role: "user", Content: "x"}}, map[string]any{"unused": true})
	require.NoError(t, err)
}

// TestEmbed: Model.Embed gives the server's vector (the same pooling of
// the same engine), unit length; a model that declares no pooling needs
// one named.
func TestEmbed(t *testing.T) {
	m := loadStories(t, Options{Device: "cpu"})
	v, err := m.Embed(context.Background(), "Once upon a time", "mean")
	require.NoError(t, err)
	require.Len(t, v, m.desc.Config.Dim)
	var n float64
	for _, x := range v {
		n += float64(x) * float64(x)
	}
	require.InDelta(t, 1, n, 1e-5)
	last, err := m.Embed(context.Background(), "Once upon a time", "last")
	require.NoError(t, err)
	require.NotEqual(t, v, last)
	ids, err := m.Encode("Once upon a time")
	require.NoError(t, err)
	seq := m.eng.Cache().NewSeq()
	defer seq.Free()
	jobs := []generate.Job{{Seq: seq, Tokens: ids, Want: generate.WantHidden, Outs: 1}}
	require.NoError(t, m.eng.Step(jobs))
	n = 0
	for _, x := range jobs[0].Hidden {
		n += float64(x) * float64(x)
	}
	for i, x := range jobs[0].Hidden {
		require.InDelta(t, float64(x)/math.Sqrt(n), last[i], 1e-6)
	}
	_, err = m.Embed(context.Background(), "x", "")
	require.ErrorIs(t, err, ErrOptions)
	_, err = m.Embed(context.Background(), "x", "max")
	require.Error(t, err)
}
