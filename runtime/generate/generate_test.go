package generate

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"

	"github.com/loomllm/loom/cpu"
	"github.com/loomllm/loom/internal/testdata"
	"github.com/loomllm/loom/model"
	"github.com/loomllm/loom/model/arch"
	"github.com/loomllm/loom/model/loader"
	"github.com/loomllm/loom/model/tokenizer"
	"github.com/loomllm/loom/runtime/backend"
	"github.com/loomllm/loom/runtime/constrain"
	"github.com/loomllm/loom/runtime/kvcache"
	"github.com/loomllm/loom/runtime/quant"
	"github.com/loomllm/loom/runtime/sample"
)

// stories is the trained stories260K model on the CPU backend.
type stories struct {
	e    *Engine
	tok  *tokenizer.Tokenizer
	desc *model.Model
}

func loadStories(t testing.TB, opt arch.Options, eopt EngineOptions) *stories {
	path := testdata.Path(t, "models/stories260K.gguf")
	desc, err := loader.Open(path)
	require.NoError(t, err)
	t.Cleanup(func() { desc.Close() })
	tok, err := tokenizer.New(&desc.Tokenizer)
	require.NoError(t, err)
	be := cpu.New(cpu.Options{Threads: 2})
	t.Cleanup(func() { be.Close() })
	m, err := arch.New(be, desc, opt)
	require.NoError(t, err)
	t.Cleanup(m.Close)
	e, err := NewEngine(be, m, eopt)
	require.NoError(t, err)
	t.Cleanup(e.Close)
	return &stories{e: e, tok: tok, desc: desc}
}

func (s *stories) options(maxTokens int) Options {
	return Options{MaxTokens: maxTokens, IsEnd: s.tok.IsEndOfGeneration,
		NewDecoder: func() Decoder { return s.tok.NewStream() }}
}

// run generates and returns the ids and the text.
func (s *stories) run(t testing.TB, prompt []int32, opt Options) ([]int32, string, Stats) {
	var ids []int32
	var text strings.Builder
	st, err := Generate(context.Background(), s.e, prompt, opt, func(tk Token) bool {
		if tk.ID >= 0 {
			ids = append(ids, tk.ID)
		}
		text.WriteString(tk.Text)
		return true
	})
	require.NoError(t, err)
	return ids, text.String(), st
}

func goldenIDs(t *testing.T) []int32 {
	raw, err := os.ReadFile(testdata.Path(t, "golden/stories260K_greedy_n200_ids.txt"))
	require.NoError(t, err)
	var ids []int32
	for _, f := range strings.Fields(string(raw)) {
		v, err := strconv.Atoi(f)
		require.NoError(t, err)
		ids = append(ids, int32(v))
	}
	return ids
}

// TestGolden reproduces llama2.c's 200 greedy steps from BOS byte for
// byte, through the on-device argmax and through host-side sampling.
func TestGolden(t *testing.T) {
	want, err := os.ReadFile(testdata.Path(t, "golden/stories260K_greedy_n200.txt"))
	require.NoError(t, err)
	wantIDs := goldenIDs(t)
	s := loadStories(t, arch.Options{}, EngineOptions{})
	for _, name := range []string{"argmax", "logits"} {
		t.Run(name, func(t *testing.T) {
			opt := s.options(200)
			if name == "logits" { // a no-op bias sends the logits to the host sampler
				opt.Sampling.LogitBias = map[int32]float32{0: 0}
			}
			ids, text, st := s.run(t, []int32{s.tok.BOS()}, opt)
			require.Equal(t, wantIDs, ids)
			require.Equal(t, string(want), text)
			require.Equal(t, FinishLength, st.Finish)
			require.Equal(t, 200, st.Tokens)
		})
	}
}

// TestPrefillChunks: a prompt prefilled as one batch, in chunks and one
// token at a time gives the same continuation.
func TestPrefillChunks(t *testing.T) {
	var results [][]int32
	for _, rows := range []int{64, 5, 1} {
		s := loadStories(t, arch.Options{MaxRows: rows, MaxOut: 1}, EngineOptions{})
		prompt := s.tok.Encode("Once upon a time, a little dog named Max", tokenizer.EncodeOptions{AddSpecial: true})
		require.Greater(t, len(prompt), 5)
		ids, _, _ := s.run(t, prompt, s.options(40))
		results = append(results, ids)
	}
	require.Equal(t, results[0], results[1])
	require.Equal(t, results[0], results[2])
}

// TestBatchedSteps runs several requests through shared steps (as a
// scheduler would, starting them at different times) and checks each
// gets what it gets alone.
func TestBatchedSteps(t *testing.T) {
	s := loadStories(t, arch.Options{MaxRows: 64, MaxOut: 8}, EngineOptions{Blocks: 256})
	prompts := []string{"Once upon a time", "The cat sat", "Lily and Tom went to the park", "One day", "A big red ball"}
	var alone [][]int32
	for _, p := range prompts {
		ids, _, _ := s.run(t, s.tok.Encode(p, tokenizer.EncodeOptions{AddSpecial: true}), s.options(30))
		alone = append(alone, ids)
	}
	var reqs []*Request
	got := make([][]int32, len(prompts))
	for step := 0; ; step++ {
		if step < len(prompts) { // admit one request per step
			r, err := NewRequest(s.e, s.tok.Encode(prompts[step], tokenizer.EncodeOptions{AddSpecial: true}), s.options(30))
			require.NoError(t, err)
			defer r.Close()
			reqs = append(reqs, r)
		}
		var jobs []Job
		var owners []int
		for i, r := range reqs {
			if !r.Done() {
				jobs = append(jobs, r.Job(8))
				owners = append(owners, i)
			}
		}
		if len(jobs) == 0 {
			break
		}
		require.NoError(t, s.e.Step(jobs))
		for k, i := range owners {
			if tk := reqs[i].Advance(&jobs[k]); tk.ID >= 0 {
				got[i] = append(got[i], tk.ID)
			}
		}
	}
	require.Equal(t, alone, got)
}

func TestSeededSampling(t *testing.T) {
	s := loadStories(t, arch.Options{}, EngineOptions{})
	opt := s.options(50)
	opt.Sampling = sample.Options{Temperature: 1, TopP: 0.9, Seed: 42}
	a, _, _ := s.run(t, []int32{s.tok.BOS()}, opt)
	b, _, _ := s.run(t, []int32{s.tok.BOS()}, opt)
	require.Equal(t, a, b)
	opt.Sampling.Seed = 43
	c, _, _ := s.run(t, []int32{s.tok.BOS()}, opt)
	require.NotEqual(t, a, c)
}

func TestStopConditions(t *testing.T) {
	s := loadStories(t, arch.Options{}, EngineOptions{Context: 64})
	bos := []int32{s.tok.BOS()}
	_, full, _ := s.run(t, bos, s.options(60))
	require.Contains(t, full, "Lily")

	// A stop string: neither it nor anything after it is emitted.
	opt := s.options(60)
	opt.Stop = []string{"ily"}
	_, text, st := s.run(t, bos, opt)
	require.Equal(t, FinishStop, st.Finish)
	require.Equal(t, full[:strings.Index(full, "ily")], text)

	// The context fills up: 64 positions, 1 of them the prompt.
	_, _, st = s.run(t, bos, s.options(0))
	require.Equal(t, FinishContext, st.Finish)
	require.Equal(t, 63, st.Tokens)

	// Prompts that cannot fit are errors.
	_, err := NewRequest(s.e, make([]int32, 64), s.options(0))
	require.ErrorIs(t, err, ErrContext)
	_, err = NewRequest(s.e, bos, s.options(64))
	require.ErrorIs(t, err, ErrContext)
	_, err = NewRequest(s.e, []int32{600}, s.options(1))
	require.ErrorIs(t, err, ErrBatch)

	// Cancellation.
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	_, err = Generate(ctx, s.e, bos, s.options(50), func(Token) bool {
		if n++; n == 3 {
			cancel()
		}
		return true
	})
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, 3, n)
	require.Equal(t, s.e.Cache().NumBlocks(), s.e.Cache().FreeBlocks(), "blocks come back")
}

// TestEndToken: generation ends at an end-of-generation id, which is not
// emitted.
func TestEndToken(t *testing.T) {
	s := loadStories(t, arch.Options{}, EngineOptions{})
	bos := []int32{s.tok.BOS()}
	ids, _, _ := s.run(t, bos, s.options(30))
	end := ids[9]
	opt := s.options(30)
	opt.IsEnd = func(id int32) bool { return id == end }
	got, _, st := s.run(t, bos, opt)
	require.Equal(t, FinishEnd, st.Finish)
	require.Equal(t, ids[:9], got)
}

// fakeDecoder decodes token i as pieces[i].
type fakeDecoder []string

func (f fakeDecoder) Next(id int32) string { return f[id] }
func (f fakeDecoder) Flush() string        { return "" }

func TestStopStringAcrossTokens(t *testing.T) {
	pieces := fakeDecoder{"Hel", "lo wo", "rld", "!", " Hello"}
	opt := Options{Stop: []string{"world", "lo!"}, NewDecoder: func() Decoder { return pieces }}
	s := newStopper(opt, nil)
	var out []string
	for _, id := range []int32{0, 1, 2, 3} {
		text, stopped := s.push(id)
		out = append(out, text)
		if stopped {
			break
		}
	}
	require.Equal(t, []string{"He", "llo ", ""}, out, `"l" may start "lo!", "wo" may start "world"`)

	s = newStopper(Options{Stop: []string{"lo!"}, NewDecoder: func() Decoder { return pieces }}, nil)
	var got []string
	for _, id := range []int32{0, 0, 1, 0} {
		text, stopped := s.push(id)
		require.False(t, stopped)
		got = append(got, text)
	}
	require.Equal(t, []string{"He", "lHe", "llo wo", "He"}, got)
	require.Equal(t, "l", s.flush(), "the held tail comes out at the end")
}

// TestBeamSearch: one beam is greedy search, and the best hypothesis of a
// wider search scores exactly what a fresh run of its tokens gives (the
// forked KV blocks hold the right keys and values).
func TestBeamSearch(t *testing.T) {
	s := loadStories(t, arch.Options{MaxOut: 8}, EngineOptions{Blocks: 128})
	prompt := s.tok.Encode("Once upon a time", tokenizer.EncodeOptions{AddSpecial: true})
	greedy, _, _ := s.run(t, prompt, s.options(24))
	opt := s.options(24)
	opt.Beams = 1
	one, _, _ := s.run(t, prompt, opt)
	require.Equal(t, greedy, one)

	opt.Beams, opt.LengthPenalty = 4, 1
	hyps, _, err := beamSearch(context.Background(), s.e, prompt, opt)
	require.NoError(t, err)
	require.Len(t, hyps, 4)
	require.Equal(t, s.e.Cache().NumBlocks(), s.e.Cache().FreeBlocks(), "every beam's blocks come back")

	// Score each hypothesis by teacher forcing on a fresh sequence.
	score := func(ids []int32) float64 {
		seq := s.e.Cache().NewSeq()
		defer seq.Free()
		var sum float64
		jobs := []Job{{Seq: seq, Tokens: prompt, Want: WantLogits}}
		for _, id := range ids {
			require.NoError(t, s.e.Step(jobs))
			sum += float64(jobs[0].Logits[id] - sample.LogSumExp(jobs[0].Logits))
			jobs[0] = Job{Seq: seq, Tokens: []int32{id}, Want: WantLogits}
		}
		return sum / float64(len(ids))
	}
	for i, h := range hyps {
		require.InDelta(t, score(h.ids), h.score, 1e-4, "hypothesis %d", i)
		if i > 0 {
			require.NotEqual(t, hyps[0].ids, h.ids)
			require.GreaterOrEqual(t, hyps[i-1].score, h.score)
		}
	}
	t.Logf("beam scores %.4f %.4f %.4f %.4f, greedy %.4f", hyps[0].score, hyps[1].score, hyps[2].score, hyps[3].score, score(greedy))
	require.GreaterOrEqual(t, hyps[0].score, score(greedy)-1e-6)
}

// TestLogitRows: a prompt chunk asking for the logits after each of its
// tokens gets, row by row, what feeding the tokens one step at a time
// gives; a job's results are its own when other jobs share the step.
func TestLogitRows(t *testing.T) {
	s := loadStories(t, arch.Options{MaxRows: 32, MaxOut: 16}, EngineOptions{Blocks: 64})
	prompt := s.tok.Encode("Once upon a time, there was a little girl", tokenizer.EncodeOptions{AddSpecial: true})
	require.Greater(t, len(prompt), 8)
	c := s.e.Cache()
	one, rows, other := c.NewSeq(), c.NewSeq(), c.NewSeq()
	defer one.Free()
	defer rows.Free()
	defer other.Free()
	vocab := s.tok.VocabSize()
	var want [][]float32
	for _, id := range prompt {
		jobs := []Job{{Seq: one, Tokens: []int32{id}, Want: WantLogits}}
		require.NoError(t, s.e.Step(jobs))
		require.Len(t, jobs[0].Logits, vocab)
		want = append(want, slices.Clone(jobs[0].Logits))
	}
	jobs := []Job{{Seq: other, Tokens: prompt[:3], Want: WantLogits}, {Seq: rows, Tokens: prompt, Want: WantLogits, Outs: len(prompt)}}
	require.NoError(t, s.e.Step(jobs))
	require.Len(t, jobs[1].Logits, len(prompt)*vocab)
	for k := range prompt {
		require.InDeltaSlice(t, want[k], jobs[1].Logits[k*vocab:(k+1)*vocab], 1e-4, "row %d", k)
	}
	require.InDeltaSlice(t, want[2], jobs[0].Logits, 1e-4)
	require.ErrorIs(t, s.e.Step([]Job{{Seq: c.NewSeq(), Tokens: prompt[:2], Outs: 2}}), ErrBatch) // results with WantNone
}

// TestHiddenRows: a job asking for hidden states (WantHidden) gets, for
// each of its tokens, the vector the output matrix turns into that
// token's logits (checked against logits a second sequence gets in the
// same step), and the hidden rows do not disturb the other jobs' results.
func TestHiddenRows(t *testing.T) {
	s := loadStories(t, arch.Options{MaxRows: 32, MaxOut: 24}, EngineOptions{Blocks: 64})
	prompt := s.tok.Encode("Once upon a time, there was", tokenizer.EncodeOptions{AddSpecial: true})
	c := s.e.Cache()
	a, b, d := c.NewSeq(), c.NewSeq(), c.NewSeq()
	defer a.Free()
	defer b.Free()
	defer d.Free()
	jobs := []Job{{Seq: a, Tokens: prompt, Want: WantHidden, Outs: len(prompt)}, {Seq: b, Tokens: prompt, Want: WantLogits, Outs: len(prompt)},
		{Seq: d, Tokens: prompt[:2], Want: WantArgMax}}
	require.NoError(t, s.e.Step(jobs))
	dim, vocab := s.desc.Config.Dim, s.tok.VocabSize()
	require.Len(t, jobs[0].Hidden, len(prompt)*dim)
	require.Len(t, jobs[1].Logits, len(prompt)*vocab)
	out := s.desc.Tensors["output.weight"]
	if out == nil {
		out = s.desc.Tensors["token_embd.weight"]
	}
	w := make([]float32, out.Rows*out.Cols)
	require.NoError(t, quant.Dequantize(out.DType, w, out.Data))
	for k := range prompt {
		h := jobs[0].Hidden[k*dim : (k+1)*dim]
		for v := range vocab {
			var dot float64
			for i, x := range h {
				dot += float64(x) * float64(w[v*dim+i])
			}
			require.InDelta(t, dot, jobs[1].Logits[k*vocab+v], 1e-3, "row %d token %d", k, v)
		}
	}
	alone := []Job{{Seq: c.NewSeq(), Tokens: prompt[:2], Want: WantArgMax}}
	defer alone[0].Seq.Free()
	require.NoError(t, s.e.Step(alone))
	require.Equal(t, alone[0].ID, jobs[2].ID)
}

func TestStepErrors(t *testing.T) {
	s := loadStories(t, arch.Options{MaxRows: 16, MaxOut: 2}, EngineOptions{Context: 64, Blocks: 3, BlockSize: 4})
	c := s.e.Cache()
	a, b := c.NewSeq(), c.NewSeq()
	defer a.Free()
	defer b.Free()
	require.ErrorIs(t, s.e.Step(nil), ErrBatch)
	require.ErrorIs(t, s.e.Step([]Job{{Seq: a}}), ErrBatch)
	require.ErrorIs(t, s.e.Step([]Job{{Seq: a, Tokens: make([]int32, 17)}}), ErrBatch)
	require.ErrorIs(t, s.e.Step([]Job{{Seq: a, Tokens: []int32{1}}, {Seq: a, Tokens: []int32{1}}}), ErrBatch)
	require.ErrorIs(t, s.e.Step([]Job{{Seq: a, Tokens: []int32{-1}}}), backend.ErrIndex)
	// The pool holds 12 positions: the second job cannot grow and the
	// first is rolled back.
	err := s.e.Step([]Job{{Seq: a, Tokens: []int32{1, 2, 3, 4, 5, 6}}, {Seq: b, Tokens: []int32{1, 2, 3, 4, 5, 6, 7}}})
	require.ErrorIs(t, err, kvcache.ErrCacheFull)
	require.Zero(t, a.Len())
	require.Equal(t, 3, c.FreeBlocks())
}

// TestDecodeAllocatesNothing measures a whole decode step on the CPU:
// inputs, forward pass, argmax or logits readback. The backend's scratch
// buffers grow to the longest sequence they have seen, so the steps are
// measured over positions a first pass has already reached.
func TestDecodeAllocatesNothing(t *testing.T) {
	s := loadStories(t, arch.Options{}, EngineOptions{})
	seq := s.e.Cache().NewSeq()
	defer seq.Free()
	for _, want := range []Want{WantArgMax, WantLogits} {
		jobs := []Job{{Seq: seq, Tokens: []int32{1}, Want: want}}
		for range 60 {
			require.NoError(t, s.e.Step(jobs))
		}
		require.NoError(t, seq.Truncate(0))
		allocs := testing.AllocsPerRun(50, func() {
			if err := s.e.Step(jobs); err != nil {
				t.Fatal(err)
			}
		})
		require.Zero(t, allocs, "want %d", want)
		require.NoError(t, seq.Truncate(0))
	}
}

// runcCases are llama2.c run.c's greedy outputs for stories260K with
// prompts (model/testdata/stories260K_runc.json).
type runcCases struct {
	Cases []struct {
		Prompt string  `json:"prompt"`
		Steps  int     `json:"steps"`
		IDs    []int32 `json:"ids"`
		Stdout string  `json:"stdout"`
	} `json:"cases"`
}

// TestMatchesRunC: with prompts, the prompt's tokens (BOS, then the text
// with SentencePiece's leading space) and the greedy continuation are
// run.c's.
func TestMatchesRunC(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "model", "testdata", "stories260K_runc.json"))
	require.NoError(t, err)
	var rc runcCases
	require.NoError(t, json.Unmarshal(raw, &rc))
	require.NotEmpty(t, rc.Cases)
	s := loadStories(t, arch.Options{}, EngineOptions{})
	for _, c := range rc.Cases {
		prompt := s.tok.Encode(c.Prompt, tokenizer.EncodeOptions{AddSpecial: true})
		require.Equal(t, s.tok.BOS(), prompt[0])
		n := len(prompt) - 1 // run.c prints the prompt's tokens after BOS first
		require.Equal(t, c.IDs[:n], prompt[1:], "prompt %q", c.Prompt)
		ids, _, _ := s.run(t, prompt, s.options(c.Steps-n))
		require.Equal(t, c.IDs[n:], ids, "prompt %q", c.Prompt)
	}
}

// hostAlloc is the CPU backend with backend.HostAllocator, counting what
// it hands out.
type hostAlloc struct {
	*cpu.Backend
	live map[*byte]int
}

func (h *hostAlloc) AllocHost(n int) ([]byte, error) {
	b := make([]byte, n)
	h.live[&b[0]] = n
	return b, nil
}

func (h *hostAlloc) FreeHost(b []byte) { delete(h.live, &b[0]) }

// TestHostLogits: with a backend that allocates host memory, the engine
// downloads logits into it (and frees it on Close); the tokens are the
// same as with Go memory.
func TestHostLogits(t *testing.T) {
	desc, err := loader.Open(testdata.Path(t, "models/stories260K.gguf"))
	require.NoError(t, err)
	defer desc.Close()
	h := &hostAlloc{Backend: cpu.New(cpu.Options{Threads: 2}), live: map[*byte]int{}}
	defer h.Close()
	m, err := arch.New(h, desc, arch.Options{MaxOut: 4})
	require.NoError(t, err)
	defer m.Close()
	e, err := NewEngine(h, m, EngineOptions{})
	require.NoError(t, err)
	require.Len(t, h.live, 1)
	for p, n := range h.live {
		require.Equal(t, 4*4*desc.Config.VocabSize, n)
		require.Same(t, p, (*byte)(unsafe.Pointer(&e.logits[0])), "logits live in the backend's memory")
	}
	seq := e.Cache().NewSeq()
	jobs := []Job{{Seq: seq, Tokens: []int32{1, 403, 407}, Want: WantLogits}}
	require.NoError(t, e.Step(jobs))
	got := slices.Clone(jobs[0].Logits)
	seq.Free()
	e.Close()
	require.Empty(t, h.live, "Close frees it")

	ref := loadStories(t, arch.Options{MaxOut: 4}, EngineOptions{})
	rseq := ref.e.Cache().NewSeq()
	defer rseq.Free()
	jobs = []Job{{Seq: rseq, Tokens: []int32{1, 403, 407}, Want: WantLogits}}
	require.NoError(t, ref.e.Step(jobs))
	require.Equal(t, jobs[0].Logits, got)
}

// TestJSONConstraint: under the JSON object constraint every sampled
// generation is a prefix of a JSON object, a whole valid one when it stops
// by itself, and never contains an end token.
func TestJSONConstraint(t *testing.T) {
	s := loadStories(t, arch.Options{}, EngineOptions{})
	texts := make([]string, s.tok.VocabSize())
	for id := range texts {
		texts[id] = s.tok.Text(int32(id))
	}
	v := constrain.NewVocab(texts)
	stops := 0
	for seed := range 20 {
		opt := s.options(300)
		opt.Sampling = sample.Options{Temperature: 1, Seed: uint64(seed)}
		opt.NewConstraint = func() Constraint { return constrain.NewTokens(v) }
		prompt := s.tok.Encode("Once upon a time", tokenizer.EncodeOptions{AddSpecial: true})
		ids, text, st := s.run(t, prompt, opt)
		var j constrain.JSON
		for i := range len(text) {
			require.True(t, j.Feed(text[i]), "seed %d: %q is not a JSON prefix at %d", seed, text, i)
		}
		for _, id := range ids {
			require.False(t, s.tok.IsEndOfGeneration(id))
		}
		if seed < 3 {
			t.Logf("seed %d: %q", seed, text)
		}
		if st.Finish == FinishStop {
			stops++
			require.True(t, json.Valid([]byte(text)), "seed %d: %q", seed, text)
			require.True(t, j.Done())
		} else {
			require.Equal(t, FinishLength, st.Finish)
		}
	}
	t.Logf("%d of 20 generations closed their object within 300 tokens", stops)
}

// evenFive allows only even token ids and is done after five tokens.
type evenFive struct{ n int }

func (e *evenFive) Allow(allow []bool) int {
	for i := range allow {
		allow[i] = i%2 == 0
	}
	return (len(allow) + 1) / 2
}
func (e *evenFive) Accept(int32) { e.n++ }
func (e *evenFive) Done() bool   { return e.n == 5 }

// TestConstraintStops: only allowed tokens are drawn, greedy or sampled,
// and a done constraint ends the sequence with finish "stop" and its whole
// text.
func TestConstraintStops(t *testing.T) {
	s := loadStories(t, arch.Options{}, EngineOptions{})
	for _, temp := range []float32{0, 1} {
		opt := s.options(50)
		opt.Sampling = sample.Options{Temperature: temp, Seed: 3}
		opt.NewConstraint = func() Constraint { return &evenFive{} }
		ids, text, st := s.run(t, s.tok.Encode("Once upon a time", tokenizer.EncodeOptions{AddSpecial: true}), opt)
		require.Len(t, ids, 5)
		for _, id := range ids {
			require.Zero(t, id%2, "token %d", id)
		}
		require.Equal(t, FinishStop, st.Finish)
		require.Equal(t, s.tok.Decode(ids), text)
	}
}

// TestEmbed: Embed, chunked to the engine's 4 result rows, gives the
// pooling of one step over the whole prompt, for each pooling.
func TestEmbed(t *testing.T) {
	small := loadStories(t, arch.Options{MaxRows: 32, MaxOut: 4}, EngineOptions{Blocks: 64})
	big := loadStories(t, arch.Options{MaxRows: 32, MaxOut: 32}, EngineOptions{Blocks: 64})
	prompt := small.tok.Encode("Once upon a time, there was a little girl named Lily", tokenizer.EncodeOptions{AddSpecial: true})
	for _, kind := range []string{"mean", "last", "cls"} {
		got, err := Embed(context.Background(), small.e, prompt, kind)
		require.NoError(t, err)
		p, err := NewPooling(kind)
		require.NoError(t, err)
		seq := big.e.Cache().NewSeq()
		jobs := []Job{{Seq: seq, Tokens: prompt, Want: WantHidden, Outs: len(prompt)}}
		require.NoError(t, big.e.Step(jobs))
		if kind == "last" {
			jobs[0].Hidden, jobs[0].Outs = jobs[0].Hidden[len(jobs[0].Hidden)-len(got):], 1
		}
		p.Add(&jobs[0])
		seq.Free()
		require.InDeltaSlice(t, p.Vector(), got, 1e-5, kind)
	}
	_, err := Embed(context.Background(), small.e, prompt, "max")
	require.ErrorIs(t, err, ErrBatch)
	_, err = Embed(context.Background(), small.e, nil, "mean")
	require.ErrorIs(t, err, ErrContext)
	require.Equal(t, small.e.Cache().NumBlocks(), small.e.Cache().FreeBlocks())
}

// TestMinTokens: with some token of a greedy story taken as the end
// token, the story ends at its first occurrence after k tokens; with
// MinTokens k+8 it goes on: the same first k tokens, then no end token
// before the minimum, then ending at the next one.
func TestMinTokens(t *testing.T) {
	s := loadStories(t, arch.Options{}, EngineOptions{})
	prompt := s.tok.Encode("Once upon a time", tokenizer.EncodeOptions{AddSpecial: true})
	story, _, _ := s.run(t, prompt, s.options(60))
	end := story[12] // some word of the story
	opt := s.options(200)
	opt.IsEnd = func(id int32) bool { return id == end }
	ids, _, st := s.run(t, prompt, opt)
	require.Equal(t, FinishEnd, st.Finish)
	k := len(ids)
	require.LessOrEqual(t, k, 12)
	opt.MinTokens = k + 8
	more, _, st := s.run(t, prompt, opt)
	require.GreaterOrEqual(t, len(more), k+8, "finish %s", st.Finish)
	require.Equal(t, ids, more[:k])
	require.NotContains(t, more, end, "never emitted: before the minimum it is masked, after it ends the story")
	if st.Finish == FinishEnd {
		require.Greater(t, len(more), k+8)
	}
}
