package server

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/loomllm/loom/runtime/sched"
)

// Metrics are the server's Prometheus metrics, written by hand in the
// text exposition format (no client library needed). Create them before
// the scheduler and pass ObserveStep as sched.Config.OnStep to get the
// batch histograms. Safe for concurrent use.
type Metrics struct {
	mu       sync.Mutex
	requests map[[2]string]uint64 // (endpoint, code) → count
	prompt   uint64
	gen      uint64

	ttft, itl, e2e    *histogram
	batch, stepTokens *histogram
	stepTime          *histogram
}

// NewMetrics returns empty metrics.
func NewMetrics() *Metrics {
	lat := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	sizes := []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512}
	return &Metrics{requests: map[[2]string]uint64{},
		ttft: newHistogram(lat), itl: newHistogram(lat), e2e: newHistogram(lat),
		batch: newHistogram(sizes), stepTokens: newHistogram(sizes), stepTime: newHistogram(lat)}
}

// ObserveStep records one scheduler step (its signature is sched.Config.OnStep's).
func (m *Metrics) ObserveStep(seqs, tokens int, took time.Duration) {
	m.batch.observe(float64(seqs))
	m.stepTokens.observe(float64(tokens))
	m.stepTime.observe(took.Seconds())
}

func (m *Metrics) request(endpoint string, code int) {
	m.mu.Lock()
	m.requests[[2]string{endpoint, strconv.Itoa(code)}]++
	m.mu.Unlock()
}

func (m *Metrics) tokens(prompt, gen int) {
	m.mu.Lock()
	m.prompt += uint64(prompt)
	m.gen += uint64(gen)
	m.mu.Unlock()
}

// write writes every metric in the Prometheus text format.
func (m *Metrics) write(w io.Writer, st sched.Stats) {
	m.mu.Lock()
	keys := make([][2]string, 0, len(m.requests))
	for k := range m.requests {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b [2]string) int { return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1])) })
	header(w, "loom_requests_total", "counter", "HTTP requests answered, by endpoint and status code.")
	for _, k := range keys {
		fmt.Fprintf(w, "loom_requests_total{endpoint=%q,code=%q} %d\n", k[0], k[1], m.requests[k])
	}
	header(w, "loom_prompt_tokens_total", "counter", "Prompt tokens of admitted requests.")
	fmt.Fprintf(w, "loom_prompt_tokens_total %d\n", m.prompt)
	header(w, "loom_generation_tokens_total", "counter", "Tokens generated.")
	fmt.Fprintf(w, "loom_generation_tokens_total %d\n", m.gen)
	m.mu.Unlock()

	gauge := func(name, help string, v int) {
		header(w, name, "gauge", help)
		fmt.Fprintf(w, "%s %d\n", name, v)
	}
	gauge("loom_queue_depth", "Requests waiting for admission.", st.Queued)
	gauge("loom_running_sequences", "Sequences in the running batch.", st.Running)
	gauge("loom_kv_blocks_used", "KV cache blocks held by sequences.", st.BlocksUsed)
	gauge("loom_kv_blocks_reserved", "KV cache blocks reserved by running sequences (their worst case).", st.Reserved)
	gauge("loom_kv_blocks_total", "KV cache blocks in the pool.", st.BlocksTotal)
	gauge("loom_kv_blocks_cached", "KV cache blocks the prefix cache holds (some may also be in use).", st.CachedBlocks)
	header(w, "loom_prefix_cache_tokens_total", "counter", "Prompt tokens whose keys and values came from the prefix cache.")
	fmt.Fprintf(w, "loom_prefix_cache_tokens_total %d\n", st.CachedTokens)
	header(w, "loom_scheduler_steps_total", "counter", "Forward passes run by the scheduler.")
	fmt.Fprintf(w, "loom_scheduler_steps_total %d\n", st.Steps)

	m.ttft.write(w, "loom_time_to_first_token_seconds", "Time from a request's arrival to its first token.")
	m.itl.write(w, "loom_time_per_output_token_seconds", "Time between consecutive tokens of a sequence.")
	m.e2e.write(w, "loom_request_duration_seconds", "Time from a generation request's arrival to its last token.")
	m.batch.write(w, "loom_batch_size", "Sequences per scheduler step.")
	m.stepTokens.write(w, "loom_step_tokens", "Tokens (decode rows and prompt chunks) per scheduler step.")
	m.stepTime.write(w, "loom_step_duration_seconds", "Time of one scheduler step (forward pass and sampling).")
}

func header(w io.Writer, name, typ, help string) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

// histogram is a Prometheus histogram with fixed bucket bounds.
type histogram struct {
	mu     sync.Mutex
	bounds []float64
	counts []uint64 // per bucket, not cumulative; the last is +Inf
	sum    float64
	n      uint64
}

func newHistogram(bounds []float64) *histogram {
	return &histogram{bounds: bounds, counts: make([]uint64, len(bounds)+1)}
}

func (h *histogram) observe(v float64) {
	if math.IsNaN(v) {
		return
	}
	i, _ := slices.BinarySearch(h.bounds, v)
	h.mu.Lock()
	h.counts[i]++
	h.sum += v
	h.n++
	h.mu.Unlock()
}

func (h *histogram) write(w io.Writer, name, help string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	header(w, name, "histogram", help)
	var cum uint64
	for i, b := range h.bounds {
		cum += h.counts[i]
		fmt.Fprintf(w, "%s_bucket{le=%q} %d\n", name, strconv.FormatFloat(b, 'g', -1, 64), cum)
	}
	fmt.Fprintf(w, "%s_bucket{le=\"+Inf\"} %d\n%s_sum %g\n%s_count %d\n", name, h.n, name, h.sum, name, h.n)
}
