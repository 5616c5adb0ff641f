// Package bench measures loom end to end — time to first token, prefill
// and decode throughput — and reports each figure against a ceiling
// measured on the same machine in the same run: the memory bandwidth for
// decode (which streams every weight once per step) and the matrix-multiply
// rate for prefill (which is matrix-matrix work).
//
// It drives a loaded model through its generate.Engine directly, with
// random token ids, so the figures are the engine's and not the
// tokenizer's or the sampler's. Synthetic models (model/synth presets) give
// the same speed as trained weights of the same shape, so Llama-3-8B-sized
// runs need no file.
//
// `loom bench` is the command-line front end; bench/hf_baseline.py measures
// the same figures through Hugging Face transformers for comparison, and
// bench/README.md says how to reproduce every published number.
package bench

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/loomllm/loom/cpu"
	"github.com/loomllm/loom/internal/par"
	"github.com/loomllm/loom/model"
	"github.com/loomllm/loom/runtime/backend"
	"github.com/loomllm/loom/runtime/generate"
	"github.com/loomllm/loom/runtime/kvcache"
	"github.com/loomllm/loom/runtime/quant"
	"github.com/loomllm/loom/runtime/sample"
)

// ErrConfig reports benchmark settings that cannot run (a batch larger than
// the engine takes, a prompt longer than the context).
var ErrConfig = errors.New("invalid benchmark configuration")

// Config says what to measure.
type Config struct {
	// PromptLen is the prompt length of the prefill measurement (0 skips it).
	PromptLen int
	// DecodePrompt is the context each sequence holds before decoding starts.
	DecodePrompt int
	// Gen is the number of decode steps timed per batch size.
	Gen int
	// Batches lists the decode batch sizes (sequences per step).
	Batches []int
	// Reps is how many times the prefill is repeated (the median is kept).
	Reps int
	// Seed makes the random token ids reproducible.
	Seed uint64
	// Temperatures lists how the timed decode steps pick tokens, each
	// measured at every batch size: 0 greedily with the backend's argmax
	// (only token ids come back), a temperature above 0 sampled as a server
	// samples (the logits of every row come back to the host and each
	// row's token is drawn by its own sampler, the rows spread over
	// GOMAXPROCS goroutines). Empty means greedy only.
	Temperatures []float32
}

// Ceilings are the machine's measured limits that results are reported against.
type Ceilings struct {
	// Bandwidth is memory bandwidth in bytes/s: a streaming read on the
	// CPU, a device-to-device copy counting bytes read and written on a GPU.
	Bandwidth       float64 `json:"bandwidth_bytes_s"`
	BandwidthMethod string  `json:"bandwidth_method"`
	// MatMul is a matrix-multiply rate in FLOP/s (0 when not measured).
	MatMul       float64 `json:"matmul_flop_s"`
	MatMulMethod string  `json:"matmul_method"`
}

// Result is one measurement. Figures that do not apply to its Kind are zero.
type Result struct {
	Engine    string `json:"engine"`
	Device    string `json:"device"`
	Model     string `json:"model"`
	DType     string `json:"dtype"`
	Kind      string `json:"kind"` // "prefill" or "decode"
	Batch     int    `json:"batch"`
	PromptLen int    `json:"prompt_len"`
	Gen       int    `json:"gen,omitempty"`
	// Temperature is the sampling temperature of the decode steps (0:
	// greedy on the device).
	Temperature float32 `json:"temperature,omitempty"`

	TTFTms          float64 `json:"ttft_ms,omitempty"`
	PrefillTokS     float64 `json:"prefill_tok_s,omitempty"`
	PrefillTFLOPS   float64 `json:"prefill_tflops,omitempty"`
	PrefillFracPeak float64 `json:"prefill_frac_matmul,omitempty"`

	DecodeMsP50         float64 `json:"decode_ms_p50,omitempty"`
	DecodeMsP99         float64 `json:"decode_ms_p99,omitempty"`
	DecodeTokS          float64 `json:"decode_tok_s,omitempty"` // per sequence
	DecodeTokSAggregate float64 `json:"decode_tok_s_aggregate,omitempty"`
	DecodeGBs           float64 `json:"decode_gbs,omitempty"`
	DecodeFracBW        float64 `json:"decode_frac_bandwidth,omitempty"`

	PeakHostBytes int64    `json:"peak_host_bytes"`
	DeviceBytes   int64    `json:"device_bytes,omitempty"`
	Ceilings      Ceilings `json:"ceilings"`
}

// Shape is what the figures are computed from: the model's sizes in
// bytes and FLOPs.
type Shape struct {
	Name  string
	DType string
	Cfg   model.Config
	// StepBytes is the weight bytes one decode step reads: every matrix
	// except the token embedding table (of which it gathers a few rows),
	// which is read as the output projection when the model ties them.
	StepBytes int64
	// MatParams is the number of weights in the per-token matrices (all
	// layers' projections), excluding the embedding and output matrices.
	MatParams int64
	// KVBytesPerPos is the cache bytes one position takes over all layers.
	KVBytesPerPos int64
}

// ShapeOf computes the figures' inputs for a model description and the
// key/value cache element type.
func ShapeOf(m *model.Model, kv backend.DType) Shape {
	c := m.Config
	s := Shape{Name: c.Name, Cfg: c}
	types := map[string]int64{}
	for name, t := range m.Tensors {
		n := int64(len(t.Data))
		if t.Data == nil {
			rb, _ := t.DType.RowBytes(t.Cols)
			n = int64(rb) * int64(t.Rows)
		}
		types[t.DType.String()] += n
		switch {
		case name == "token_embd.weight":
			if c.TiedEmbeddings {
				s.StepBytes += n
			}
		case name == "position_embd.weight":
		default:
			s.StepBytes += n
			if t.Rows > 1 && name != "output.weight" {
				s.MatParams += int64(t.Rows) * int64(t.Cols)
			}
		}
	}
	best := int64(-1)
	for dt, n := range types { // the dominant weight type names the model
		if n > best || (n == best && dt < s.DType) {
			best, s.DType = n, dt
		}
	}
	s.KVBytesPerPos = int64(2*c.Layers*c.KVHeads*c.HeadDim) * int64(kv.BlockBytes())
	return s
}

// PrefillFLOPs is the arithmetic of a p-token prefill returning one row of
// logits: two FLOPs per weight per token, causal attention scores and
// weighted sums, and the one output row.
func (s Shape) PrefillFLOPs(p int) float64 {
	c := s.Cfg
	attn := 4 * float64(c.Layers*c.Heads*c.HeadDim) * float64(p) * float64(p+1) / 2
	return 2*float64(s.MatParams)*float64(p) + attn + 2*float64(c.VocabSize*c.Dim)
}

// Runner measures one engine.
type Runner struct {
	Engine   *generate.Engine
	Shape    Shape
	Ceilings Ceilings
	Config   Config
	rng      *rand.Rand
}

// Run measures the prefill (if PromptLen > 0) and each decode batch size,
// passing each result to emit as soon as it is known.
func (r *Runner) Run(emit func(Result)) error {
	cfg := r.Config
	r.rng = rand.New(rand.NewPCG(cfg.Seed, 0x10011))
	if cfg.Reps <= 0 {
		cfg.Reps = 3
	}
	if cfg.PromptLen > 0 {
		res, err := r.prefill(cfg.PromptLen, cfg.Reps)
		if err != nil {
			return err
		}
		emit(res)
	}
	temps := cfg.Temperatures
	if len(temps) == 0 {
		temps = []float32{0}
	}
	for _, b := range cfg.Batches {
		for _, t := range temps {
			res, err := r.decode(b, max(cfg.DecodePrompt, 1), max(cfg.Gen, 2), t)
			if err != nil {
				return err
			}
			emit(res)
		}
	}
	return nil
}

func (r *Runner) base(kind string, batch, prompt int) Result {
	res := Result{Engine: "loom", Device: r.Engine.Backend().Name(), Model: r.Shape.Name, DType: r.Shape.DType,
		Kind: kind, Batch: batch, PromptLen: prompt, Ceilings: r.Ceilings}
	return res
}

func (r *Runner) finish(res *Result) {
	res.PeakHostBytes = PeakHostBytes()
	if mr, ok := r.Engine.Backend().(backend.MemoryReporter); ok {
		res.DeviceBytes, _ = mr.Memory()
	}
}

func (r *Runner) tokens(n int) []int32 {
	ids := make([]int32, n)
	v := r.Shape.Cfg.VocabSize
	for i := range ids {
		ids[i] = int32(r.rng.IntN(v))
	}
	return ids
}

// prefill times a p-token prompt in one step (after one untimed warm-up),
// returning the median of reps.
func (r *Runner) prefill(p, reps int) (Result, error) {
	e := r.Engine
	if p > e.MaxRows() || p > e.Context() {
		return Result{}, fmt.Errorf("bench: prompt of %d tokens: the engine takes %d rows and %d positions: %w", p, e.MaxRows(), e.Context(), ErrConfig)
	}
	prompt := r.tokens(p)
	times := make([]time.Duration, 0, reps)
	for i := 0; i <= reps; i++ {
		seq := e.Cache().NewSeq()
		job := []generate.Job{{Seq: seq, Tokens: prompt, Want: generate.WantArgMax}}
		t0 := time.Now()
		err := e.Step(job)
		d := time.Since(t0)
		seq.Free()
		if err != nil {
			return Result{}, fmt.Errorf("bench: prefill of %d tokens: %w", p, err)
		}
		if i > 0 {
			times = append(times, d)
		}
	}
	med := percentile(times, 50)
	res := r.base("prefill", 1, p)
	res.TTFTms = ms(med)
	res.PrefillTokS = float64(p) / med.Seconds()
	flops := r.Shape.PrefillFLOPs(p) / med.Seconds()
	res.PrefillTFLOPS = flops / 1e12
	if r.Ceilings.MatMul > 0 {
		res.PrefillFracPeak = flops / r.Ceilings.MatMul
	}
	r.finish(&res)
	return res, nil
}

// decode fills b sequences with ctx tokens each, then times gen decode
// steps of one token per sequence: greedy (temp 0: only ids come back), or
// sampled on the host at temp (the logits come back).
func (r *Runner) decode(b, ctx, gen int, temp float32) (Result, error) {
	e := r.Engine
	if b > e.MaxJobs() {
		return Result{}, fmt.Errorf("bench: batch of %d: the engine takes at most %d sequences per step: %w", b, e.MaxJobs(), ErrConfig)
	}
	if ctx+gen > e.Context() {
		return Result{}, fmt.Errorf("bench: %d context + %d generated positions exceed the engine's context of %d: %w", ctx, gen, e.Context(), ErrConfig)
	}
	seqs := make([]*kvcache.Seq, b)
	defer func() {
		for _, s := range seqs {
			if s != nil {
				s.Free()
			}
		}
	}()
	// Prefill in chunks that fit the engine (not timed).
	for i := range seqs {
		seqs[i] = e.Cache().NewSeq()
		prompt := r.tokens(ctx)
		for len(prompt) > 0 {
			n := min(len(prompt), e.MaxRows())
			if err := e.Step([]generate.Job{{Seq: seqs[i], Tokens: prompt[:n]}}); err != nil {
				return Result{}, fmt.Errorf("bench: filling sequence %d of %d: %w", i+1, b, err)
			}
			prompt = prompt[n:]
		}
	}
	jobs := make([]generate.Job, b)
	next := r.tokens(b)
	times := make([]time.Duration, 0, gen)
	want := generate.WantArgMax
	var samplers []*sample.Sampler
	if temp > 0 {
		want = generate.WantLogits
		for i := range b {
			s, err := sample.New(sample.Options{Temperature: temp, Seed: r.Config.Seed + uint64(i)})
			if err != nil {
				return Result{}, fmt.Errorf("bench: %w", err)
			}
			samplers = append(samplers, s)
		}
	}
	draw := func(i int) { jobs[i].ID = samplers[i].Sample(jobs[i].Logits) }
	for step := 0; step <= gen; step++ {
		for i := range jobs {
			jobs[i] = generate.Job{Seq: seqs[i], Tokens: next[i : i+1], Want: want}
		}
		t0 := time.Now()
		if err := e.Step(jobs); err != nil {
			return Result{}, fmt.Errorf("bench: decode step %d at batch %d: %w", step, b, err)
		}
		if samplers != nil {
			par.For(b, runtime.GOMAXPROCS(0), draw)
		}
		d := time.Since(t0)
		for i := range jobs {
			next[i] = jobs[i].ID
		}
		if step > 0 { // the first step may record a graph
			times = append(times, d)
		}
	}
	p50, p99 := percentile(times, 50), percentile(times, 99)
	res := r.base("decode", b, ctx)
	res.Gen = gen
	res.Temperature = temp
	res.DecodeMsP50, res.DecodeMsP99 = ms(p50), ms(p99)
	res.DecodeTokS = 1 / p50.Seconds()
	res.DecodeTokSAggregate = float64(b) / p50.Seconds()
	// Bytes per step: every weight once, plus each sequence's cache at its
	// average length over the timed steps.
	avgLen := float64(ctx) + float64(gen)/2
	bytes := float64(r.Shape.StepBytes) + float64(b)*avgLen*float64(r.Shape.KVBytesPerPos)
	res.DecodeGBs = bytes / p50.Seconds() / 1e9
	if r.Ceilings.Bandwidth > 0 {
		res.DecodeFracBW = bytes / p50.Seconds() / r.Ceilings.Bandwidth
	}
	r.finish(&res)
	return res, nil
}

// MeasureCeilings measures the backend's memory bandwidth (and, where the
// backend can time itself, its matrix-multiply rate on a large BF16
// product). threads is the CPU thread count for the CPU probe.
func MeasureCeilings(be backend.Backend, threads int) (Ceilings, error) {
	var c Ceilings
	if p, ok := be.(interface {
		CopyBandwidth(n int64, reps int) (float64, error)
	}); ok {
		bw, err := p.CopyBandwidth(1<<30, 20)
		if err != nil {
			return c, fmt.Errorf("bench: copy bandwidth: %w", err)
		}
		c.Bandwidth, c.BandwidthMethod = bw, "device-to-device copy of 1 GiB, read+write bytes"
		rate, err := matmulRate(be)
		if err != nil {
			return c, err
		}
		c.MatMul, c.MatMulMethod = rate, "loom MatMul 8192x8192x8192, bf16 weights"
		return c, nil
	}
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	c.Bandwidth = cpu.MeasureBandwidth(512<<20, threads)
	c.BandwidthMethod = fmt.Sprintf("streaming read of 512 MiB, %d threads", threads)
	return c, nil
}

// matmulRate times loom's own MatMul on an 8192³ product with BF16 weights
// using the backend's device timer.
func matmulRate(be backend.Backend) (float64, error) {
	timer, ok := be.(interface {
		Time(f func()) (time.Duration, error)
	})
	if !ok {
		return 0, nil
	}
	const n = 8192
	x, err := be.Alloc(backend.F32, n, n)
	if err != nil {
		return 0, fmt.Errorf("bench: matmul probe: %w", err)
	}
	defer be.Free(x)
	w, err := be.Alloc(backend.BF16, n, n)
	if err != nil {
		return 0, fmt.Errorf("bench: matmul probe: %w", err)
	}
	defer be.Free(w)
	dst, err := be.Alloc(backend.F32, n, n)
	if err != nil {
		return 0, fmt.Errorf("bench: matmul probe: %w", err)
	}
	defer be.Free(dst)
	// Random finite values: zeros run faster than real data.
	rng := rand.New(rand.NewPCG(1, 2))
	hx := make([]float32, n*n)
	for i := range hx {
		hx[i] = rng.Float32() - 0.5
	}
	if err := be.Upload(x, quant.F32Bytes(hx)); err != nil {
		return 0, err
	}
	hw := make([]byte, 2*n*n)
	for i := 0; i < len(hw); i += 2 {
		v := uint16(0x3c00 + rng.IntN(0x200)) // bf16 values in [0.0078, 0.0156)
		if rng.IntN(2) == 0 {
			v |= 0x8000
		}
		hw[i], hw[i+1] = byte(v), byte(v>>8)
	}
	if err := be.Upload(w, hw); err != nil {
		return 0, err
	}
	be.MatMul(dst, x, w) // warm up
	const reps = 5
	d, err := timer.Time(func() {
		for i := 0; i < reps; i++ {
			be.MatMul(dst, x, w)
		}
	})
	if err != nil {
		return 0, fmt.Errorf("bench: matmul probe: %w", err)
	}
	return 2 * n * n * n * reps / d.Seconds(), nil
}

func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s)*p + 99) / 100
	return s[min(max(i-1, 0), len(s)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// PeakHostBytes is the process's peak resident memory (VmHWM on Linux; 0
// where unknown).
func PeakHostBytes() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				if err == nil {
					return kb * 1024
				}
			}
		}
	}
	return 0
}
