package cpu

import (
	"sync"
	"time"

	"github.com/loomllm/loom/cpu/vec"
)

// MeasureBandwidth returns the rate, in bytes per second, at which threads
// goroutines together can stream-read a buffer of the given size (rounded
// down to a multiple of 16 KiB, at least 16 KiB), each reading its own
// contiguous share with vec's multi-row SIMD dot product against a vector
// that stays in L1: the access pattern of a matrix-vector product. It
// reports the best of several passes after one warm-up pass. Choose bytes
// much larger than the last-level cache to measure main memory; it
// allocates that much for the duration of the call.
//
// This is the ceiling for memory-bound work such as matrix-vector products
// on weights that do not fit in cache: loom's benchmarks report GEMV
// throughput as a fraction of it.
func MeasureBandwidth(bytes int, threads int) (bytesPerSec float64) {
	bytes = max(bytes/(16<<10)*(16<<10), 16<<10) // whole rows of 4096 floats
	threads = max(threads, 1)
	buf := bytesF32(alignedBytes(bytes))
	for i := 0; i < len(buf); i += 1024 {
		buf[i] = 1 // fault the pages in before timing
	}
	share := (len(buf)/threads + 4095) / 4096 * 4096 // whole rows of 4096
	sink := make([]float32, threads)
	// The buffer is read as rows of 4096 floats, each multiplied with a
	// vector that stays in L1 (vec.DotRows: four rows in flight), so every
	// byte is read exactly once, as a matrix-vector product reads weights.
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
				const rows = 64
				var dst [rows]float32
				for i := 0; i+len(ones) <= len(part); i += rows * len(ones) {
					n := min(rows, (len(part)-i)/len(ones))
					vec.DotRows(dst[:n], part[i:], len(ones), ones)
				}
				sink[t] = dst[0]
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
