package generate

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/loomllm/loom/runtime/kvcache"
	"github.com/loomllm/loom/runtime/sample"
)

// Decoder turns token ids into text as they come, holding back incomplete
// UTF-8 characters (tokenizer.Stream implements it).
type Decoder interface {
	// Next adds a token and returns the text now complete.
	Next(id int32) string
	// Flush returns whatever is held back.
	Flush() string
}

// Options configures a generation.
type Options struct {
	// MaxTokens is the most tokens to generate; 0 means until the context
	// is full. A prompt plus MaxTokens beyond the context is an error.
	MaxTokens int
	// Sampling selects tokens (greedy when its Temperature is 0).
	Sampling sample.Options
	// Stop strings end the generation where they appear in the text;
	// neither they nor what follows them is emitted.
	Stop []string
	// IsEnd reports end-of-generation ids (EOS, EOT), which end the
	// generation without being emitted. nil: none.
	IsEnd func(id int32) bool
	// MinTokens, when above 0, keeps the end ids (IsEnd) from being
	// sampled until that many tokens have been generated (their logits
	// are masked; stop strings still apply). Beam search ignores it.
	MinTokens int
	// NewDecoder returns a decoder for the text of the tokens, positioned
	// at the start of a text; nil means no text (Token.Text stays empty
	// and Stop cannot match).
	NewDecoder func() Decoder

	// Beams > 1 selects beam search with that many beams (see Beam).
	Beams int
	// LengthPenalty is beam search's exponent α: a hypothesis scores its
	// summed log-probability divided by (generated tokens)^α. 0 means 1.
	LengthPenalty float64
	// EarlyStopping ends beam search as soon as Beams hypotheses are
	// finished, instead of when no running beam can beat them.
	EarlyStopping bool
	// NewConstraint, if set, makes a Constraint for each sequence: only the
	// tokens it allows are sampled (the others' logits are masked), and the
	// sequence stops when it is done (finish "stop"). Beam search ignores
	// it.
	NewConstraint func() Constraint
	// PromptLookup, when above 0, is the most draft tokens a greedy decode
	// step verifies (prompt lookup decoding): the last tokens of the text
	// so far (3, else 2) are looked up in the earlier text, prompt
	// included, and the tokens that followed their latest occurrence are
	// appended to the step as drafts. The step returns the argmax after
	// each, so every draft the model agrees with is a token gained, and
	// the first disagreement is the model's own next token: the output is
	// exactly greedy decoding's (on a batch-invariant backend), in fewer
	// steps when the text repeats itself (code edits, summaries, quotes).
	// Only for greedy requests without penalties, logit bias or a
	// constraint (the others ignore it); a job then has up to
	// 1+PromptLookup tokens, so the engine needs that many result rows.
	PromptLookup int
	// Drafter, if set, proposes the drafts instead of the lookup in the
	// text (speculative decoding with a draft model: ModelDrafter), up to
	// PromptLookup a step, with the same rules and the same output.
	Drafter Drafter
	// PrefixCache makes Generate start from the longest prefix of the
	// prompt that earlier generations on the engine recorded in its prefix
	// cache (Request.UsePrefix), and record this one's prompt and output
	// (Request.PublishPrefix). Schedulers do this themselves (see
	// sched.Config.PrefixCache); beam search ignores it.
	PrefixCache bool
}

// Constraint restricts the text a sequence may produce (package
// constrain has OpenAI's JSON object mode).
type Constraint interface {
	// Allow sets allow[id] (one entry per vocabulary token) for the tokens
	// that may come next and returns how many there are.
	Allow(allow []bool) int
	// Accept records the token generated.
	Accept(id int32)
	// Done reports that the text is complete.
	Done() bool
}

// Finish is why a generation ended.
type Finish string

// Finish reasons.
const (
	FinishNone    Finish = ""        // still running
	FinishEnd     Finish = "end"     // an end-of-generation token
	FinishStop    Finish = "stop"    // a stop string
	FinishLength  Finish = "length"  // MaxTokens
	FinishContext Finish = "context" // the context is full
)

// Token is one step of output.
type Token struct {
	// ID is the generated token, or -1 when the step only releases text
	// (held back until then) at the end.
	ID int32
	// Text is the text completed by this step, with stop-string
	// candidates held back until they are decided.
	Text string
}

// Stats are a generation's counts and times.
type Stats struct {
	PromptTokens int
	CachedTokens int           // prompt tokens whose keys and values came from the prefix cache
	Tokens       int           // generated tokens (end tokens not counted)
	Drafted      int           // draft tokens verified (Options.PromptLookup)
	Accepted     int           // drafts the model agreed with: tokens gained without a step of their own
	Steps        int           // decode steps (after the first token)
	Prefill      time.Duration // until the first token was chosen
	Decode       time.Duration // after that
	Finish       Finish
}

// Request is one sequence being generated: the state a scheduler keeps
// for it between steps. Use Job to get the next step's work, run it with
// Engine.Step (alone or with other requests' jobs), and give it back to
// Advance. It is not safe for concurrent use.
type Request struct {
	e       *Engine
	opt     Options
	seq     *kvcache.Seq
	sampler *sample.Sampler
	prompt  []int32
	fed     int      // prompt tokens fed so far
	next    [1]int32 // the token to feed in the next decode step
	want    Want
	text    stopper
	stats   Stats
	start   time.Time
	first   time.Time
	ids     []int32

	constraint Constraint // Options.NewConstraint's, or nil
	ends       []int32    // the end ids, masked while fewer than Options.MinTokens are made
	allow      []bool     // the constraint's mask
	masked     []float32  // logits with the disallowed ones at -Inf

	// Prompt lookup (Options.PromptLookup): the text so far as ids
	// (prompt, then generated), the last job's tokens (the token to feed,
	// then the drafts), and the verified tokens Advance has not yet
	// handed out (see More).
	hist    []int32
	spec    []int32
	pending []int32
}

// NewRequest checks the prompt against the context and prepares its
// sequence. Release it with Close.
func NewRequest(e *Engine, prompt []int32, opt Options) (*Request, error) {
	if len(prompt) == 0 {
		return nil, fmt.Errorf("generate: %w: empty prompt (it needs at least a BOS token)", ErrBatch)
	}
	if len(prompt) >= e.ctx {
		return nil, fmt.Errorf("generate: a prompt of %d tokens %w of %d", len(prompt), ErrContext, e.ctx)
	}
	if opt.MaxTokens < 0 {
		return nil, fmt.Errorf("generate: %w: max tokens %d", ErrBatch, opt.MaxTokens)
	}
	if opt.MaxTokens > 0 && len(prompt)+opt.MaxTokens > e.ctx {
		return nil, fmt.Errorf("generate: a prompt of %d tokens plus %d to generate %w of %d", len(prompt), opt.MaxTokens, ErrContext, e.ctx)
	}
	for _, t := range prompt {
		if t < 0 || int(t) >= e.vocab {
			return nil, fmt.Errorf("generate: prompt token %d outside the vocabulary of %d: %w", t, e.vocab, ErrBatch)
		}
	}
	s, err := sample.New(opt.Sampling)
	if err != nil {
		return nil, err
	}
	r := &Request{e: e, opt: opt, seq: e.cache.NewSeq(), sampler: s, prompt: prompt, want: WantLogits, start: time.Now()}
	if opt.Sampling.Greedy() && opt.Sampling.RepeatPenalty <= 1 && opt.Sampling.PresencePenalty == 0 &&
		opt.Sampling.FrequencyPenalty == 0 && len(opt.Sampling.LogitBias) == 0 {
		r.want = WantArgMax
	}
	if opt.NewConstraint != nil {
		r.constraint = opt.NewConstraint()
		r.want = WantLogits // the mask is applied on the host
	}
	if opt.MinTokens > 0 && opt.IsEnd != nil {
		for id := range e.vocab {
			if opt.IsEnd(int32(id)) {
				r.ends = append(r.ends, int32(id))
			}
		}
		if len(r.ends) > 0 {
			r.want = WantLogits // the mask is applied on the host
		}
	}
	for _, t := range prompt {
		s.Accept(t)
	}
	r.text = newStopper(opt, prompt)
	r.stats.PromptTokens = len(prompt)
	if opt.PromptLookup < 0 {
		return nil, fmt.Errorf("generate: %w: prompt lookup %d", ErrBatch, opt.PromptLookup)
	}
	if opt.PromptLookup > 0 && r.want == WantArgMax {
		r.hist = append(make([]int32, 0, len(prompt)+64), prompt...)
		r.spec = make([]int32, 1+opt.PromptLookup)
	}
	return r, nil
}

// Close frees the request's KV blocks.
func (r *Request) Close() { r.seq.Free() }

// SetDrafter sets the request's drafter (Options.Drafter), which takes
// effect from its next decode step; nil returns it to prompt lookup.
func (r *Request) SetDrafter(d Drafter) { r.opt.Drafter = d }

// UsePrefix starts the request on the longest prefix of its prompt the
// engine's cache has recorded (kvcache.Cache.Lookup), so those positions
// need no forward pass, and returns how many prompt tokens that skips. Call
// it before the first Job.
func (r *Request) UsePrefix() int {
	if r.fed != 0 || r.seq.Len() != 0 {
		return 0
	}
	seq, n := r.e.cache.Lookup(r.prompt)
	if n == 0 {
		seq.Free()
		return 0
	}
	r.seq.Free()
	r.seq, r.fed = seq, n
	r.stats.CachedTokens = n
	return n
}

// PublishPrefix records the request's whole blocks in the engine's prefix
// cache (kvcache.Seq.Publish): its prompt and the tokens generated so far,
// as far as their keys and values are stored, so a later prompt that
// repeats them (a chat's next turn) starts from there. Before the whole
// prompt has been fed it does nothing.
func (r *Request) PublishPrefix() {
	if r.fed == len(r.prompt) {
		_ = r.seq.Publish(append(r.prompt[:len(r.prompt):len(r.prompt)], r.ids...))
	}
}

// Done reports whether the generation has finished.
func (r *Request) Done() bool { return r.stats.Finish != FinishNone }

// Stats returns the counts and times so far.
func (r *Request) Stats() Stats { return r.stats }

// Tokens returns the generated ids so far.
func (r *Request) Tokens() []int32 { return r.ids }

// Job returns the work for the next step: up to maxRows prompt tokens
// while prefilling, then the last sampled token, followed, with
// Options.PromptLookup, by up to maxRows-1 draft tokens (Job.Outs
// results). Call it only while not Done.
func (r *Request) Job(maxRows int) Job {
	if r.fed < len(r.prompt) {
		n := min(max(maxRows, 1), len(r.prompt)-r.fed)
		j := Job{Seq: r.seq, Tokens: r.prompt[r.fed : r.fed+n]}
		if r.fed+n == len(r.prompt) {
			j.Want = r.want
		}
		return j
	}
	if r.spec != nil && maxRows > 1 {
		// Drafts may not take the sequence past the context, nor the
		// step's tokens past MaxTokens.
		k := min(len(r.spec)-1, maxRows-1, r.e.MaxOut()-1, r.e.ctx-r.seq.Len()-1)
		if r.opt.MaxTokens > 0 {
			k = min(k, r.opt.MaxTokens-r.stats.Tokens-1)
		}
		draft := r.spec[1 : 1+max(k, 0)]
		n := 0
		if r.opt.Drafter != nil {
			n = r.opt.Drafter.Draft(r.hist, draft)
		} else {
			n = r.lookup(draft)
		}
		if n > 0 {
			r.spec[0] = r.next[0]
			return Job{Seq: r.seq, Tokens: r.spec[:1+n], Want: WantArgMax, Outs: 1 + n}
		}
	}
	return Job{Seq: r.seq, Tokens: r.next[:], Want: r.want}
}

// lookup fills draft with the tokens that followed the latest earlier
// occurrence of the text's last 3 tokens (else its last 2) and returns
// how many it found.
func (r *Request) lookup(draft []int32) int {
	t := r.hist
	if len(draft) == 0 {
		return 0
	}
	for n := min(3, len(t)-1); n >= 2; n-- {
		tail := t[len(t)-n:]
		for i := len(t) - n - 1; i >= 0; i-- {
			if t[i] == tail[0] && slicesEqual(t[i:i+n], tail) {
				return copy(draft, t[i+n:])
			}
		}
	}
	return 0
}

func slicesEqual(a, b []int32) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Sample draws the token of a finished step now, if the step returned
// logits (WantLogits), and leaves it in j as if the step had picked it
// (j.ID, with j.Want WantArgMax), so Advance only records it. It touches
// nothing but this request's sampler and j, so a scheduler may run Sample
// for the jobs of different requests on different goroutines after a
// step, then Advance them in turn. j.Logits stays set.
func (r *Request) Sample(j *Job) {
	if j.Want != WantLogits {
		return
	}
	logits := j.Logits
	if r.constraint != nil {
		if len(r.allow) < len(logits) {
			r.allow, r.masked = make([]bool, len(logits)), make([]float32, len(logits))
		}
		if r.constraint.Allow(r.allow) == 0 {
			j.ID, j.Want = -1, WantArgMax // nothing may follow: Advance stops
			return
		}
		ninf := float32(math.Inf(-1))
		for i, l := range logits {
			if !r.allow[i] {
				l = ninf
			}
			r.masked[i] = l
		}
		logits = r.masked[:len(logits)]
	}
	if r.stats.Tokens < r.opt.MinTokens && len(r.ends) > 0 {
		if r.constraint == nil {
			if len(r.masked) < len(logits) {
				r.masked = make([]float32, len(logits))
			}
			logits = r.masked[:copy(r.masked, logits)]
		}
		for _, id := range r.ends {
			logits[id] = float32(math.Inf(-1))
		}
	}
	j.ID = r.sampler.Sample(logits)
	j.Want = WantArgMax
}

// Advance consumes the result of the step that ran Job and returns the
// output of that step: a token (or -1 and no text after a prefill chunk,
// or at an end token with nothing held back). A step that verified draft
// tokens (Options.PromptLookup) may have made several: Advance returns the
// first, More the others.
func (r *Request) Advance(j *Job) Token {
	if len(r.pending) > 0 {
		panic("generate: Request.Advance before More returned every token of the last step")
	}
	if r.fed < len(r.prompt) {
		r.fed += len(j.Tokens)
		if j.Want == WantNone {
			return Token{ID: -1}
		}
	} else {
		r.stats.Steps++
	}
	now := time.Now()
	if r.first.IsZero() {
		r.first = now
		r.stats.Prefill = now.Sub(r.start)
	}
	r.stats.Decode = now.Sub(r.first)

	r.Sample(j)
	if j.Outs > 1 {
		return r.verify(j)
	}
	return r.accept(j.ID)
}

// verify takes the result of a step with drafts: the model's token after
// the fed token and after each draft. Drafts are accepted while each
// equals the model's token before it; the keys and values of the rest are
// dropped. The tokens made are the model's own, up to and including its
// first disagreement (or its token after the last draft).
func (r *Request) verify(j *Job) Token {
	drafts, out := j.Tokens[1:], j.IDs
	a := 0
	for a < len(drafts) && out[a] == drafts[a] {
		a++
	}
	r.stats.Drafted += len(drafts)
	r.stats.Accepted += a
	_ = r.seq.Truncate(r.seq.Len() - (len(drafts) - a)) // shrinking cannot fail
	r.pending = append(r.pending[:0], out[1:a+1]...)
	return r.accept(out[0])
}

// More returns the next token made by the last step, after Advance
// returned its first (a step that verified drafts the model agreed with
// makes several), and false when there is none left or the generation
// has ended. Call it until it reports false before the next Job.
func (r *Request) More() (Token, bool) {
	if len(r.pending) == 0 {
		return Token{}, false
	}
	if r.Done() {
		r.pending = r.pending[:0]
		return Token{}, false
	}
	id := r.pending[0]
	r.pending = r.pending[1:]
	return r.accept(id), true
}

// accept records the token id chosen for the next position (or -1: a
// constraint that allows nothing more) and returns the step's output.
func (r *Request) accept(id int32) Token {
	if id < 0 { // a constraint that allows nothing more
		r.stats.Finish = FinishStop
		return Token{ID: -1, Text: r.text.flush()}
	}
	r.sampler.Accept(id)
	if r.opt.IsEnd != nil && r.opt.IsEnd(id) {
		r.stats.Finish = FinishEnd
		return Token{ID: -1, Text: r.text.flush()}
	}
	r.ids = append(r.ids, id)
	if r.hist != nil {
		r.hist = append(r.hist, id)
	}
	r.stats.Tokens++
	r.next[0] = id
	text, stopped := r.text.push(id)
	if r.constraint != nil {
		r.constraint.Accept(id)
	}
	switch {
	case stopped:
		r.stats.Finish = FinishStop
	case r.constraint != nil && r.constraint.Done():
		r.stats.Finish = FinishStop // the constrained text is whole (flushed below)
	case r.opt.MaxTokens > 0 && r.stats.Tokens >= r.opt.MaxTokens:
		r.stats.Finish = FinishLength
	case len(r.prompt)+r.stats.Tokens >= r.e.ctx:
		r.stats.Finish = FinishContext
	}
	if r.stats.Finish != FinishNone && !stopped {
		text += r.text.flush()
	}
	return Token{ID: id, Text: text}
}

// Generate runs a request alone on e until it finishes, calling emit
// with each token (emit returns false to stop early). Beam search
// (opt.Beams > 1) emits the best hypothesis once it is chosen. Generate
// returns the statistics, or the context's error when it is cancelled.
func Generate(ctx context.Context, e *Engine, prompt []int32, opt Options, emit func(Token) bool) (Stats, error) {
	if opt.Beams > 1 {
		return Beam(ctx, e, prompt, opt, emit)
	}
	r, err := NewRequest(e, prompt, opt)
	if err != nil {
		return Stats{}, err
	}
	defer r.Close()
	if opt.PrefixCache {
		r.UsePrefix()
	}
	published := false
	jobs := make([]Job, 1)
	for !r.Done() {
		if err := ctx.Err(); err != nil {
			return r.Stats(), err
		}
		jobs[0] = r.Job(e.MaxRows())
		if err := e.Step(jobs); err != nil {
			return r.Stats(), err
		}
		t, more := r.Advance(&jobs[0]), true
		if opt.PrefixCache && !published && r.fed == len(r.prompt) {
			r.PublishPrefix()
			published = true
		}
		stopped := false
		for ; more; t, more = r.More() {
			if (t.ID >= 0 || t.Text != "") && !emit(t) {
				stopped = true
				break
			}
		}
		if stopped {
			break
		}
	}
	if opt.PrefixCache && r.Done() {
		r.PublishPrefix()
	}
	return r.Stats(), nil
}

// stopper turns generated tokens into text, holding back any tail that
// could be the start of a stop string until it is decided.
type stopper struct {
	dec   Decoder
	stops []string
	held  string
}

func newStopper(opt Options, prompt []int32) stopper {
	s := stopper{}
	for _, st := range opt.Stop {
		if st != "" {
			s.stops = append(s.stops, st)
		}
	}
	if opt.NewDecoder != nil {
		s.dec = opt.NewDecoder()
		for _, t := range prompt { // continue the text after the prompt
			s.dec.Next(t)
		}
		s.dec.Flush()
	}
	return s
}

// push adds a token's text and returns what can be emitted, and whether a
// stop string has appeared (then nothing more is emitted).
func (s *stopper) push(id int32) (string, bool) {
	if s.dec == nil {
		return "", false
	}
	text := s.dec.Next(id)
	if len(s.stops) == 0 {
		return text, false
	}
	s.held += text
	if cut := firstStop(s.held, s.stops); cut >= 0 {
		out := s.held[:cut]
		s.held = ""
		s.stops = nil
		s.dec = nil
		return out, true
	}
	keep := 0
	for _, st := range s.stops {
		for k := min(len(st)-1, len(s.held)); k > keep; k-- {
			if strings.HasSuffix(s.held, st[:k]) {
				keep = k
				break
			}
		}
	}
	out := s.held[:len(s.held)-keep]
	s.held = s.held[len(s.held)-keep:]
	return out, false
}

// flush returns everything held back, at the end of the generation.
func (s *stopper) flush() string {
	if s.dec == nil {
		return ""
	}
	out := s.held + s.dec.Flush()
	s.held = ""
	if i := firstStop(out, s.stops); i >= 0 {
		out = out[:i]
	}
	return out
}

// firstStop returns the index of the earliest stop string in text, or -1.
func firstStop(text string, stops []string) int {
	cut := -1
	for _, st := range stops {
		if i := strings.Index(text, st); i >= 0 && (cut < 0 || i < cut) {
			cut = i
		}
	}
	return cut
}
