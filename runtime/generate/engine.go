// Package generate runs language models token by token: an Engine that
// executes one forward pass for a set of sequences per step, a Request
// that turns a prompt into generated tokens (prefill, sampling, stop
// conditions, streaming text), and beam search.
//
// # Steps
//
// Engine.Step takes one Job per sequence: the tokens to append to it (a
// prompt, or a chunk of one, during prefill; the last sampled token during
// decode) and what to return for its last token (logits, the argmax, or
// nothing for an intermediate prefill chunk). All jobs of a step run as one
// batch of rows through the model, so a scheduler that keeps many
// sequences in flight (continuous batching) adds and removes sequences
// between steps simply by passing different jobs. Step grows each
// sequence's KV blocks first and changes nothing when they do not fit, so a
// scheduler can defer a job on kvcache.ErrCacheFull.
//
// A step uploads its inputs (token ids, positions, sequence rows, block
// table, output rows) into tensors allocated once, runs the forward pass,
// and reads back only what the jobs asked for: with greedy jobs on a
// backend that implements backend.ArgMaxer, only the ids come back. Decode
// steps (one token per job) are run through backend.Grapher where the
// backend has it, keyed by the batch shape. On the CPU a step allocates
// nothing.
//
// # Requests
//
// A Request is the state of one generation: it hands out the Job for its
// next step (prompt chunks of up to MaxRows tokens, then one token at a
// time) and consumes the result with Advance, which samples the next token
// and applies the stop conditions: an end-of-generation id, MaxTokens, a
// stop string (matched across token boundaries; neither it nor the text
// after it is emitted), or the context being full. Generate drives one
// Request to the end; a server's scheduler drives many through one Engine.
//
// Beam search (Beam) keeps several hypotheses per request as forked
// sequences that share their common KV blocks (see package kvcache).
package generate

import (
	"errors"
	"fmt"

	"github.com/loomllm/loom/model/arch"
	"github.com/loomllm/loom/runtime/backend"
	"github.com/loomllm/loom/runtime/kvcache"
	"github.com/loomllm/loom/runtime/quant"
	"github.com/loomllm/loom/runtime/sample"
)

// Sentinel errors.
var (
	// ErrContext reports a prompt, or a prompt plus the requested tokens,
	// that does not fit the context.
	ErrContext = errors.New("does not fit the context")
	// ErrBatch reports a step the engine was not sized for, or a job
	// that makes no sense (no tokens, a sequence twice).
	ErrBatch = errors.New("invalid step")
)

// Want says what a job returns for its last token.
type Want uint8

// What a Job returns.
const (
	// WantNone returns nothing (an intermediate prefill chunk).
	WantNone Want = iota
	// WantLogits returns the logits of the last token.
	WantLogits
	// WantArgMax returns the id of the largest logit (greedy decoding).
	WantArgMax
	// WantHidden returns the final hidden state (the output norm's) after
	// each of the last Outs tokens, for embeddings: no logits are computed
	// for them.
	WantHidden
)

// Job is one sequence's work in a step.
type Job struct {
	// Seq is the sequence the tokens are appended to.
	Seq *kvcache.Seq
	// Tokens are the token ids to append (at least one).
	Tokens []int32
	// Want selects the result.
	Want Want
	// Outs is how many of the last tokens return a result (0 means 1):
	// a step that verifies draft tokens asks for the argmax after each of
	// them, a prompt chunk whose log probabilities are wanted for the
	// logits after each of its tokens.
	Outs int

	// Logits is set by Step for WantLogits: the logits after each of the
	// last Outs tokens (one row of the vocabulary's size each, the last
	// token's last), in the engine's memory, valid until the next Step.
	Logits []float32
	// ID is set by Step for WantArgMax: the largest logit's id after the
	// last token.
	ID int32
	// IDs is set by Step for WantArgMax: the largest logit's id after
	// each of the last Outs tokens (ID is the last), in the engine's
	// memory, valid until the next Step.
	IDs []int32 // Hidden is set by Step for WantHidden: Outs rows of the model's
	// width, in the engine's memory, valid until the next Step.
	Hidden []float32
}

// outs is the number of result rows j asks for.
func (j *Job) outs() int {
	if j.Want == WantNone {
		return 0
	}
	return max(j.Outs, 1)
}

// EngineOptions configures NewEngine.
type EngineOptions struct {
	// Context is the most positions one sequence may hold. 0 means the
	// model's trained context; it is capped by the model's own limit
	// (GPT-2's position table).
	Context int
	// BlockSize is the positions per KV block; 0 means 16.
	BlockSize int
	// Blocks is the number of KV blocks in the pool; 0 means enough for
	// one sequence of the full context.
	Blocks int
	// KVType is the element type of cached keys and values: F32 (the
	// zero value), F16 or BF16.
	KVType backend.DType
	// NoGraphs runs every step directly even where the backend can record
	// graphs (needed when the model traces its layers, which reads
	// tensors back in the middle of a step).
	NoGraphs bool
}

// Engine runs forward passes of one model for sets of sequences. It is not
// safe for concurrent use: one goroutine (a scheduler) drives it.
type Engine struct {
	be     backend.Backend
	m      arch.Model
	cache  *kvcache.Cache
	ctx    int
	vocab  int
	in     arch.Batch // full-size input tensors
	ids    backend.Tensor
	argmax backend.ArgMaxer
	graph  backend.Grapher
	keys   map[[3]int]string // graph names by rows, outputs, hidden outputs

	// Host staging, sized once.
	tokens, pos, seq, out []int32
	blocks                []int32
	idsHost               []int32
	logits                []float32
	hidden                []float32  // WantHidden results, allocated on first use
	hostLogits            []byte     // logits' memory when the backend allocated it (HostAllocator)
	cur                   arch.Batch // the step being run (read by runForward)
	curLogits             backend.Tensor
	fwdErr                error
	forward               func() // runForward as a value, made once
}

// NewEngine creates the KV cache for m on be and the step's input tensors.
func NewEngine(be backend.Backend, m arch.Model, opt EngineOptions) (*Engine, error) {
	c := m.Config()
	ctx := opt.Context
	if ctx <= 0 {
		ctx = c.Context
	}
	if mc := m.MaxContext(); mc > 0 && (ctx <= 0 || ctx > mc) {
		ctx = mc
	}
	if ctx <= 0 || ctx > 1<<24 {
		return nil, fmt.Errorf("generate: context of %d positions: %w", ctx, ErrContext)
	}
	if opt.BlockSize <= 0 {
		opt.BlockSize = 16
	}
	if opt.Blocks <= 0 {
		opt.Blocks = (ctx + opt.BlockSize - 1) / opt.BlockSize
	}
	cache, err := kvcache.New(be, m.KVSpec(opt.BlockSize, opt.Blocks, opt.KVType), ctx)
	if err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	rows, outs, width := m.MaxRows(), m.MaxOut(), cache.Width()
	e := &Engine{be: be, m: m, cache: cache, ctx: ctx, vocab: c.VocabSize, keys: map[[3]int]string{},
		tokens: make([]int32, rows), pos: make([]int32, rows), seq: make([]int32, rows), out: make([]int32, outs),
		idsHost: make([]int32, outs)}
	// Logits come back every sampled step (a 128k vocabulary at 32 rows
	// is 16 MB): into page-locked memory where the backend offers it,
	// which a GPU copies into at full PCIe/NVLink speed.
	if ha, ok := be.(backend.HostAllocator); ok {
		if b, err := ha.AllocHost(4 * outs * c.VocabSize); err == nil {
			e.hostLogits, e.logits = b, quant.BytesF32(b)
		}
	}
	if e.logits == nil {
		e.logits = make([]float32, outs*c.VocabSize)
	}
	e.argmax, _ = be.(backend.ArgMaxer)
	if !opt.NoGraphs {
		e.graph, _ = be.(backend.Grapher)
	}
	e.forward = e.runForward
	var allocErr error
	alloc := func(r, c int) backend.Tensor {
		t, err := be.Alloc(backend.I32, r, c)
		if err != nil && allocErr == nil {
			allocErr = err
		}
		return t
	}
	// A step has at most one sequence per output row (every job asks for
	// at most one row of logits) or per token row.
	seqs := min(rows, outs)
	e.in = arch.Batch{Tokens: alloc(rows, 1), Pos: alloc(rows, 1), Seq: alloc(rows, 1),
		Blocks: alloc(seqs, width), Out: alloc(outs, 1), Cache: cache.KV()}
	e.blocks = make([]int32, seqs*width)
	e.ids = alloc(outs, 1)
	if allocErr != nil {
		e.Close()
		return nil, fmt.Errorf("generate: step inputs: %w", allocErr)
	}
	return e, nil
}

// Close frees the KV cache and the input tensors (not the model).
func (e *Engine) Close() {
	for _, t := range []backend.Tensor{e.in.Tokens, e.in.Pos, e.in.Seq, e.in.Blocks, e.in.Out, e.ids} {
		if !t.IsZero() {
			e.be.Free(t)
		}
	}
	e.cache.Close()
	if e.hostLogits != nil {
		e.be.(backend.HostAllocator).FreeHost(e.hostLogits)
		e.hostLogits, e.logits = nil, nil
	}
}

// Cache is the engine's KV cache: make sequences with Cache().NewSeq().
func (e *Engine) Cache() *kvcache.Cache { return e.cache }

// Model is the engine's model.
func (e *Engine) Model() arch.Model { return e.m }

// Backend is the backend the engine runs on.
func (e *Engine) Backend() backend.Backend { return e.be }

// Context is the most positions a sequence may hold.
func (e *Engine) Context() int { return e.ctx }

// MaxRows is the most tokens one step may take, over all jobs.
func (e *Engine) MaxRows() int { return e.m.MaxRows() }

// MaxOut is the most result rows one step may return (a job asks for
// one, or Outs when it verifies draft tokens).
func (e *Engine) MaxOut() int { return e.m.MaxOut() }

// MaxJobs is the most jobs one step may take.
func (e *Engine) MaxJobs() int { return min(e.m.MaxRows(), e.m.MaxOut()) }

// Step runs one forward pass for the jobs and fills in their results. If
// a sequence cannot grow (kvcache.ErrCacheFull, kvcache.ErrSeqFull) Step
// returns the error, naming the job, and no sequence has changed.
func (e *Engine) Step(jobs []Job) error {
	rows, outs, hidden, width := 0, 0, 0, e.cache.Width()
	for i := range jobs {
		j := &jobs[i]
		if len(j.Tokens) == 0 || j.Seq == nil || j.Want > WantHidden {
			return fmt.Errorf("generate: job %d: %w: no tokens or sequence", i, ErrBatch)
		}
		if j.Outs < 0 || j.Outs > len(j.Tokens) || (j.Outs > 1 && j.Want == WantNone) {
			return fmt.Errorf("generate: job %d: %w: %d results for %d tokens (want %v)", i, ErrBatch, j.Outs, len(j.Tokens), j.Want)
		}
		for k := range i {
			if jobs[k].Seq == j.Seq {
				return fmt.Errorf("generate: jobs %d and %d: %w: same sequence", k, i, ErrBatch)
			}
		}
		rows += len(j.Tokens)
		outs += j.outs()
		if j.Want == WantHidden {
			hidden += j.outs()
		}
	}
	if len(jobs) == 0 || rows > e.m.MaxRows() || outs > e.m.MaxOut() || len(jobs) > e.MaxJobs() {
		return fmt.Errorf("generate: %d jobs, %d tokens, %d outputs (engine takes %d, %d, %d): %w",
			len(jobs), rows, outs, e.MaxJobs(), e.m.MaxRows(), e.m.MaxOut(), ErrBatch)
	}
	for _, j := range jobs {
		for _, t := range j.Tokens {
			if t < 0 || int(t) >= e.vocab {
				return fmt.Errorf("generate: token %d outside the vocabulary of %d: %w", t, e.vocab, backend.ErrIndex)
			}
		}
	}

	// Grow every sequence, or none. The result rows of hidden states come
	// after those of logits (arch.Batch.Hidden).
	r, o, oh := 0, 0, outs-hidden
	for i := range jobs {
		j := &jobs[i]
		start, err := j.Seq.Grow(len(j.Tokens))
		if err != nil {
			for k := range i {
				_ = jobs[k].Seq.Truncate(jobs[k].Seq.Len() - len(jobs[k].Tokens))
			}
			return fmt.Errorf("generate: job %d: %w", i, err)
		}
		for k, t := range j.Tokens {
			e.tokens[r], e.pos[r], e.seq[r] = t, int32(start+k), int32(i)
			r++
		}
		for k := j.outs(); k > 0; k-- {
			if j.Want == WantHidden {
				e.out[oh] = int32(r - k)
				oh++
			} else {
				e.out[o] = int32(r - k)
				o++
			}
		}
		j.Seq.FillRow(e.blocks[i*width : (i+1)*width])
	}

	e.cur = arch.Batch{Tokens: e.in.Tokens.Slice(0, rows), Pos: e.in.Pos.Slice(0, rows), Seq: e.in.Seq.Slice(0, rows),
		Blocks: e.in.Blocks.Slice(0, len(jobs)), Cache: e.in.Cache, Hidden: hidden}
	if outs > 0 {
		e.cur.Out = e.in.Out.Slice(0, outs)
	} else {
		// The model always computes at least one row of logits; take the
		// last row and ignore it.
		e.out[0] = int32(rows - 1)
		e.cur.Out = e.in.Out.Slice(0, 1)
	}
	for _, u := range []struct {
		t backend.Tensor
		v []int32
	}{{e.cur.Tokens, e.tokens[:rows]}, {e.cur.Pos, e.pos[:rows]}, {e.cur.Seq, e.seq[:rows]},
		{e.cur.Blocks, e.blocks[:len(jobs)*width]}, {e.cur.Out, e.out[:e.cur.Out.Rows()]}} {
		if err := e.be.Upload(u.t, quant.I32Bytes(u.v)); err != nil {
			return fmt.Errorf("generate: step inputs: %w", err)
		}
	}

	if e.graph != nil && rows == len(jobs) {
		shape := [3]int{rows, e.cur.Out.Rows(), hidden}
		key, ok := e.keys[shape]
		if !ok {
			key = fmt.Sprintf("decode/%d/%d/%d", rows, e.cur.Out.Rows(), hidden)
			e.keys[shape] = key
		}
		if err := e.graph.Graph(key, e.forward); err != nil {
			return fmt.Errorf("generate: step: %w", err)
		}
	} else {
		e.forward()
	}
	if e.fwdErr != nil {
		return fmt.Errorf("generate: step: %w", e.fwdErr)
	}
	return e.results(jobs, outs, hidden)
}

// runForward runs the model on e.cur (a method value, so Grapher gets the
// same function every step without a new closure).
func (e *Engine) runForward() {
	e.curLogits, e.fwdErr = e.m.Forward(e.cur)
}

// results reads back what the jobs asked for: the logits (or their
// argmax) of the first outs-hidden result rows, the hidden states of the
// rest.
func (e *Engine) results(jobs []Job, outs, hidden int) error {
	if outs == 0 {
		return e.be.Sync()
	}
	nl := outs - hidden
	greedy := e.argmax != nil
	for i := range jobs {
		if jobs[i].Want == WantLogits {
			greedy = false
		}
	}
	switch {
	case nl == 0:
	case greedy:
		ids := e.ids.Slice(0, nl)
		e.argmax.ArgMax(ids, e.curLogits)
		if err := e.be.Download(quant.I32Bytes(e.idsHost[:nl]), ids); err != nil {
			return fmt.Errorf("generate: step: %w", err)
		}
	default:
		if err := e.be.Download(quant.F32Bytes(e.logits[:nl*e.vocab]), e.curLogits); err != nil {
			return fmt.Errorf("generate: step: %w", err)
		}
	}
	dim := e.m.Config().Dim
	if hidden > 0 {
		if e.hidden == nil {
			e.hidden = make([]float32, e.m.MaxOut()*dim)
		}
		if err := e.be.Download(quant.F32Bytes(e.hidden[:hidden*dim]), e.m.Hidden().Slice(nl, outs)); err != nil {
			return fmt.Errorf("generate: step: %w", err)
		}
	}
	o, oh := 0, 0
	for i := range jobs {
		j := &jobs[i]
		n := j.outs()
		switch j.Want {
		case WantNone:
			continue
		case WantHidden:
			j.Hidden = e.hidden[oh*dim : (oh+n)*dim]
			oh += n
			continue
		case WantLogits:
			j.Logits = e.logits[o*e.vocab : (o+n)*e.vocab]
		case WantArgMax:
			if !greedy {
				for k := o; k < o+n; k++ {
					e.idsHost[k] = sample.ArgMax(e.logits[k*e.vocab : (k+1)*e.vocab])
				}
			}
			j.IDs = e.idsHost[o : o+n]
			j.ID = j.IDs[n-1]
		}
		o += n
	}
	return nil
}
