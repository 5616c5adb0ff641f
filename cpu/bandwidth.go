package cpu

import (
	"sync"
	"time"

	"github.com/loomllm/loom/cpu/vec"
)

// MeasureBandwidth returns the rate, in bytes per second, at which threads
// goroutines together can stream-read a buffer of the given size (rounded
// down to a multiple of 4 KiB, at least 4 KiB), each reading its own
// contiguous share with the SIMD dot product (vec.Dot) against a vector
// that stays in L1, the access pattern of a matrix-vector product. It
// reports the best of several passes after one warm-up pass. Choose bytes
// much larger than the last-level cache to measure main memory; it
// allocates that much for the duration of the call.
//
// This is the ceiling for memory-bound work such as matrix-vector products
// on weights that do not fit in cache: loom's benchmarks report GEMV
// throughput as a fraction of it.
func MeasureBandwidth(bytes int, threads int) (bytesPerSec float64) {
	bytes = max(bytes/4096*4096, 4096)
	threads = max(threads, 1)
	buf := bytesF32(alignedBytes(bytes))
	for i := 0; i < len(buf); i += 1024 {
		buf[i] = 1 // fault the pages in before timing
	}
	share := (len(buf)/threads + 15) / 16 * 16
	sink := make([]float32, threads)
	// Each chunk of the buffer is multiplied with a vector that stays in
	// L1, so the buffer is read exactly once.
	ones := make([]float32, 4096)
	for i := range ones {
		ones[i] = 1
	}
	pass := func() time.Duration {
		var wg sync.WaitGroup
		start := time.Now()
		for t := 0; t < threads; t++ {
			lo := min(t*share, len(buf))
			part := buf[lo:min(lo+share, len(buf))]
			wg.Add(1)
			go func() {
				defer wg.Done()
				var s float32
				for i := 0; i < len(part); i += len(ones) {
					c := part[i:min(i+len(ones), len(part))]
					s += vec.Dot(c, ones)
				}
				sink[t] = s
			}()
		}
		wg.Wait()
		return time.Since(start)
	}
	pass()
	// The best of passes reading about 2 GiB in all (4 to 64 of them):
	// on a shared machine the best pass is the one least disturbed.
	best := time.Duration(1<<63 - 1)
	for i := 0; i < min(max(4, (2<<30)/bytes), 64); i++ {
		best = min(best, pass())
	}
	return float64(len(buf)*4) / best.Seconds()
}
