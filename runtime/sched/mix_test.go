package sched

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loomllm/loom/internal/par"
	"github.com/loomllm/loom/runtime/generate"
	"github.com/loomllm/loom/runtime/sample"
)

// BenchmarkServeMix runs the server load test's request mix (its prompts,
// max_tokens 32 to 127, temperature 0.8 with a seed, text decoding)
// through the scheduler alone, c clients back to back for the benchmark
// time: the ceiling of what the HTTP server can deliver at concurrency c.
// Run it with -count to interleave c=1 and c=16:
//
//	go test ./runtime/sched -run '^$' -bench ServeMix -benchtime 3s -count 5
func BenchmarkServeMix(b *testing.B) {
	for _, c := range []int{1, 16} {
		b.Run(fmt.Sprintf("c=%d", c), func(b *testing.B) {
			s := loadStories(b, 32, 32*16)
			sc := s.start(b, Config{MaxBatch: 32, MaxQueue: 16})
			var tokens, steps atomic.Int64
			var next atomic.Int64
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for i := range c {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(i), 1))
					for next.Add(1) <= int64(b.N) {
						q := s.seq(prompts[rng.IntN(len(prompts))], 32+rng.IntN(96))
						q.Options.Sampling = sample.Options{Temperature: 0.8, RepeatLastN: -1, Seed: rng.Uint64()}
						sts, err := sc.Submit(context.Background(), []Seq{q})
						require.NoError(b, err)
						var buf []Event
						for {
							evs, err := sts[0].Next(context.Background(), buf)
							if err != nil {
								break
							}
							for _, ev := range evs {
								if ev.Done {
									tokens.Add(int64(ev.Stats.Tokens))
								}
							}
							buf = evs
						}
					}
				}()
			}
			wg.Wait()
			took := time.Since(start)
			steps.Store(int64(sc.Stats().Steps))
			b.ReportMetric(float64(tokens.Load())/took.Seconds(), "tokens/s")
			b.ReportMetric(float64(tokens.Load())/float64(b.N), "tokens/req")
		})
	}
}

// BenchmarkDecodeRows times the engine alone: decode steps of n rows at
// the positions the mix visits (prompts of 8, then up to 135), greedy
// (on-device argmax), no sampling, no scheduler. Only the Step calls are
// timed; a sequence that finishes is replaced by a new one, prefilled
// outside the timing.
func BenchmarkDecodeRows(b *testing.B) {
	for _, n := range []int{1, 16} {
		b.Run(fmt.Sprintf("rows=%d", n), func(b *testing.B) {
			s := loadStories(b, 32, 32*16)
			e := s.e
			rng := rand.New(rand.NewPCG(1, 2))
			reqs := make([]*generate.Request, n)
			limit := make([]int, n)
			jobs := make([]generate.Job, n)
			fresh := func(i int) {
				if reqs[i] != nil {
					reqs[i].Close()
				}
				q := s.seq(prompts[rng.IntN(len(prompts))], 32+rng.IntN(96))
				r, err := generate.NewRequest(e, q.Prompt, q.Options)
				require.NoError(b, err)
				one := []generate.Job{r.Job(256)}
				require.NoError(b, e.Step(one)) // prefill, not timed
				r.Advance(&one[0])
				reqs[i], limit[i] = r, len(q.Prompt)+q.Options.MaxTokens
			}
			for i := range n {
				fresh(i)
			}
			b.Cleanup(func() {
				for _, r := range reqs {
					r.Close()
				}
			})
			var stepping time.Duration // Step calls only (fresh prefills excluded)
			b.ResetTimer()
			for range b.N {
				for i, r := range reqs {
					jobs[i] = r.Job(1)
				}
				t0 := time.Now()
				require.NoError(b, e.Step(jobs))
				stepping += time.Since(t0)
				for i, r := range reqs {
					r.Advance(&jobs[i])
					if r.Done() || len(r.Tokens())+8 >= limit[i] {
						fresh(i)
					}
				}
			}
			b.ReportMetric(float64(stepping.Nanoseconds())/float64(b.N), "ns/step")
			b.ReportMetric(float64(n)*float64(b.N)/stepping.Seconds(), "tokens/s")
		})
	}
}

// BenchmarkDraw: a step's host work for 32 rows of a Llama-3 vocabulary
// (128256 logits each) through par.For, as Scheduler.draw spreads it, on
// one goroutine and on GOMAXPROCS: the time the engine waits between a
// GPU step and the next when requests sample.
//
//	go test ./runtime/sched -run '^$' -bench Draw
func BenchmarkDraw(b *testing.B) {
	const rows, vocab = 32, 128256
	rng := rand.New(rand.NewPCG(3, 4))
	logits := make([][]float32, rows)
	for i := range logits {
		logits[i] = make([]float32, vocab)
		for k := range logits[i] {
			logits[i][k] = float32(rng.NormFloat64() * 3)
		}
	}
	for _, o := range []struct {
		name string
		opt  sample.Options
	}{
		{"temperature", sample.Options{Temperature: 0.8}},
		{"top-k+top-p", sample.Options{Temperature: 0.8, TopK: 40, TopP: 0.95}},
	} {
		for _, workers := range []int{1, runtime.GOMAXPROCS(0)} {
			b.Run(fmt.Sprintf("%s/workers=%d", o.name, workers), func(b *testing.B) {
				ss := make([]*sample.Sampler, rows)
				for i := range ss {
					var err error
					ss[i], err = sample.New(o.opt)
					require.NoError(b, err)
				}
				ids := make([]int32, rows)
				for b.Loop() {
					par.For(rows, workers, func(i int) { ids[i] = ss[i].Sample(logits[i]) })
				}
				b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/rows, "µs/row")
			})
		}
	}
}

// BenchmarkPrefixTTFT: the time to the first token of a request whose
// 448-token prompt shares its first 432 tokens with the previous one,
// with and without the prefix cache (stories260K, CPU).
//
//	go test ./runtime/sched -run '^$' -bench PrefixTTFT
func BenchmarkPrefixTTFT(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run(fmt.Sprintf("prefix-cache=%v", on), func(b *testing.B) {
			s := loadStories(b, 1, 0)
			sc := s.start(b, Config{PrefixCache: on})
			base := s.seq(strings.Repeat("Once upon a time there was a cat. ", 40), 1).Prompt[:432]
			rng := rand.New(rand.NewPCG(7, 8))
			var ttft time.Duration
			for b.Loop() {
				q := s.seq("", 1)
				q.Prompt = append(slices.Clone(base), make([]int32, 16)...)
				for i := range 16 {
					q.Prompt[432+i] = int32(3 + rng.IntN(500))
				}
				t0 := time.Now()
				sts, err := sc.Submit(context.Background(), []Seq{q})
				require.NoError(b, err)
				r := drain(b, sts[0])
				ttft += r.events[0].Time.Sub(t0)
			}
			b.ReportMetric(float64(ttft.Microseconds())/float64(b.N), "µs-TTFT")
		})
	}
}
