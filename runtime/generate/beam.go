package generate

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/loomllm/loom/runtime/kvcache"
	"github.com/loomllm/loom/runtime/sample"
)

// beam is a running hypothesis: its sequence in the KV cache, its tokens
// and their summed log-probability.
type beam struct {
	seq    *kvcache.Seq
	ids    []int32
	score  float64
	parent int
	tok    [1]int32
}

// hypothesis is a finished beam with its length-normalised score.
type hypothesis struct {
	ids    []int32
	score  float64 // normalised
	finish Finish
}

// Beam runs beam search for one prompt on e: at every step each of up to
// opt.Beams running hypotheses proposes its 2·Beams most likely next
// tokens, and the Beams best continuations by summed log-probability go
// on. A hypothesis that proposes an end token among the best Beams
// finishes, scored by its summed log-probability over
// (its length)^LengthPenalty. Search ends when Beams hypotheses have
// finished and either EarlyStopping is set or no running beam can still
// beat them (the best running score over the current length, as in
// Hugging Face transformers), or at MaxTokens or a full context, where
// the running beams finish as they are. The best hypothesis is then
// emitted token by token, with stop strings applied to its text.
//
// Running beams are sequences forked from their parent's: full KV blocks
// are shared, and only the last, partly filled block is copied when two
// beams continue one parent (see package kvcache). Sampling options are
// ignored: beam search is deterministic.
func Beam(ctx context.Context, e *Engine, prompt []int32, opt Options, emit func(Token) bool) (Stats, error) {
	hyps, stats, err := beamSearch(ctx, e, prompt, opt)
	if err != nil {
		return stats, err
	}
	best := hypothesis{finish: FinishEnd}
	if len(hyps) > 0 {
		best = hyps[0]
		stats.Tokens = len(best.ids)
	}
	text := newStopper(opt, prompt)
	stats.Finish = best.finish
	for i, id := range best.ids {
		s, stopped := text.push(id)
		if stopped {
			stats.Finish, stats.Tokens = FinishStop, i+1
		}
		if i == len(best.ids)-1 && !stopped {
			s += text.flush()
		}
		if !emit(Token{ID: id, Text: s}) || stopped {
			break
		}
	}
	if len(best.ids) == 0 {
		if s := text.flush(); s != "" {
			emit(Token{ID: -1, Text: s})
		}
	}
	return stats, nil
}

// beamSearch returns the finished hypotheses, best first.
func beamSearch(ctx context.Context, e *Engine, prompt []int32, opt Options) ([]hypothesis, Stats, error) {
	width := opt.Beams
	if width < 1 || width > e.MaxJobs() {
		return nil, Stats{}, fmt.Errorf("generate: %w: %d beams (the engine takes 1 to %d)", ErrBatch, width, e.MaxJobs())
	}
	alpha := opt.LengthPenalty
	if alpha == 0 {
		alpha = 1
	}
	norm := func(score float64, n int) float64 { return score / math.Pow(float64(max(n, 1)), alpha) }
	opt.Sampling = sample.Options{}
	r, err := NewRequest(e, prompt, opt)
	if err != nil {
		return nil, Stats{}, err
	}
	r.want = WantLogits
	stats := Stats{PromptTokens: len(prompt)}

	// Prefill: the last chunk's logits seed the first expansion.
	jobs := make([]Job, 1, width)
	for r.fed < len(prompt) {
		if err := ctx.Err(); err != nil {
			r.Close()
			return nil, stats, err
		}
		jobs[0] = r.Job(e.MaxRows())
		if err := e.Step(jobs); err != nil {
			r.Close()
			return nil, stats, err
		}
		r.fed += len(jobs[0].Tokens)
	}
	stats.Prefill = time.Since(r.start)
	first := time.Now()

	live := []beam{{seq: r.seq}}
	defer func() {
		for _, b := range live {
			b.seq.Free()
		}
	}()
	type cand struct {
		parent int
		id     int32
		score  float64
	}
	var (
		finished []hypothesis
		cands    []cand
		top      = make([]sample.Token, 2*width)
		next     = make([]beam, 0, width)
	)
	for n := 1; ; n++ { // n: tokens per hypothesis after this step
		cands = cands[:0]
		for i := range live {
			logits := jobs[i].Logits
			lse := float64(sample.LogSumExp(logits))
			for _, t := range sample.Top(top, logits) {
				cands = append(cands, cand{i, t.ID, live[i].score + float64(t.Logit) - lse})
			}
		}
		slices.SortFunc(cands, func(a, b cand) int {
			if c := cmp.Compare(b.score, a.score); c != 0 {
				return c
			}
			return cmp.Or(cmp.Compare(a.parent, b.parent), cmp.Compare(a.id, b.id))
		})
		next = next[:0]
		for rank, c := range cands {
			if opt.IsEnd != nil && opt.IsEnd(c.id) {
				if rank < width {
					ids := slices.Clone(live[c.parent].ids)
					finished = append(finished, hypothesis{ids, norm(c.score, len(ids)), FinishEnd})
				}
				continue
			}
			if len(next) < width {
				next = append(next, beam{parent: c.parent, score: c.score, tok: [1]int32{c.id}})
			}
		}
		slices.SortStableFunc(finished, func(a, b hypothesis) int { return cmp.Compare(b.score, a.score) })
		finished = finished[:min(len(finished), width)]

		done := len(next) == 0
		if len(finished) == width && !done {
			done = opt.EarlyStopping || finished[width-1].score >= norm(next[0].score, n)
		}
		limit := FinishNone
		switch {
		case opt.MaxTokens > 0 && n >= opt.MaxTokens:
			limit = FinishLength
		case len(prompt)+n >= e.ctx:
			limit = FinishContext
		}
		if limit != FinishNone && !done {
			for _, b := range next {
				ids := append(slices.Clone(live[b.parent].ids), b.tok[0])
				finished = append(finished, hypothesis{ids, norm(b.score, len(ids)), limit})
			}
			done = true
		}
		if done || ctx.Err() != nil {
			break
		}

		// Hand each parent's sequence to its first child, fork it for the
		// others, and free the parents no child continues.
		taken := make([]bool, len(live))
		for i := range next {
			b, p := &next[i], &live[next[i].parent]
			b.ids = append(slices.Clone(p.ids), b.tok[0])
			if !taken[b.parent] {
				b.seq, taken[b.parent] = p.seq, true
				continue
			}
			if b.seq, err = p.seq.Fork(); err != nil {
				return nil, stats, err
			}
		}
		for i := range live {
			if !taken[i] {
				live[i].seq.Free()
			}
		}
		live = append(live[:0], next...)
		jobs = jobs[:len(live)]
		for i := range live {
			jobs[i] = Job{Seq: live[i].seq, Tokens: live[i].tok[:], Want: WantLogits}
		}
		if err := e.Step(jobs); err != nil {
			return nil, stats, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, stats, err
	}
	stats.Decode = time.Since(first)
	slices.SortStableFunc(finished, func(a, b hypothesis) int { return cmp.Compare(b.score, a.score) })
	return finished, stats, nil
}
