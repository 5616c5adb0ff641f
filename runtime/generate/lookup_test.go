package generate

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loomllm/loom/cpu"
	"github.com/loomllm/loom/internal/testdata"
	"github.com/loomllm/loom/model"
	"github.com/loomllm/loom/model/arch"
	"github.com/loomllm/loom/model/synth"
	"github.com/loomllm/loom/model/tokenizer"
	"github.com/loomllm/loom/runtime/backend"
)

// TestPromptLookupGolden: with prompt lookup, llama2.c's 200 greedy steps
// from BOS come out byte for byte, in fewer steps (TinyStories repeat
// their names and phrases), through the on-device argmax and through the
// host (a backend-free argmax of returned logits is used when some job
// of the step wants logits).
func TestPromptLookupGolden(t *testing.T) {
	want, err := os.ReadFile(testdata.Path(t, "golden/stories260K_greedy_n200.txt"))
	require.NoError(t, err)
	wantIDs := goldenIDs(t)
	s := loadStories(t, arch.Options{MaxOut: 8}, EngineOptions{})
	for _, k := range []int{1, 4, 7} {
		opt := s.options(200)
		opt.PromptLookup = k
		ids, text, st := s.run(t, []int32{s.tok.BOS()}, opt)
		require.Equal(t, wantIDs, ids, "lookup %d", k)
		require.Equal(t, string(want), text, "lookup %d", k)
		require.Equal(t, FinishLength, st.Finish)
		require.Equal(t, 200, st.Tokens)
		require.Positive(t, st.Accepted, "lookup %d: some drafts agree", k)
		require.Equal(t, st.Tokens-1, st.Steps+st.Accepted, "lookup %d: each step makes one token plus its accepted drafts", k)
		t.Logf("lookup %d: %d steps for %d tokens; %d of %d drafts accepted", k, st.Steps, st.Tokens, st.Accepted, st.Drafted)
	}
}

// TestPromptLookupBatched: requests with and without lookup share steps
// (and a request whose step has drafts sits beside one that wants
// logits), and each gets exactly what it gets alone.
func TestPromptLookupBatched(t *testing.T) {
	s := loadStories(t, arch.Options{MaxOut: 16}, EngineOptions{Blocks: 64})
	prompts := []string{"Once upon a time, Lily saw a cat. Lily", "Tom had a red ball. Tom", "One day"}
	var want [][]int32
	for _, p := range prompts {
		ids, _, _ := s.run(t, s.tok.Encode(p, tokenizer.EncodeOptions{AddSpecial: true}), s.options(60))
		want = append(want, ids)
	}
	var reqs []*Request
	for i, p := range prompts {
		opt := s.options(60)
		switch i {
		case 0, 1:
			opt.PromptLookup = 5
		case 2:
			opt.Sampling.LogitBias = map[int32]float32{0: 0} // greedy through the host's logits
		}
		r, err := NewRequest(s.e, s.tok.Encode(p, tokenizer.EncodeOptions{AddSpecial: true}), opt)
		require.NoError(t, err)
		defer r.Close()
		reqs = append(reqs, r)
	}
	got := make([][]int32, len(reqs))
	for {
		var jobs []Job
		var owners []int
		for i, r := range reqs {
			if !r.Done() {
				jobs = append(jobs, r.Job(6))
				owners = append(owners, i)
			}
		}
		if len(jobs) == 0 {
			break
		}
		require.NoError(t, s.e.Step(jobs))
		for k, i := range owners {
			for tk, more := reqs[i].Advance(&jobs[k]), true; more; tk, more = reqs[i].More() {
				if tk.ID >= 0 {
					got[i] = append(got[i], tk.ID)
				}
			}
		}
	}
	require.Equal(t, want, got)
	require.Positive(t, reqs[0].Stats().Accepted+reqs[1].Stats().Accepted)
}

// TestPromptLookupLimits: drafts never take a request past MaxTokens or
// the context, a stop string inside a step's accepted drafts ends the
// output there, and Advance refuses to run before More has handed out a
// step's tokens.
func TestPromptLookupLimits(t *testing.T) {
	s := loadStories(t, arch.Options{MaxOut: 8}, EngineOptions{Context: 48})
	bos := []int32{s.tok.BOS()}
	_, full, _ := s.run(t, bos, s.options(0))
	for _, max := range []int{0, 1, 2, 5, 30} {
		opt := s.options(max)
		opt.PromptLookup = 7
		ids, text, st := s.run(t, bos, opt)
		if max == 0 {
			require.Equal(t, FinishContext, st.Finish)
			require.Equal(t, 47, st.Tokens)
		} else {
			require.Len(t, ids, max)
		}
		require.True(t, len(full) >= len(text) && full[:len(text)] == text, "max %d: %q", max, text)
	}
	opt := s.options(0)
	opt.PromptLookup = 7
	opt.Stop = []string{"ily"}
	_, text, st := s.run(t, bos, opt)
	require.Equal(t, FinishStop, st.Finish)
	i := len(full)
	for k := range full {
		if len(full[k:]) >= 3 && full[k:k+3] == "ily" {
			i = k
			break
		}
	}
	require.Equal(t, full[:i], text)

	// Emitting stops part-way through a step's tokens.
	n := 0
	_, err := Generate(context.Background(), s.e, bos, opt, func(Token) bool { n++; return n < 3 })
	require.NoError(t, err)
	require.Equal(t, 3, n)
	require.Equal(t, s.e.Cache().NumBlocks(), s.e.Cache().FreeBlocks(), "blocks come back")
}

// TestPromptLookupMoreFirst: Advance refuses to run while the last
// step's tokens are still to be handed out by More.
func TestPromptLookupMoreFirst(t *testing.T) {
	s := loadStories(t, arch.Options{MaxOut: 8}, EngineOptions{})
	opt := s.options(100)
	opt.PromptLookup = 7
	r, err := NewRequest(s.e, []int32{s.tok.BOS()}, opt)
	require.NoError(t, err)
	defer r.Close()
	for !r.Done() {
		jobs := []Job{r.Job(8)}
		require.NoError(t, s.e.Step(jobs))
		r.Advance(&jobs[0])
		if len(r.pending) > 0 {
			require.Panics(t, func() { r.Advance(&jobs[0]) })
			return
		}
	}
	t.Fatal("no step accepted a draft")
}

// BenchmarkVerifyStep: the cost of a decode step that also verifies k
// drafts, against k = 0, for one sequence at position 128 of a
// stories110m-shaped F32 model (synthetic weights, streamed from memory
// on most CPUs) and of stories260K (cache-resident): prompt lookup gains
// when the tokens a step makes, 1 + accepted, outgrow this ratio.
//
//	go test ./runtime/generate -run '^$' -bench VerifyStep
func BenchmarkVerifyStep(b *testing.B) {
	for _, name := range []string{"stories110m", "stories260K"} {
		var e *Engine
		if name == "stories260K" {
			e = loadStories(b, arch.Options{MaxOut: 9}, EngineOptions{Blocks: 64}).e
		} else {
			e = synthEngine(b, name, 9)
		}
		var base float64
		for _, k := range []int{0, 1, 2, 4, 8} {
			b.Run(fmt.Sprintf("%s/drafts=%d", name, k), func(b *testing.B) {
				seq := e.Cache().NewSeq()
				defer seq.Free()
				prompt := make([]int32, 128)
				for i := range prompt {
					prompt[i] = int32(i % 7)
				}
				require.NoError(b, e.Step([]Job{{Seq: seq, Tokens: prompt}}))
				tokens := make([]int32, 1+k)
				jobs := []Job{{Seq: seq, Tokens: tokens, Want: WantArgMax, Outs: 1 + k}}
				b.ResetTimer()
				for range b.N {
					require.NoError(b, e.Step(jobs))
					require.NoError(b, seq.Truncate(128))
				}
				ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
				if k == 0 {
					base = ns
				}
				b.ReportMetric(ns/base, "x-step")
			})
		}
	}
}

// synthEngine is an engine on the CPU for a synthetic model of a named
// shape (package synth) whose steps return up to outs results.
func synthEngine(b *testing.B, preset string, outs int) *Engine {
	cfg, err := synth.Preset(preset)
	require.NoError(b, err)
	m, err := synth.New(cfg, backend.F32, model.TokenizerSpec{}, 1)
	require.NoError(b, err)
	be := cpu.New(cpu.Options{})
	b.Cleanup(func() { be.Close() })
	net, err := arch.New(be, m, arch.Options{MaxRows: 256, MaxOut: outs})
	require.NoError(b, err)
	b.Cleanup(net.Close)
	e, err := NewEngine(be, net, EngineOptions{Context: 512})
	require.NoError(b, err)
	b.Cleanup(e.Close)
	return e
}

// TestModelDrafter: speculative decoding with a draft model. With the
// target itself as the draft (on its own engine) every draft is accepted
// and a step makes up to 1+k tokens; with a random model of the same
// vocabulary as the draft, few are; either way the 200 golden tokens come
// out byte for byte.
func TestModelDrafter(t *testing.T) {
	want, err := os.ReadFile(testdata.Path(t, "golden/stories260K_greedy_n200.txt"))
	require.NoError(t, err)
	s := loadStories(t, arch.Options{MaxOut: 8}, EngineOptions{})
	same := loadStories(t, arch.Options{}, EngineOptions{}).e
	cfg, err := synth.Preset("tiny") // vocabulary 512, as stories260K's
	require.NoError(t, err)
	m, err := synth.New(cfg, backend.F32, model.TokenizerSpec{}, 5)
	require.NoError(t, err)
	be := cpu.New(cpu.Options{Threads: 1})
	t.Cleanup(func() { be.Close() })
	net, err := arch.New(be, m, arch.Options{})
	require.NoError(t, err)
	t.Cleanup(net.Close)
	random, err := NewEngine(be, net, EngineOptions{Context: 512})
	require.NoError(t, err)
	t.Cleanup(random.Close)

	for _, c := range []struct {
		name string
		e    *Engine
		k    int
	}{{"itself", same, 4}, {"itself, one draft", same, 1}, {"random", random, 4}} {
		require.NoError(t, checkDrafter(s.e, c.e))
		d := NewModelDrafter(c.e)
		opt := s.options(200)
		opt.PromptLookup, opt.Drafter = c.k, d
		_, text, st := s.run(t, []int32{s.tok.BOS()}, opt)
		d.Close()
		require.Equal(t, string(want), text, c.name)
		require.Equal(t, st.Tokens-1, st.Steps+st.Accepted, c.name)
		t.Logf("%s: %d steps for %d tokens; %d of %d drafts accepted", c.name, st.Steps, st.Tokens, st.Accepted, st.Drafted)
		if c.e == same {
			require.Equal(t, st.Drafted, st.Accepted, "%s: the model agrees with itself", c.name)
			require.LessOrEqual(t, st.Steps, (st.Tokens+c.k)/(c.k+1)+1, c.name)
		}
		require.Equal(t, c.e.Cache().NumBlocks(), c.e.Cache().FreeBlocks(), "%s: the drafter's blocks come back", c.name)
	}
}
