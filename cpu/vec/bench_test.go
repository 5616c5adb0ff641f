package vec

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
)

// Benchmarks report GB/s (b.SetBytes) and GFLOP/s (2 flops, a multiply and
// an add, per weight element):
//
//   - BenchmarkDot/<type>/L1: one 4096-element weight row against one x,
//     both reused every iteration, so L1/L2-resident: the kernels' compute
//     rate. GB/s counts the weight row and the activations read.
//   - BenchmarkDot/<type>/stream: x (cache-resident) against consecutive
//     rows of a 256 MiB weight matrix, the inner loop of a large GEMV. GB/s
//     counts weight bytes only.
//   - BenchmarkGEMV/<type>: a 4096×4096 matrix times one vector, rows split
//     across 1 or 2 goroutines the way the cpu backend drives the kernels.
//     GB/s counts weight bytes. The integer paths (Q8_0Q8, Q4_0Q8) include
//     quantizing x once per product.
//
// Each routine runs on its fast path and its Generic twin.

const (
	benchN           = 4096
	benchStreamBytes = 256 << 20
	benchRows        = 4096
)

var sink float32

// tile returns n bytes made of copies of row (realistic values, cheaply).
func tile(row []byte, n int) []byte {
	w := make([]byte, n)
	for i := 0; i < n; i += len(row) {
		copy(w[i:], row)
	}
	return w
}

// A benchKernel computes one row's dot product with the benchmark's x.
// prepare, if set, runs once per matrix-vector product (quantizing x).
type benchKernel struct {
	name    string
	gen     func(*rand.Rand, int) ([]byte, []float32)
	prepare func(x []float32)
	xBytes  int // activation bytes read per row
	fast    func(w []byte) float32
	generic func(w []byte) float32
}

func benchKernels(x []float32) []benchKernel {
	q, d := make([]int8, len(x)), make([]float32, len(x)/QK)
	quantize := func(x []float32) { QuantizeQ8(q, d, x) }
	quantize(x)
	xf := 4 * len(x)
	xq := len(x) + 4*len(x)/QK
	return []benchKernel{
		{"F32", func(r *rand.Rand, n int) ([]byte, []float32) { f := randF32(r, n); return f32Bytes(f), f }, nil, xf,
			func(w []byte) float32 { return Dot(bytesF32(w), x) },
			func(w []byte) float32 { return DotGeneric(bytesF32(w), x) }},
		{"F16", randF16, nil, xf,
			func(w []byte) float32 { return DotF16(w, x) },
			func(w []byte) float32 { return DotF16Generic(w, x) }},
		{"BF16", randBF16, nil, xf,
			func(w []byte) float32 { return DotBF16(w, x) },
			func(w []byte) float32 { return DotBF16Generic(w, x) }},
		{"Q8_0", randQ8_0, nil, xf,
			func(w []byte) float32 { return DotQ8_0(w, x) },
			func(w []byte) float32 { return DotQ8_0Generic(w, x) }},
		{"Q4_0", randQ4_0, nil, xf,
			func(w []byte) float32 { return DotQ4_0(w, x) },
			func(w []byte) float32 { return DotQ4_0Generic(w, x) }},
		{"Q8_0Q8", randQ8_0, quantize, xq,
			func(w []byte) float32 { return DotQ8_0Q8(w, q, d) },
			func(w []byte) float32 { return DotQ8_0Q8Generic(w, q, d) }},
		{"Q4_0Q8", randQ4_0, quantize, xq,
			func(w []byte) float32 { return DotQ4_0Q8(w, q, d) },
			func(w []byte) float32 { return DotQ4_0Q8Generic(w, q, d) }},
	}
}

type benchImpl struct {
	name string
	f    func([]byte) float32
}

func (k benchKernel) impls() []benchImpl {
	return []benchImpl{{"fast", k.fast}, {"generic", k.generic}}
}

func reportFlops(b *testing.B, flopsPerOp float64) {
	b.ReportMetric(flopsPerOp*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

func BenchmarkDot(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, k := range benchKernels(randF32(r, benchN)) {
		row, _ := k.gen(r, benchN)
		for _, impl := range k.impls() {
			b.Run(k.name+"/L1/"+impl.name, func(b *testing.B) {
				b.SetBytes(int64(len(row) + k.xBytes))
				var s float32
				for b.Loop() {
					s += impl.f(row)
				}
				sink = s
				reportFlops(b, 2*benchN)
			})
			b.Run(k.name+"/stream/"+impl.name, func(b *testing.B) {
				rows := benchStreamBytes / len(row)
				w := tile(row, rows*len(row))
				b.SetBytes(int64(len(row)))
				var s float32
				i := 0
				for b.Loop() {
					s += impl.f(w[i*len(row) : (i+1)*len(row)])
					if i++; i == rows {
						i = 0
					}
				}
				sink = s
				reportFlops(b, 2*benchN)
			})
		}
	}
}

func BenchmarkGEMV(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	x := randF32(r, benchN)
	y := make([]float32, benchRows)
	for _, k := range benchKernels(x) {
		row, _ := k.gen(r, benchN)
		rb := len(row)
		w := tile(row, benchRows*rb)
		for _, impl := range k.impls() {
			for _, threads := range []int{1, 2} {
				b.Run(fmt.Sprintf("%s/%s/threads=%d", k.name, impl.name, threads), func(b *testing.B) {
					b.SetBytes(int64(benchRows * rb))
					var wg sync.WaitGroup
					for b.Loop() {
						if k.prepare != nil {
							k.prepare(x)
						}
						for t := range threads {
							lo, hi := t*benchRows/threads, (t+1)*benchRows/threads
							wg.Go(func() {
								for i := lo; i < hi; i++ {
									y[i] = impl.f(w[i*rb : (i+1)*rb])
								}
							})
						}
						wg.Wait()
					}
					reportFlops(b, 2*benchRows*benchN)
				})
			}
		}
	}
	// F32 through DotRows, four rows per kernel call.
	wf := randF32(r, benchRows*benchN)
	for _, threads := range []int{1, 2} {
		b.Run(fmt.Sprintf("F32Rows/fast/threads=%d", threads), func(b *testing.B) {
			b.SetBytes(int64(4 * len(wf)))
			var wg sync.WaitGroup
			for b.Loop() {
				for t := range threads {
					lo, hi := t*benchRows/threads, (t+1)*benchRows/threads
					wg.Go(func() { DotRows(y[lo:hi], wf[lo*benchN:], benchN, x) })
				}
				wg.Wait()
			}
			reportFlops(b, 2*benchRows*benchN)
		})
	}
}

func BenchmarkQuantizeQ8(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	x := randF32(r, benchN)
	q, d := make([]int8, benchN), make([]float32, benchN/QK)
	b.SetBytes(4 * benchN)
	for b.Loop() {
		QuantizeQ8(q, d, x)
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
			reportFlops(b, 2*benchN)
		})
	}
}

// BenchmarkWiden converts one 4096-element row to float32 (cache-resident).
// GB/s counts the bytes read and written.
func BenchmarkWiden(b *testing.B) {
	dst := make([]float32, benchN)
	for _, c := range widenCases {
		src := make([]byte, benchN/32*c.bytesPer32)
		for i := range src {
			src[i] = byte(i * 7)
		}
		for i := 0; i < len(src); i += 2 {
			src[i+1] &^= 0x40 // finite, moderate halves and scales
		}
		for _, impl := range []struct {
			name string
			f    func([]float32, []byte)
		}{{"fast", c.fast}, {"generic", c.gen}} {
			b.Run(c.name+"/"+impl.name, func(b *testing.B) {
				b.SetBytes(int64(len(src) + 4*benchN))
				for b.Loop() {
					impl.f(dst, src)
				}
			})
		}
	}
}

// BenchmarkDotF32L2 is Dot on two vectors of 64Ki elements (512 KiB
// together): L2-resident, beyond L1.
func BenchmarkDotF32L2(b *testing.B) {
	const n = 1 << 16
	r := rand.New(rand.NewPCG(1, 2))
	x, y := randF32(r, n), randF32(r, n)
	for _, impl := range []struct {
		name string
		f    func(a, b []float32) float32
	}{{"fast", Dot}, {"generic", DotGeneric}} {
		b.Run(impl.name, func(b *testing.B) {
			b.SetBytes(8 * n)
			var s float32
			for b.Loop() {
				s += impl.f(x, y)
			}
			sink = s
			reportFlops(b, 2*n)
		})
	}
}

// BenchmarkDotTile: a batch of 16 activation rows against a tile of
// weight rows, at stories260K's widths (k = 64 and 172) and a Llama-sized
// one, all in cache.
func BenchmarkDotTile(b *testing.B) {
	for _, s := range [][3]int{{16, 128, 64}, {16, 64, 172}, {16, 64, 4096}, {64, 16, 4096}} {
		rows, cols, k := s[0], s[1], s[2]
		b.Run(fmt.Sprintf("rows=%d/cols=%d/k=%d", rows, cols, k), func(b *testing.B) {
			r := newRand(b)
			x, w, dst := randF32(r, rows*k), randF32(r, cols*k), make([]float32, rows*cols)
			for range b.N {
				DotTile(dst, cols, x, k, rows, w, k, cols, k)
			}
			b.ReportMetric(2*float64(rows*cols*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
