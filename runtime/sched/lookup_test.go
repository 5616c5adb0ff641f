package sched

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loomllm/loom/runtime/generate"
)

// TestPromptLookup: with Config.PromptLookup, concurrent greedy requests
// (half with log probabilities, which get no drafts) return exactly what
// each returns alone without it, drafts are accepted, and every block
// comes back.
func TestPromptLookup(t *testing.T) {
	s := loadStories(t, 64, 0)
	plain := s.start(t, Config{MaxBatch: 8, PrefillChunk: 16})
	seqs := make([]Seq, 12)
	alone := make([]result, len(seqs))
	for i := range seqs {
		seqs[i] = s.seq(prompts[i%len(prompts)]+strings.Repeat(" and", i/len(prompts)), 60+i*5)
		if i%4 == 3 {
			seqs[i].Logprobs = 0
		}
		alone[i] = run(t, plain, seqs[i])
	}
	var steps, rows int
	var mu sync.Mutex
	sc := s.start(t, Config{MaxBatch: 8, PrefillChunk: 16, PromptLookup: 4, OnStep: func(seqs, tokens int, _ time.Duration) {
		mu.Lock()
		steps++
		rows += tokens
		mu.Unlock()
	}})
	got := runConcurrently(t, sc, seqs)
	accepted := 0
	for i := range seqs {
		require.Equal(t, alone[i].ids, got[i].ids, "request %d", i)
		require.Equal(t, alone[i].text, got[i].text, "request %d", i)
		st := got[i].last.Stats
		if seqs[i].Logprobs >= 0 {
			require.Zero(t, st.Drafted, "request %d wants log probabilities: no drafts", i)
		}
		accepted += st.Accepted
	}
	require.Positive(t, accepted)
	t.Logf("%d drafts accepted; %d steps, %d rows", accepted, steps, rows)
	require.Zero(t, sc.Stats().BlocksUsed)
}

// TestDraftModelSched: Config.NewDrafter gives each sequence its own
// drafter on a shared draft engine (here stories260K drafting for
// itself): concurrent greedy requests return exactly what they return
// alone, every draft is accepted, and the drafters' blocks come back.
func TestDraftModelSched(t *testing.T) {
	s := loadStories(t, 64, 0)
	draft := loadStories(t, 1, 16*64).e
	plain := s.start(t, Config{MaxBatch: 8, PrefillChunk: 16})
	seqs := make([]Seq, 8)
	alone := make([]result, len(seqs))
	for i := range seqs {
		seqs[i] = s.seq(prompts[i%len(prompts)], 40+i*7)
		alone[i] = run(t, plain, seqs[i])
	}
	sc := s.start(t, Config{MaxBatch: 8, PrefillChunk: 16, PromptLookup: 3,
		NewDrafter: func() generate.Drafter { return generate.NewModelDrafter(draft) }})
	got := runConcurrently(t, sc, seqs)
	accepted := 0
	for i := range seqs {
		require.Equal(t, alone[i].ids, got[i].ids, "request %d", i)
		st := got[i].last.Stats
		require.Equal(t, st.Drafted, st.Accepted, "request %d: the model agrees with itself", i)
		accepted += st.Accepted
	}
	require.Positive(t, accepted)
	require.Zero(t, sc.Stats().BlocksUsed)
	require.Equal(t, draft.Cache().NumBlocks(), draft.Cache().FreeBlocks(), "the drafters' blocks come back")
}

// TestSpeculateMaxBatch: with more sequences decoding than
// SpeculateMaxBatch, steps carry no drafts; alone, a sequence gets them.
func TestSpeculateMaxBatch(t *testing.T) {
	s := loadStories(t, 64, 0)
	sc := s.start(t, Config{MaxBatch: 8, PrefillChunk: 16, PromptLookup: 4, SpeculateMaxBatch: 1,
		OnStep: slow(300 * time.Microsecond)}) // so that the six overlap whatever their arrival
	seqs := make([]Seq, 6)
	for i := range seqs {
		seqs[i] = s.seq(prompts[i%len(prompts)], 60)
	}
	drafted := 0
	for _, r := range runConcurrently(t, sc, seqs) {
		drafted += r.last.Stats.Drafted
	}
	alone := run(t, sc, seqs[0]).last.Stats.Drafted
	require.Positive(t, alone, "a sequence alone gets drafts")
	require.Less(t, drafted, 3*alone, "six at once get fewer (only while one of them is left)")
}
