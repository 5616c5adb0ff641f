package server

import (
	"flag"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loomllm/loom/runtime/sched"
)

// The interleaved throughput measurement (no soak): rounds of concurrency
// 1 and 16 alternating on one warm server, so that both see the same
// machine. Opt-in, like the full load test:
//
//	go test ./server -run TestThroughput -throughput 5 -v
var throughputRounds = flag.Int("throughput", 0, "rounds of the interleaved concurrency 1/16 throughput measurement (0: skip)")
var throughputEach = flag.Duration("throughput-each", 3*time.Second, "length of each throughput run")
var throughputOnly = flag.Int("throughput-only", 0, "run only this concurrency (for profiles)")
var throughputThreads = flag.Int("throughput-threads", 2, "CPU backend threads of the measured server")
var throughputModel = flag.String("throughput-model", "", "model file of the measured server (default: the shared stories260K)")

func TestThroughput(t *testing.T) {
	if *throughputRounds == 0 {
		t.Skip("opt-in: -throughput N")
	}
	var steps, rows atomic.Int64
	ts := startServer(t, serverOptions{seqs: 32, blocks: 32 * 16, threads: *throughputThreads, model: *throughputModel, sched: sched.Config{MaxBatch: 32, MaxQueue: 16,
		OnStep: func(seqs, _ int, _ time.Duration) { steps.Add(1); rows.Add(int64(seqs)) }}})
	hammer(t, ts.url, 16, time.Second) // warm up
	rates := map[int][]float64{}
	var ratios []float64
	for r := range *throughputRounds {
		cs := []int{1, 16}
		if *throughputOnly != 0 {
			cs = []int{*throughputOnly}
		}
		for _, c := range cs {
			steps.Store(0)
			rows.Store(0)
			st, took := hammer(t, ts.url, c, *throughputEach)
			if st.errors.Load() != 0 {
				t.Fatal(st.firstErr)
			}
			rate := float64(st.tokens.Load()) / took.Seconds()
			rates[c] = append(rates[c], rate)
			t.Logf("round %d: concurrency %2d: %d requests, %d tokens: %.0f tokens/s, TTFT p50 %v, %.1f sequences per step",
				r, c, st.ok.Load(), st.tokens.Load(), rate, percentile(st.ttft, .5).Round(time.Microsecond),
				float64(rows.Load())/float64(steps.Load()))
		}
		if *throughputOnly == 0 {
			ratios = append(ratios, rates[16][r]/rates[1][r])
		}
	}
	if *throughputOnly != 0 {
		return
	}
	med := func(v []float64) float64 { v = slices.Clone(v); slices.Sort(v); return v[len(v)/2] }
	t.Logf("concurrency 1: best %.0f median %.0f tokens/s; concurrency 16: best %.0f median %.0f tokens/s",
		slices.Max(rates[1]), med(rates[1]), slices.Max(rates[16]), med(rates[16]))
	t.Logf("ratio 16/1 per round %.2f; median %.2fx, best/best %.2fx (%d CPUs, %d backend threads, model %q)", ratios, med(ratios),
		slices.Max(rates[16])/slices.Max(rates[1]), runtime.NumCPU(), *throughputThreads, *throughputModel)
}
