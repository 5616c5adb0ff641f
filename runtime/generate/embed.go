package generate

import (
	"context"
	"fmt"
	"math"
)

// Pooling turns the final hidden states of a text's tokens into one
// embedding: their mean, the last token's, or the first token's ("mean",
// "last", "cls"). It says which hidden states each prompt chunk must
// return (Limit, Mark), takes them (Add), and gives the vector at unit
// length (Vector).
type Pooling struct {
	kind string
	sum  []float64
}

// NewPooling returns an empty pooling of the given kind.
func NewPooling(kind string) (*Pooling, error) {
	switch kind {
	case "mean", "last", "cls":
		return &Pooling{kind: kind}, nil
	}
	return nil, fmt.Errorf("generate: %w: pooling %q (mean, last or cls)", ErrBatch, kind)
}

// every reports whether a chunk starting at fed returns a row per token.
func (p *Pooling) every(fed int) bool { return p.kind == "mean" || p.kind == "cls" && fed == 0 }

// Limit is the most tokens the chunk starting at fed may take, given
// rows tokens and outs result rows to spare in the step.
func (p *Pooling) Limit(fed, rows, outs int) int {
	if p.every(fed) {
		return min(rows, outs)
	}
	return rows
}

// Mark sets the Want and Outs of j, the chunk of a total-token prompt
// starting at fed, to the hidden states the pooling needs from it.
func (p *Pooling) Mark(j *Job, fed, total int) {
	j.Want, j.Outs = WantNone, 0
	switch {
	case p.every(fed):
		j.Want, j.Outs = WantHidden, len(j.Tokens)
	case p.kind == "last" && fed+len(j.Tokens) == total:
		j.Want, j.Outs = WantHidden, 1
	}
}

// Add takes the hidden states a chunk Mark set up returned.
func (p *Pooling) Add(j *Job) {
	if j.Want != WantHidden || j.Outs == 0 {
		return
	}
	dim := len(j.Hidden) / j.Outs
	if p.sum == nil {
		p.sum = make([]float64, dim)
	}
	rows := j.Hidden
	if p.kind == "cls" {
		rows = rows[:dim] // the text's first token
	}
	for k := 0; k < len(rows); k += dim {
		for i, v := range rows[k : k+dim] {
			p.sum[i] += float64(v)
		}
	}
}

// Vector is the embedding at unit length (a mean is a scaled sum, so the
// sum serves).
func (p *Pooling) Vector() []float32 {
	var norm float64
	for _, v := range p.sum {
		norm += v * v
	}
	out := make([]float32, len(p.sum))
	if norm = math.Sqrt(norm); norm > 0 {
		for i, v := range p.sum {
			out[i] = float32(v / norm)
		}
	}
	return out
}

// Embed runs prompt through e on a fresh sequence, in chunks, and returns
// its embedding (see Pooling).
func Embed(ctx context.Context, e *Engine, prompt []int32, pooling string) ([]float32, error) {
	p, err := NewPooling(pooling)
	if err != nil {
		return nil, err
	}
	if len(prompt) == 0 || len(prompt) > e.Context() {
		return nil, fmt.Errorf("generate: a prompt of %d tokens (context %d): %w", len(prompt), e.Context(), ErrContext)
	}
	seq := e.Cache().NewSeq()
	defer seq.Free()
	jobs := make([]Job, 1)
	for fed := 0; fed < len(prompt); fed += len(jobs[0].Tokens) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n := min(p.Limit(fed, e.MaxRows(), e.MaxOut()), len(prompt)-fed)
		jobs[0] = Job{Seq: seq, Tokens: prompt[fed : fed+n]}
		p.Mark(&jobs[0], fed, len(prompt))
		if err := e.Step(jobs); err != nil {
			return nil, err
		}
		p.Add(&jobs[0])
	}
	return p.Vector(), nil
}
