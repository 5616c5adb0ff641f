// Package sched is loom's continuous-batching scheduler: it runs many
// generation requests at once through one generate.Engine, the way a
// server needs them run.
//
// One goroutine owns the engine. At every step it admits waiting requests
// into the running batch, builds one job per running sequence — a single
// token for each sequence that is decoding, and a bounded chunk of prompt
// for sequences still prefilling — and runs them all as one forward pass
// (Engine.Step), so decode is matrix-matrix work however many requests
// are in flight. Finished sequences leave the batch at once and free their
// KV blocks. Prompt tokens per step are capped (Config.PrefillChunk), so a
// long new prompt delays the running sequences by at most one chunk's
// work per step instead of its whole prefill.
//
// # KV blocks: reserve at admission
//
// All sequences share the engine's pool of KV blocks. A request is
// admitted only when the pool can hold its worst case — prompt plus
// max_tokens positions, for each of its sequences — on top of the worst
// cases of every running request; until then it waits in a bounded queue
// (Config.MaxQueue), and beyond that Submit fails with ErrQueueFull (a
// server answers 429 with Retry-After). So a running sequence always finds
// a block when it needs one: nothing is ever preempted, recomputed or
// truncated, and a request's output does not depend on the load. The cost
// is that a request reserves its max_tokens even if it stops early; with
// no max_tokens it reserves the whole context, so clients that set
// max_tokens get more concurrency. (vLLM instead admits optimistically
// and preempts-and-recomputes under pressure, which uses blocks better
// but makes latency depend on the load; reservation keeps this scheduler
// small and every admitted request's latency bounded.) A request that
// could never fit — more blocks than the pool, or more sequences than a
// batch — fails at once with ErrTooLarge.
//
// # Requests, sequences, events
//
// Submit takes a group of sequences admitted together (a request with
// n > 1 choices, or several prompts): all or none run, so a group never
// holds half its blocks while waiting for the rest. Each sequence reports
// through its Stream: one Event per generated token (with log
// probabilities when asked), and a last Event with the finish reason and
// statistics, or the error. Streams never block the scheduler: events
// queue in the stream, at most one per generated token.
//
// Cancelling the context given to Submit ends its sequences at the next
// step and frees their blocks (a client that disconnects). Close stops
// admitting, lets running and queued requests finish until its context
// ends, and then cancels the rest.
package sched

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/loomllm/loom/cpu/vec"
	"github.com/loomllm/loom/internal/par"
	"github.com/loomllm/loom/runtime/generate"
)

// Sentinel errors.
var (
	// ErrQueueFull reports that the waiting queue is full: retry later.
	ErrQueueFull = errors.New("server busy: request queue full")
	// ErrTooLarge reports a request that can never be admitted: it needs
	// more KV blocks than the pool has, or more sequences than a batch.
	ErrTooLarge = errors.New("request too large for the server")
	// ErrClosed reports a Submit after Close, or a request cancelled by
	// the end of Close's grace period.
	ErrClosed = errors.New("scheduler closed")
	// ErrConfig reports an invalid Config.
	ErrConfig = errors.New("invalid scheduler configuration")
)

// MaxTopLogprobs is the most alternatives a sequence may ask log
// probabilities for.
const MaxTopLogprobs = 20

// Config sizes a Scheduler.
type Config struct {
	// MaxBatch is the most sequences running at once; 0 means the most
	// the engine takes in one step (Engine.MaxJobs).
	MaxBatch int
	// MaxQueue is the most requests waiting for admission; 0 means 64.
	// Beyond it Submit fails with ErrQueueFull.
	MaxQueue int
	// PrefillChunk is the most prompt tokens one step takes, over all
	// prefilling sequences; 0 means 256 (or what the engine has room for
	// beside MaxBatch decode rows).
	PrefillChunk int
	// OnStep, if set, is called by the scheduler's goroutine after every
	// step with the number of sequences and tokens it ran and its time.
	OnStep func(seqs, tokens int, took time.Duration)
	// SampleWorkers is the most goroutines that draw the step's tokens
	// and compute their log probabilities, one row each at a time, when
	// the rows' logits are many (at least ParallelSampleMin values in all,
	// two rows or more); 0 means GOMAXPROCS, 1 keeps all of it on the
	// scheduler's goroutine. Each row's result is the same either way.
	SampleWorkers int
	// PrefixCache reuses the keys and values of earlier prompts: a new
	// sequence starts on the longest whole-block prefix of its prompt that
	// a finished prefill, or a finished sequence (prompt and generated
	// tokens), recorded (kvcache.Cache.Lookup), so a shared system prompt
	// or a chat's earlier turns are computed once, and the choices of one
	// prompt (n > 1) prefill it once. Recorded blocks no sequence uses are
	// taken back when the pool runs short. Admission still reserves every
	// sequence's whole worst case, so running requests never run out of
	// blocks. With a batch-invariant backend (the CPU) the tokens are the
	// same as without it; elsewhere they may differ by rounding.
	PrefixCache bool
	// PromptLookup is the most draft tokens a greedy sequence verifies in
	// a step (prompt lookup decoding, generate.Options.PromptLookup), for
	// sequences whose options leave it 0 and that want no log
	// probabilities. Drafts only take the step's spare rows: what the
	// decode rows and prompt chunks leave of the engine's result rows
	// (Engine.MaxOut) and token rows, so they never delay another
	// sequence. 0 turns it off.
	PromptLookup int
	// NewDrafter, if set, makes the drafter of each sequence that gets
	// drafts (speculative decoding with a draft model, e.g. a
	// generate.ModelDrafter on the draft model's engine) instead of prompt
	// lookup. It is called on the scheduler's goroutine when the sequence
	// starts, and the drafter is closed (if it has a Close method) when
	// the sequence ends; the drafters share that goroutine, so they may
	// share an engine.
	NewDrafter func() generate.Drafter
	// SpeculateMaxBatch, when above 0, gives drafts only to steps in
	// which at most that many sequences decode: beyond, batching already
	// fills the device, and a draft model's steps (one sequence at a time)
	// would only delay the others.
	SpeculateMaxBatch int
}

// ParallelSampleMin is the number of logits (rows × vocabulary) from
// which a step's sampling is spread over Config.SampleWorkers goroutines:
// about 100 µs of drawing, so starting the goroutines costs little. A
// 128k vocabulary crosses it with one row; stories260K (512) never does
// at 32 rows.
const ParallelSampleMin = 1 << 16

// Seq is one sequence to generate.
type Seq struct {
	// Prompt is the token ids to continue (with BOS where the model wants one).
	Prompt []int32
	// Options are the generation options. MaxTokens 0 means until the
	// context is full (and reserves the blocks for it).
	Options generate.Options
	// Logprobs asks for the log probability of each generated token: -1
	// none, 0 the chosen token only, k ≤ MaxTopLogprobs also the k most
	// likely tokens. They are of the model's distribution before
	// penalties, temperature and truncation (as vLLM reports by default).
	Logprobs int
	// Echo asks also for the log probability of each prompt token after
	// the first, given the ones before it, with the Logprobs most likely
	// tokens at its position (OpenAI's echo with logprobs; what
	// evaluation harnesses score). It needs Logprobs ≥ 0, and such a
	// prompt is computed in full (the prefix cache is not used) in chunks
	// of at most the engine's MaxOut tokens.
	Echo bool
	// Embed, when set ("mean", "last" or "cls"), makes the sequence an
	// embedding instead of a generation: the prompt is run through the
	// model in full (the prefix cache is not used), its tokens' final
	// hidden states are pooled (averaged, the last one's, or the first
	// one's) and scaled to unit length, and its one event carries the
	// vector (Event.Embedding). Nothing is generated.
	Embed string
}

// PromptLogprob is a prompt token's log probability given the tokens
// before it, and the most likely tokens at its position.
type PromptLogprob struct {
	Logprob float32
	Top     []TokenLogprob
}

// TokenLogprob is a token id and its log probability.
type TokenLogprob struct {
	ID      int32   // token id
	Logprob float32 // natural log of its probability
}

// Event is a Stream's output: a token, or the end of the sequence.
type Event struct {
	// Token is the generated token and the text it completes. ID is -1
	// for the last event (which may still carry held-back Text).
	Token generate.Token
	// Logprob is the token's log probability and Top the most likely
	// tokens at its position, when asked for.
	Logprob float32
	Top     []TokenLogprob
	// Prompt holds, on a sequence's first event, the log probabilities of
	// its prompt tokens after the first (Seq.Echo).
	Prompt []PromptLogprob
	// Embedding is an embedding sequence's vector (Seq.Embed), on its
	// last event.
	Embedding []float32
	// Done marks the last event; Stats (with Finish) or Err are set on it.
	Done  bool
	Stats generate.Stats
	Err   error
	// Time is when the scheduler produced the event.
	Time time.Time
}

// Stream delivers one sequence's events, in order. It is safe for use by
// one reader concurrently with the scheduler.
type Stream struct {
	mu     sync.Mutex
	events []Event
	done   bool // the last event has been queued
	notify chan struct{}
}

func newStream() *Stream { return &Stream{notify: make(chan struct{}, 1)} }

// push queues an event; the scheduler never blocks on a reader.
func (st *Stream) push(ev Event) {
	ev.Time = time.Now()
	st.mu.Lock()
	st.events = append(st.events, ev)
	st.done = st.done || ev.Done
	st.mu.Unlock()
	select {
	case st.notify <- struct{}{}:
	default:
	}
}

// Next returns the stream's next events (appended to buf[:0]), waiting
// until there is at least one or ctx ends (then with ctx's error). Once
// the event with Done has been returned, Next returns io.EOF.
func (st *Stream) Next(ctx context.Context, buf []Event) ([]Event, error) {
	for {
		st.mu.Lock()
		if len(st.events) > 0 {
			buf = append(buf[:0], st.events...)
			clear(st.events)
			st.events = st.events[:0]
			st.mu.Unlock()
			return buf, nil
		}
		if st.done {
			st.mu.Unlock()
			return buf[:0], io.EOF
		}
		st.mu.Unlock()
		select {
		case <-st.notify:
		case <-ctx.Done():
			return buf[:0], ctx.Err()
		}
	}
}

// Stats is a snapshot of the scheduler's state.
type Stats struct {
	Running     int    // sequences in the batch
	Queued      int    // requests waiting for admission
	BlocksUsed  int    // KV blocks held by sequences
	BlocksTotal int    // KV blocks in the pool
	Reserved    int    // KV blocks reserved by running sequences
	Steps       uint64 // forward passes run
	Err         error  // the engine error that stopped the scheduler, if any
	// CachedBlocks are the blocks the prefix cache holds (Config.PrefixCache),
	// of which IdleBlocks no sequence uses; CachedTokens counts the prompt
	// tokens taken from it so far.
	CachedBlocks, IdleBlocks int
	CachedTokens             uint64
}

// seqState is a running or waiting sequence.
type seqState struct {
	spec      Seq
	st        *Stream
	req       *generate.Request
	scratch   []float32 // for logprobs
	fed       int       // prompt tokens fed so far
	published bool      // its prompt's blocks are in the prefix cache
	// leader is, while set, the sequence of the same group with the same
	// prompt whose prefill this one waits for (Config.PrefixCache): then it
	// starts from the blocks the leader recorded instead of computing them
	// again (n > 1 choices of one prompt).
	leader  *seqState
	blocks  int               // worst-case KV blocks
	last    Event             // the last event, sent once the sequence is retired
	drafter generate.Drafter  // Config.NewDrafter's, or nil
	prompt  []PromptLogprob   // Seq.Echo's, until the first event carries them
	pool    *generate.Pooling // Seq.Embed's
}

// push sends ev, with the prompt's log probabilities if it is the first.
func (q *seqState) push(ev Event) {
	ev.Prompt, q.prompt = q.prompt, nil
	q.st.push(ev)
}

// group is one Submit: sequences admitted together.
type group struct {
	ctx    context.Context
	seqs   []*seqState
	blocks int
	stop   func() bool // unregisters the cancellation callback
}

// Scheduler runs requests through one engine with continuous batching.
type Scheduler struct {
	e   *generate.Engine
	cfg Config

	mu       sync.Mutex
	queue    []*group
	closing  bool
	abort    bool
	err      error // fatal engine error
	running  int   // sequences running (for Stats)
	reserved int   // blocks reserved by running sequences
	steps    uint64
	cached   uint64 // prompt tokens taken from the prefix cache

	wake chan struct{}
	done chan struct{}
}

// New starts a scheduler on e. The scheduler drives e from its own
// goroutine until Close: do not use e meanwhile.
func New(e *generate.Engine, cfg Config) (*Scheduler, error) {
	if cfg.MaxBatch == 0 {
		cfg.MaxBatch = e.MaxJobs()
	}
	if cfg.MaxQueue == 0 {
		cfg.MaxQueue = 64
	}
	room := e.MaxRows() - cfg.MaxBatch
	if cfg.PrefillChunk == 0 {
		cfg.PrefillChunk = min(256, room)
	}
	if cfg.SampleWorkers == 0 {
		cfg.SampleWorkers = runtime.GOMAXPROCS(0)
	}
	switch {
	case cfg.MaxBatch < 1 || cfg.MaxBatch > e.MaxJobs():
		return nil, fmt.Errorf("sched: %w: max batch %d (the engine takes 1 to %d sequences a step)", ErrConfig, cfg.MaxBatch, e.MaxJobs())
	case cfg.MaxQueue < 0:
		return nil, fmt.Errorf("sched: %w: max queue %d", ErrConfig, cfg.MaxQueue)
	case cfg.SampleWorkers < 0:
		return nil, fmt.Errorf("sched: %w: sample workers %d", ErrConfig, cfg.SampleWorkers)
	case cfg.PromptLookup < 0:
		return nil, fmt.Errorf("sched: %w: prompt lookup %d", ErrConfig, cfg.PromptLookup)
	case cfg.PrefillChunk < 1 || cfg.PrefillChunk > room:
		return nil, fmt.Errorf("sched: %w: prefill chunk %d (the engine has room for 1 to %d prompt tokens beside %d decode rows)",
			ErrConfig, cfg.PrefillChunk, room, cfg.MaxBatch)
	}
	s := &Scheduler{e: e, cfg: cfg, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go s.loop()
	return s, nil
}

// Config returns the configuration in effect (defaults filled in).
func (s *Scheduler) Config() Config { return s.cfg }

// Engine returns the engine the scheduler drives (for its read-only
// properties: context, cache size).
func (s *Scheduler) Engine() *generate.Engine { return s.e }

func (s *Scheduler) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// blocksFor is the worst-case number of KV blocks of a sequence.
func (s *Scheduler) blocksFor(q Seq) int {
	n := s.e.Context()
	switch {
	case q.Embed != "":
		n = len(q.Prompt)
	case q.Options.MaxTokens > 0:
		n = min(len(q.Prompt)+q.Options.MaxTokens, n)
	}
	b := s.e.Cache().BlockSize()
	return (n + b - 1) / b
}

// Submit queues a group of sequences that are admitted together, and
// returns a Stream for each. It fails at once for an invalid sequence
// (generate's errors: a prompt that does not fit the context, bad
// options), ErrTooLarge, ErrQueueFull and ErrClosed. Cancelling ctx ends
// the sequences.
func (s *Scheduler) Submit(ctx context.Context, seqs []Seq) ([]*Stream, error) {
	if len(seqs) == 0 {
		return nil, fmt.Errorf("sched: %w: no sequences", ErrTooLarge)
	}
	g := &group{ctx: ctx}
	streams := make([]*Stream, len(seqs))
	for i, q := range seqs {
		if q.Logprobs > MaxTopLogprobs {
			return nil, fmt.Errorf("sched: %w: %d top log probabilities (at most %d)", ErrConfig, q.Logprobs, MaxTopLogprobs)
		}
		if q.Echo && q.Logprobs < 0 {
			return nil, fmt.Errorf("sched: %w: the prompt's log probabilities (Echo) need Logprobs ≥ 0", ErrConfig)
		}
		var pool *generate.Pooling
		if q.Embed != "" {
			var err error
			if pool, err = generate.NewPooling(q.Embed); err != nil {
				return nil, fmt.Errorf("sched: %w: pooling %q (mean, last or cls)", ErrConfig, q.Embed)
			}
			if q.Echo || q.Logprobs >= 0 {
				return nil, fmt.Errorf("sched: %w: an embedding (Embed) has no log probabilities", ErrConfig)
			}
			q.Options.PromptLookup = 0
		}
		if q.Options.PromptLookup == 0 && q.Logprobs < 0 {
			q.Options.PromptLookup = s.cfg.PromptLookup
		}
		// NewRequest checks the prompt and options without touching the
		// engine's state (it makes an empty sequence), so it is safe here.
		r, err := generate.NewRequest(s.e, q.Prompt, q.Options)
		if err != nil {
			for _, x := range g.seqs {
				x.req.Close()
			}
			return nil, err
		}
		st := &seqState{spec: q, st: newStream(), req: r, blocks: s.blocksFor(q), pool: pool}
		g.seqs = append(g.seqs, st)
		g.blocks += st.blocks
		streams[i] = st.st
	}
	fail := func(err error) ([]*Stream, error) {
		for _, x := range g.seqs {
			x.req.Close()
		}
		return nil, err
	}
	if g.blocks > s.e.Cache().NumBlocks() || len(seqs) > s.cfg.MaxBatch {
		return fail(fmt.Errorf("sched: %w: %d sequences needing %d KV blocks (the server runs %d sequences, %d blocks of %d positions)",
			ErrTooLarge, len(seqs), g.blocks, s.cfg.MaxBatch, s.e.Cache().NumBlocks(), s.e.Cache().BlockSize()))
	}
	s.mu.Lock()
	switch {
	case s.closing:
		s.mu.Unlock()
		return fail(fmt.Errorf("sched: %w", ErrClosed))
	case s.err != nil:
		err := s.err
		s.mu.Unlock()
		return fail(fmt.Errorf("sched: engine failed earlier: %w", err))
	case len(s.queue) >= s.cfg.MaxQueue:
		n := len(s.queue)
		s.mu.Unlock()
		return fail(fmt.Errorf("sched: %w (%d waiting)", ErrQueueFull, n))
	}
	g.stop = context.AfterFunc(ctx, s.signal)
	s.queue = append(s.queue, g)
	s.mu.Unlock()
	s.signal()
	return streams, nil
}

// Stats returns a snapshot of the scheduler's state.
func (s *Scheduler) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.e.Cache()
	held, idle := c.CachedBlocks()
	return Stats{Running: s.running, Queued: len(s.queue), BlocksUsed: c.NumBlocks() - c.FreeBlocks() - idle,
		BlocksTotal: c.NumBlocks(), Reserved: s.reserved, Steps: s.steps, Err: s.err,
		CachedBlocks: held, IdleBlocks: idle, CachedTokens: s.cached}
}

// Err returns the engine error that stopped the scheduler, if any.
func (s *Scheduler) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close stops admitting new requests and waits for the running and queued
// ones to finish. When ctx ends first, the rest are cancelled (their
// streams end with ErrClosed) and Close returns ctx's error. The engine is
// the caller's again afterwards.
func (s *Scheduler) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.signal()
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	s.abort = true
	s.mu.Unlock()
	s.signal()
	<-s.done
	return ctx.Err()
}

// loop is the scheduler's goroutine.
func (s *Scheduler) loop() {
	defer close(s.done)
	var (
		running []*seqState
		groups  = map[*seqState]*group{}
		jobs    []generate.Job
		owners  []*seqState
		rows    []drawn // host work of the step's rows
	)
	// finish ends a sequence: it frees its blocks now and queues its
	// last event, which settle sends once the books are updated, so a
	// client that sees its last event finds its blocks free.
	var ending []*seqState
	// follow starts the sequences waiting for leader's prefill from the
	// blocks it recorded (or from scratch, if it ended first).
	follow := func(leader *seqState) {
		for _, q := range running {
			if q.leader == leader {
				q.leader = nil
				if q.req != nil {
					q.fed = q.req.UsePrefix()
					s.cached += uint64(q.fed)
				}
			}
		}
	}
	finish := func(q *seqState, ev Event) {
		follow(q)
		ev.Done = true
		ev.Token.ID = -1
		ev.Stats = q.req.Stats()
		if s.cfg.PrefixCache && ev.Err == nil && q.req.Done() {
			q.req.PublishPrefix() // prompt and answer: a chat's next turn repeats both
		}
		q.req.Close()
		q.req = nil
		if c, ok := q.drafter.(interface{ Close() }); ok {
			c.Close()
		}
		q.drafter = nil
		q.last = ev
		ending = append(ending, q)
	}
	settle := func() {
		kept := running[:0]
		released := 0
		for _, q := range running {
			if q.req != nil {
				kept = append(kept, q)
				continue
			}
			released += q.blocks
			if g := groups[q]; g != nil {
				delete(groups, q)
				g.stop()
			}
		}
		clear(running[len(kept):])
		running = kept
		s.mu.Lock()
		s.reserved -= released
		s.running = len(running)
		s.mu.Unlock()
		for _, q := range ending {
			q.push(q.last)
		}
		clear(ending)
		ending = ending[:0]
	}
	for {
		// Admission and cancellation of waiting requests, under the lock.
		s.mu.Lock()
		abort := s.abort
		for i := 0; i < len(s.queue); i++ {
			g := s.queue[i]
			err := g.ctx.Err()
			switch {
			case abort:
				err = ErrClosed
			case s.err != nil:
				err = fmt.Errorf("sched: engine failed: %w", s.err)
			}
			if err == nil {
				continue
			}
			for _, q := range g.seqs {
				finish(q, Event{Err: err})
			}
			g.stop()
			s.queue = slices.Delete(s.queue, i, i+1)
			i--
		}
		for len(s.queue) > 0 && s.err == nil {
			g := s.queue[0]
			if len(running)+len(g.seqs) > s.cfg.MaxBatch || s.reserved+g.blocks > s.e.Cache().NumBlocks() {
				break
			}
			s.queue = s.queue[1:]
			s.reserved += g.blocks
			for i, q := range g.seqs {
				lead := g.seqs[0]
				switch {
				case !s.cfg.PrefixCache, q.spec.Echo, q.spec.Embed != "": // computed in full
				case i > 0 && len(q.spec.Prompt) > s.e.Cache().BlockSize() && slices.Equal(q.spec.Prompt, lead.spec.Prompt):
					q.leader = lead
				default:
					q.fed = q.req.UsePrefix()
					s.cached += uint64(q.fed)
				}
				if s.cfg.NewDrafter != nil && q.spec.Options.PromptLookup > 0 && q.spec.Logprobs < 0 {
					q.drafter = s.cfg.NewDrafter()
					q.req.SetDrafter(q.drafter)
				}
				running = append(running, q)
				groups[q] = g
			}
		}
		exit := (s.closing || s.err != nil) && len(s.queue) == 0 && len(running) == 0
		s.mu.Unlock()

		// Cancelled running sequences end now, freeing their blocks.
		for _, q := range running {
			if err := groups[q].ctx.Err(); err != nil || abort {
				if abort {
					err = ErrClosed
				}
				finish(q, Event{Err: err})
			}
		}
		settle()

		if exit {
			return
		}
		if len(running) == 0 {
			<-s.wake
			continue
		}

		// One step: every decoding sequence, then prompt chunks.
		jobs, owners = jobs[:0], owners[:0]
		tokens := 0
		for _, q := range running {
			if q.fed == len(q.spec.Prompt) {
				jobs, owners = append(jobs, s.job(q, 1)), append(owners, q)
				tokens++
			}
		}
		budget, outs := s.cfg.PrefillChunk, s.e.MaxOut()-len(jobs)
		for _, q := range running {
			if q.fed < len(q.spec.Prompt) && q.leader == nil && budget > 0 && len(jobs) < s.e.MaxJobs() && outs > 0 {
				var j generate.Job
				switch {
				case q.spec.Echo: // the logits after every token
					j = q.req.Job(min(budget, outs))
					j.Want, j.Outs = generate.WantLogits, len(j.Tokens)
				case q.pool != nil:
					j = s.embedJob(q, budget, outs)
				default:
					j = s.job(q, budget)
				}
				jobs, owners = append(jobs, j), append(owners, q)
				budget -= len(j.Tokens)
				tokens += len(j.Tokens)
				outs -= resultRows(&j)
			}
		}
		tokens += s.drafts(jobs, owners, tokens)
		start := time.Now()
		if err := s.e.Step(jobs); err != nil {
			// Reservations make a full cache impossible, so any error is
			// the engine's (the backend keeps failing after its first
			// error): fail everything and stop admitting.
			s.mu.Lock()
			s.err = err
			s.mu.Unlock()
			for _, q := range running {
				finish(q, Event{Err: fmt.Errorf("sched: step: %w", err)})
			}
			settle()
			continue
		}
		if s.cfg.OnStep != nil {
			s.cfg.OnStep(len(jobs), tokens, time.Since(start))
		}
		s.mu.Lock()
		s.steps++
		s.mu.Unlock()
		rows = s.draw(jobs, owners, rows)
		for i := range jobs {
			q := owners[i]
			j := &jobs[i]
			if q.pool != nil {
				q.pool.Add(j)
				j.Want = generate.WantNone
				q.req.Advance(j) // the prompt fed so far; nothing sampled
				if q.fed += len(j.Tokens); q.fed == len(q.spec.Prompt) {
					finish(q, Event{Embedding: q.pool.Vector()})
				}
				continue
			}
			if q.fed < len(q.spec.Prompt) {
				q.fed += len(j.Tokens)
			}
			tok := q.req.Advance(j)
			if s.cfg.PrefixCache && !q.published && q.fed == len(q.spec.Prompt) {
				q.req.PublishPrefix()
				q.published = true
				follow(q)
			}
			if tok.ID >= 0 || tok.Text != "" {
				ev := Event{Token: tok}
				if tok.ID >= 0 && rows[i].ok {
					ev.Logprob, ev.Top = rows[i].logprob, rows[i].top
				}
				q.push(ev)
			}
			// A step that verified drafts made more tokens (never with
			// log probabilities: such sequences get no drafts).
			for tok, more := q.req.More(); more; tok, more = q.req.More() {
				if tok.ID >= 0 || tok.Text != "" {
					q.push(Event{Token: tok})
				}
			}
			if q.req.Done() {
				finish(q, Event{})
			}
		}
		settle()
	}
}

// drawn is a row's host work after a step: its log probabilities (the
// token itself is left in the job by Request.Sample).
type drawn struct {
	ok      bool // log probabilities were computed
	logprob float32
	top     []TokenLogprob
}

// draw runs the host work of every row of a finished step: the token
// draw (Request.Sample) and the log probabilities asked for. Rows are
// independent (each request has its own sampler), so when their logits
// are many it spreads them over up to SampleWorkers goroutines, the
// scheduler's own included; Advance then finds each token drawn. It
// returns out resized to the jobs, row i's log probabilities in out[i].
func (s *Scheduler) draw(jobs []generate.Job, owners []*seqState, out []drawn) []drawn {
	out = slices.Grow(out[:0], len(jobs))[:len(jobs)]
	clear(out)
	row := func(i int) {
		j, q := &jobs[i], owners[i]
		if j.Want != generate.WantLogits {
			return
		}
		if q.spec.Echo && q.fed < len(q.spec.Prompt) {
			s.promptLogprobs(q, j)
			if j.Want == generate.WantNone {
				return
			}
		}
		q.req.Sample(j)
		if q.spec.Logprobs >= 0 && j.ID >= 0 {
			d := &out[i]
			d.ok = true
			d.logprob, d.top = logprobs(j.Logits, j.ID, q.spec.Logprobs, &q.scratch)
		}
	}
	n, values := 0, 0
	for i := range jobs {
		if jobs[i].Want == generate.WantLogits {
			n++
			values += len(jobs[i].Logits)
		}
	}
	workers := min(s.cfg.SampleWorkers, n)
	if values < parallelSampleMin {
		workers = 1
	}
	if workers > 1 {
		parallelDraws.Add(1)
	}
	par.For(len(jobs), workers, row)
	return out
}

// promptLogprobs reads the log probability of each prompt token after j's
// rows (a prompt chunk of an echoed sequence: the logits after each of its
// tokens), then leaves j as the Request made it: the last chunk with the
// last row's logits to sample from, the others asking for nothing.
func (s *Scheduler) promptLogprobs(q *seqState, j *generate.Job) {
	vocab := len(j.Logits) / len(j.Tokens)
	for k := range j.Tokens {
		p := q.fed + k + 1 // the prompt token these logits predict
		if p == len(q.spec.Prompt) {
			break
		}
		lp, top := logprobs(j.Logits[k*vocab:(k+1)*vocab], q.spec.Prompt[p], q.spec.Logprobs, &q.scratch)
		q.prompt = append(q.prompt, PromptLogprob{Logprob: lp, Top: top})
	}
	j.Outs = 0
	if q.fed+len(j.Tokens) < len(q.spec.Prompt) {
		j.Want, j.Logits = generate.WantNone, nil
		return
	}
	j.Logits = j.Logits[len(j.Logits)-vocab:]
}

// embedJob returns q's next prompt chunk (an embedding, Seq.Embed), of at
// most rows tokens and outs result rows, asking for the hidden states its
// pooling needs.
func (s *Scheduler) embedJob(q *seqState, rows, outs int) generate.Job {
	j := q.req.Job(q.pool.Limit(q.fed, rows, outs))
	q.pool.Mark(&j, q.fed, len(q.spec.Prompt))
	return j
}

// resultRows is the number of result rows j takes in a step.
func resultRows(j *generate.Job) int {
	if j.Want == generate.WantNone {
		return 0
	}
	return max(j.Outs, 1)
}

// parallelSampleMin is ParallelSampleMin, lowered by tests; parallelDraws
// counts the steps that drew in parallel.
var (
	parallelSampleMin = ParallelSampleMin
	parallelDraws     atomic.Int64
)

// drafts gives the decode jobs of sequences with prompt lookup their
// drafts, in the step's spare result and token rows (jobs already holds
// every decode row and prompt chunk, rows of them), and returns the token
// rows they add.
func (s *Scheduler) drafts(jobs []generate.Job, owners []*seqState, rows int) int {
	outs := 0
	for i := range jobs {
		outs += resultRows(&jobs[i])
	}
	spare := min(s.e.MaxOut()-outs, s.e.MaxRows()-rows)
	if m := s.cfg.SpeculateMaxBatch; m > 0 {
		decoding := 0
		for _, q := range owners {
			if q.fed == len(q.spec.Prompt) {
				decoding++
			}
		}
		if decoding > m {
			return 0 // batching already keeps the device busy
		}
	}
	added := 0
	for i := range jobs {
		q := owners[i]
		if spare <= 0 {
			break
		}
		if q.fed < len(q.spec.Prompt) || q.spec.Logprobs >= 0 || q.spec.Options.PromptLookup == 0 {
			continue
		}
		j := q.req.Job(1 + spare)
		if n := len(j.Tokens) - 1; n > 0 {
			jobs[i] = j
			spare -= n
			added += n
		}
	}
	return added
}

// job returns q's next job, asking for logits when log probabilities are wanted.
func (s *Scheduler) job(q *seqState, maxRows int) generate.Job {
	j := q.req.Job(maxRows)
	if j.Want == generate.WantArgMax && q.spec.Logprobs >= 0 {
		j.Want = generate.WantLogits // greedy sampling of the logits picks the same id
	}
	return j
}

// logprobs returns the log-softmax of logits at id and the top k entries
// (largest first, smaller id first on ties). NaN logits are impossible;
// +Inf ones share all the probability. buf is scratch the size of logits,
// reused when it is large enough.
func logprobs(logits []float32, id int32, k int, buf *[]float32) (float32, []TokenLogprob) {
	if cap(*buf) < len(logits) {
		*buf = make([]float32, len(logits))
	}
	x := (*buf)[:len(logits)]
	copy(x, logits)
	m, s := vec.ExpSum(x, 1) // vectorised; NaN or no finite maximum: the loop below
	lse := m + float32(math.Log(float64(s)))
	if math.IsInf(float64(m), 0) || m != m || s != s {
		m = float32(math.Inf(-1))
		for _, v := range logits {
			if v > m {
				m = v
			}
		}
		var sum float64
		for _, v := range logits {
			switch {
			case math.IsInf(float64(m), 1):
				if v == m {
					sum++
				}
			case v == v:
				sum += math.Exp(float64(v - m))
			}
		}
		lse = m + float32(math.Log(sum))
		if math.IsInf(float64(m), 1) {
			lse = -float32(math.Log(sum)) // the log-probability of each +Inf
		}
	}
	lp := func(i int32) float32 {
		v := logits[i] - lse
		if math.IsInf(float64(m), 1) {
			v = float32(math.Inf(-1))
			if logits[i] == m {
				v = lse
			}
		}
		if v != v {
			return float32(math.Inf(-1))
		}
		return v
	}
	if k == 0 {
		return lp(id), nil
	}
	top := make([]TokenLogprob, 0, k+1)
	for i, v := range logits {
		if v != v || len(top) == k && !(v > top[k-1].Logprob) {
			continue // NaN is never among the most likely
		}
		at := len(top)
		for at > 0 && v > top[at-1].Logprob {
			at--
		}
		top = slices.Insert(top, at, TokenLogprob{ID: int32(i), Logprob: v})
		if len(top) > k {
			top = top[:k]
		}
	}
	for i := range top {
		top[i].Logprob = lp(top[i].ID)
	}
	return lp(id), top
}
