package generate

import (
	"fmt"

	"github.com/loomllm/loom/runtime/kvcache"
)

// Drafter proposes draft tokens for a greedy request to verify
// (Options.Drafter): speculative decoding. Whatever it proposes, the
// request's output is the target model's own greedy output; good drafts
// only make it take fewer steps.
type Drafter interface {
	// Draft fills draft with up to len(draft) tokens likely to follow
	// text (the prompt and every token generated so far) and returns how
	// many it proposes.
	Draft(text, draft []int32) int
}

// ModelDrafter drafts with another model, usually a much smaller one of
// the same vocabulary, running greedily on its own engine: it keeps one
// sequence whose cached positions are a prefix of the text, and each
// Draft feeds the text it has not seen (or has seen differently: a
// rejected draft), then decodes the drafts one step each. It is not safe
// for concurrent use; one request at a time uses it.
type ModelDrafter struct {
	e    *Engine
	seq  *kvcache.Seq
	fed  []int32 // the tokens whose keys and values seq holds
	jobs []Job
}

// NewModelDrafter returns a drafter on e, whose model must share the
// target's vocabulary. Close it to free its sequence.
func NewModelDrafter(e *Engine) *ModelDrafter {
	return &ModelDrafter{e: e, seq: e.Cache().NewSeq(), jobs: make([]Job, 1)}
}

// Close frees the drafter's sequence.
func (d *ModelDrafter) Close() { d.seq.Free() }

// Draft implements Drafter. It proposes nothing when its engine fails or
// its context is full.
func (d *ModelDrafter) Draft(text, draft []int32) int {
	if len(draft) == 0 || len(text) == 0 {
		return 0
	}
	// Keep the cached prefix the text still starts with (a text always
	// shares it up to the last verified token), feed the rest.
	p := 0
	for p < len(d.fed) && p < len(text)-1 && d.fed[p] == text[p] {
		p++
	}
	if err := d.seq.Truncate(p); err != nil {
		return 0
	}
	d.fed = d.fed[:p]
	k := min(len(draft), d.e.Context()-len(text))
	n := 0
	for rest := text[p:]; n < k; {
		chunk := rest
		if len(chunk) == 0 {
			chunk = draft[n-1 : n]
		}
		chunk = chunk[:min(len(chunk), d.e.MaxRows())]
		d.jobs[0] = Job{Seq: d.seq, Tokens: chunk}
		if len(chunk) == len(rest) || len(rest) == 0 {
			d.jobs[0].Want = WantArgMax
		}
		if err := d.e.Step(d.jobs); err != nil {
			d.reset()
			return n
		}
		d.fed = append(d.fed, chunk...)
		if len(rest) > 0 {
			rest = rest[len(chunk):]
			if len(rest) > 0 {
				continue // more of the prompt to feed
			}
		}
		draft[n] = d.jobs[0].ID
		n++
	}
	return n
}

// reset drops the drafter's cached positions after a failed step.
func (d *ModelDrafter) reset() {
	_ = d.seq.Truncate(0)
	d.fed = d.fed[:0]
}

// checkDrafter reports a draft engine whose vocabulary differs from e's.
func checkDrafter(e, draft *Engine) error {
	if e.vocab != draft.vocab {
		return fmt.Errorf("generate: %w: a draft model of %d tokens for a model of %d", ErrBatch, draft.vocab, e.vocab)
	}
	return nil
}
