package vec

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
)

// Benchmarks run each routine twice:
//
//   - "L1": one 4096-element row and one x, reused every iteration
//     (L1/L2-resident). GB/s counts the weight row and x.
//   - "stream": x (4096 elements, cache-resident) against consecutive rows
//     of a weight matrix of about 256 MiB, much larger than the per-core
//     caches and half this VM's shared L3: the inner loop of a GEMV. GB/s
//     counts the weight bytes only, since x stays in cache.
//
// GFLOP/s counts 2 flops (multiply and add) per element.

const (
	benchN           = 4096
	benchStreamBytes = 256 << 20
)

var sink float32

// tile returns n bytes made of copies of row.
func tile(row []byte, n int) []byte {
	w := make([]byte, n)
	for i := 0; i < n; i += len(row) {
		copy(w[i:], row)
	}
	return w
}

func BenchmarkDot(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	x := randF32(r, benchN)
	for _, rt := range dotCases {
		row, _ := rt.gen(r, benchN)
		rowBytes := len(row)
		for _, impl := range []struct {
			name string
			f    func([]byte, []float32) float32
		}{{"fast", rt.fast}, {"generic", rt.generic}} {
			b.Run(fmt.Sprintf("%s/L1/%s", rt.name, impl.name), func(b *testing.B) {
				w := row
				b.SetBytes(int64(rowBytes + 4*benchN))
				var s float32
				for b.Loop() {
					s += impl.f(w, x)
				}
				sink = s
				b.ReportMetric(2*benchN*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
			b.Run(fmt.Sprintf("%s/stream/%s", rt.name, impl.name), func(b *testing.B) {
				rows := benchStreamBytes / rowBytes
				w := tile(row, rows*rowBytes)
				b.SetBytes(int64(rowBytes))
				var s float32
				i := 0
				for b.Loop() {
					s += impl.f(w[i*rowBytes:(i+1)*rowBytes], x)
					if i++; i == rows {
						i = 0
					}
				}
				sink = s
				b.ReportMetric(2*benchN*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

func BenchmarkAxpy(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	x := randF32(r, benchN)
	y := randF32(r, benchN)
	for _, impl := range []struct {
		name string
		f    func(float32, []float32, []float32)
	}{{"fast", Axpy}, {"generic", AxpyGeneric}} {
		b.Run("L1/"+impl.name, func(b *testing.B) {
			b.SetBytes(3 * 4 * benchN) // read x and y, write y
			for b.Loop() {
				impl.f(1e-3, x, y)
			}
			b.ReportMetric(2*benchN*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// BenchmarkGEMV multiplies a 4096×4096 weight matrix by one vector, rows
// split evenly across goroutines, the way the cpu backend drives these
// kernels. GB/s counts the weight bytes.
func BenchmarkGEMV(b *testing.B) {
	const rows = 4096
	r := rand.New(rand.NewPCG(1, 2))
	x := randF32(r, benchN)
	y := make([]float32, rows)
	for _, rt := range dotCases {
		row, _ := rt.gen(r, benchN)
		rowBytes := len(row)
		w := tile(row, rows*rowBytes)
		for _, impl := range []struct {
			name string
			f    func([]byte, []float32) float32
		}{{"fast", rt.fast}, {"generic", rt.generic}} {
			for _, threads := range []int{1, 2} {
				b.Run(fmt.Sprintf("%s/%s/threads=%d", rt.name, impl.name, threads), func(b *testing.B) {
					b.SetBytes(int64(rows * rowBytes))
					var wg sync.WaitGroup
					for b.Loop() {
						for t := range threads {
							lo, hi := t*rows/threads, (t+1)*rows/threads
							wg.Go(func() {
								for i := lo; i < hi; i++ {
									y[i] = impl.f(w[i*rowBytes:(i+1)*rowBytes], x)
								}
							})
						}
						wg.Wait()
					}
					b.ReportMetric(2*rows*benchN*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				})
			}
		}
	}
}
