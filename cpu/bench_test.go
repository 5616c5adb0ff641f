package cpu

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/loomllm/loom/runtime/backend"
	"github.com/loomllm/loom/runtime/quant"
)

// bandwidth returns MeasureBandwidth(bytes, threads), measured once per
// process for each pair.
func bandwidth(threads, bytes int) float64 {
	bwMu.Lock()
	defer bwMu.Unlock()
	key := [2]int{threads, bytes}
	if _, ok := bwCache[key]; !ok {
		bwCache[key] = MeasureBandwidth(bytes, threads)
	}
	return bwCache[key]
}

var (
	bwMu    sync.Mutex
	bwCache = map[[2]int]float64{}
)

// BenchmarkBandwidth reports the streaming read bandwidth of main memory
// (1 GiB) and of a 64 MiB buffer (a 4096×4096 F32 matrix), per thread count.
func BenchmarkBandwidth(b *testing.B) {
	for _, size := range []int{64 << 20, 1 << 30} {
		for _, threads := range []int{1, 2} {
			b.Run(fmt.Sprintf("%dMiB/threads=%d", size>>20, threads), func(b *testing.B) {
				b.SetBytes(int64(size))
				var bw float64
				for range b.N {
					bw = MeasureBandwidth(size, threads)
				}
				b.ReportMetric(bw/1e9, "GB/s")
			})
		}
	}
}

// benchTensor allocates a tensor of random contents of magnitude about 1
// (zeros for I32).
func benchTensor(tb testing.TB, be *Backend, dt backend.DType, rows, cols int) backend.Tensor {
	tb.Helper()
	t, err := be.Alloc(dt, rows, cols)
	if err != nil {
		tb.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(uint64(rows), uint64(cols)))
	v := make([]float32, rows*cols)
	for i := range v {
		v[i] = 2*rng.Float32() - 1
	}
	raw := make([]byte, t.Bytes())
	switch dt {
	case backend.F32:
		copy(raw, quant.F32Bytes(v))
	case backend.F16:
		quant.EncodeF16(raw, v)
	case backend.BF16:
		quant.EncodeBF16(raw, v)
	case backend.Q8_0:
		quant.QuantizeQ8_0(raw, v)
	case backend.Q4_0:
		for i := range raw {
			raw[i] = byte(rng.Uint32())
		}
		for i := 0; i < len(raw); i += 18 {
			raw[i], raw[i+1] = 0x66, 0x2e // scale 0.1
		}
	case backend.Q4_K:
		quant.QuantizeQ4_K(raw, v)
	case backend.Q6_K:
		quant.QuantizeQ6_K(raw, v)
	}
	if err := be.Upload(t, raw); err != nil {
		tb.Fatal(err)
	}
	return t
}

// report sets the throughput metrics of a benchmark whose every iteration
// moves bytes and does flops.
func report(b *testing.B, bytes, flops float64) {
	b.SetBytes(int64(bytes))
	if flops > 0 {
		b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	}
}

// BenchmarkMatMul multiplies n activation rows by out × in weights. The
// matrix-vector products (n = 1) report bw-frac, the weight bytes streamed
// per second over MeasureBandwidth's main-memory figure (1 GiB, same
// thread count), and cache-bw-frac, the same over the rate at which those
// threads can read a buffer of the weights' size; on machines whose last
// level cache holds the weights (a 64 MiB matrix read again and again),
// the second is the meaningful ceiling. The "cold" variants cycle through
// enough copies of the weights to fill 1 GiB, so every call reads them
// from main memory as a model's decode step does.
func BenchmarkMatMul(b *testing.B) {
	dts := []backend.DType{backend.F32, backend.F16, backend.BF16, backend.Q8_0, backend.Q4_0, backend.Q2_K, backend.Q3_K, backend.Q4_K, backend.Q5_K, backend.Q6_K, backend.IQ4_NL, backend.IQ4_XS}
	for _, shape := range [][2]int{{4096, 4096}, {14336, 4096}} {
		for _, dt := range dts {
			for _, n := range []int{1, 8, 64} {
				threadCounts := []int{0}
				if n == 1 && shape[0] == 4096 {
					threadCounts = []int{1, 2}
				}
				for _, threads := range threadCounts {
					name := fmt.Sprintf("%v/%dx%d/n=%d", dt, shape[0], shape[1], n)
					if threads > 0 {
						name += fmt.Sprintf("/threads=%d", threads)
					}
					b.Run(name, func(b *testing.B) { benchMatMul(b, dt, shape[0], shape[1], n, threads, false, false) })
					if n == 1 && shape[0] == 4096 {
						b.Run(name+"/cold", func(b *testing.B) { benchMatMul(b, dt, shape[0], shape[1], n, threads, true, false) })
					}
					if (dt == backend.Q8_0 || dt == backend.Q4_0) && n > 1 {
						// The float path: weights widened to F32 tiles.
						b.Run(name+"/exact", func(b *testing.B) { benchMatMul(b, dt, shape[0], shape[1], n, threads, false, true) })
					}
				}
			}
		}
	}
}

func benchMatMul(b *testing.B, dt backend.DType, out, in, n, threads int, cold, exact bool) {
	be := New(Options{Threads: threads, ExactQuant: exact})
	defer be.Close()
	ws := []backend.Tensor{benchTensor(b, be, dt, out, in)}
	if cold {
		raw := make([]byte, ws[0].Bytes())
		if err := be.Download(raw, ws[0]); err != nil {
			b.Fatal(err)
		}
		for len(ws)*len(raw) < 1<<30 {
			w, err := be.Alloc(dt, out, in)
			if err != nil {
				b.Fatal(err)
			}
			if err := be.Upload(w, raw); err != nil {
				b.Fatal(err)
			}
			ws = append(ws, w)
		}
	}
	x := benchTensor(b, be, backend.F32, n, in)
	y := benchTensor(b, be, backend.F32, n, out)
	for _, w := range ws {
		be.MatMul(y, x, w)
	}
	b.ResetTimer()
	for i := range b.N {
		be.MatMul(y, x, ws[i%len(ws)])
	}
	b.StopTimer()
	if err := be.Sync(); err != nil {
		b.Fatal(err)
	}
	wb := float64(ws[0].Bytes())
	bytes := wb + float64(x.Bytes()+y.Bytes())
	report(b, bytes, 2*float64(n)*float64(out)*float64(in))
	if n == 1 {
		rate := bytes * float64(b.N) / b.Elapsed().Seconds()
		b.ReportMetric(rate/bandwidth(be.Threads(), 1<<30), "bw-frac")
		b.ReportMetric(rate/bandwidth(be.Threads(), ws[0].Bytes()), "cache-bw-frac")
	}
}

// benchRows runs a row-wise operation on n × d activations.
func benchRows(b *testing.B, name string, bytesPerElem, flopsPerElem float64, op func(be *Backend, dst, x, w backend.Tensor)) {
	for _, d := range []int{4096, 14336} {
		for _, n := range []int{1, 64} {
			b.Run(fmt.Sprintf("%s/d=%d/n=%d", name, d, n), func(b *testing.B) {
				be := New(Options{})
				defer be.Close()
				x := benchTensor(b, be, backend.F32, n, d)
				y := benchTensor(b, be, backend.F32, n, d)
				w := benchTensor(b, be, backend.F32, 1, d)
				op(be, y, x, w)
				b.ResetTimer()
				for range b.N {
					op(be, y, x, w)
				}
				b.StopTimer()
				if err := be.Sync(); err != nil {
					b.Fatal(err)
				}
				elems := float64(n * d)
				report(b, bytesPerElem*elems, flopsPerElem*elems)
			})
		}
	}
}

func BenchmarkRMSNorm(b *testing.B) {
	benchRows(b, "rmsnorm", 8, 4, func(be *Backend, dst, x, w backend.Tensor) { be.RMSNorm(dst, x, w, 1e-5) })
}

func BenchmarkLayerNorm(b *testing.B) {
	benchRows(b, "layernorm", 8, 7, func(be *Backend, dst, x, w backend.Tensor) { be.LayerNorm(dst, x, w, w, 1e-5) })
}

func BenchmarkAdd(b *testing.B) {
	benchRows(b, "add", 12, 1, func(be *Backend, dst, x, w backend.Tensor) { be.Add(dst, x, dst) })
}

func BenchmarkSwiGLU(b *testing.B) {
	benchRows(b, "swiglu", 12, 5, func(be *Backend, dst, x, w backend.Tensor) { be.SwiGLU(dst, x, x) })
}

func BenchmarkGELU(b *testing.B) {
	benchRows(b, "gelu", 8, 8, func(be *Backend, dst, x, w backend.Tensor) { be.GELU(dst, x) })
}

func BenchmarkCopy(b *testing.B) {
	benchRows(b, "copy", 8, 0, func(be *Backend, dst, x, w backend.Tensor) { be.Copy(dst, x) })
}

func BenchmarkRoPE(b *testing.B) {
	for _, n := range []int{1, 64} {
		b.Run(fmt.Sprintf("heads=32/headDim=128/n=%d", n), func(b *testing.B) {
			be := New(Options{})
			defer be.Close()
			const heads, hd = 32, 128
			x := benchTensor(b, be, backend.F32, n, heads*hd)
			pos := benchTensor(b, be, backend.I32, n, 1)
			freqs := benchTensor(b, be, backend.F32, 1, hd/2)
			b.ResetTimer()
			for range b.N {
				be.RoPE(x, x, pos, freqs, hd, true)
			}
			b.StopTimer()
			if err := be.Sync(); err != nil {
				b.Fatal(err)
			}
			report(b, float64(8*n*heads*hd), float64(3*n*heads*hd))
		})
	}
}

func BenchmarkEmbed(b *testing.B) {
	for _, dt := range []backend.DType{backend.F32, backend.F16, backend.Q8_0} {
		b.Run(fmt.Sprintf("%v/d=4096/n=64", dt), func(b *testing.B) {
			be := New(Options{})
			defer be.Close()
			table := benchTensor(b, be, dt, 1000, 4096)
			ids := benchTensor(b, be, backend.I32, 64, 1)
			dst := benchTensor(b, be, backend.F32, 64, 4096)
			b.ResetTimer()
			for range b.N {
				be.Embed(dst, table, ids)
			}
			b.StopTimer()
			if err := be.Sync(); err != nil {
				b.Fatal(err)
			}
			report(b, float64(64*(table.RowBytes()+4*4096)), 0)
		})
	}
}

// BenchmarkCopyKVBlock copies one block of a Llama-3-8B-shaped cache (32
// layers, 8 KV heads of 128, 16 positions, F16): 2 MiB read and written.
func BenchmarkCopyKVBlock(b *testing.B) {
	be := New(Options{})
	defer be.Close()
	c, err := be.NewKVCache(backend.KVSpec{Layers: 32, KVHeads: 8, HeadDim: 128, BlockSize: 16, Blocks: 8, DType: backend.F16})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		be.CopyKVBlock(c, i%4, 4+i%4)
	}
	b.StopTimer()
	if err := be.Sync(); err != nil {
		b.Fatal(err)
	}
	report(b, float64(2*c.Spec().BytesPerBlock()), 0)
}

func BenchmarkArgMax(b *testing.B) {
	be := New(Options{})
	defer be.Close()
	x := benchTensor(b, be, backend.F32, 1, 128256)
	dst := benchTensor(b, be, backend.I32, 1, 1)
	b.ResetTimer()
	for range b.N {
		be.ArgMax(dst, x)
	}
	b.StopTimer()
	report(b, float64(x.Bytes()), 0)
}

// BenchmarkAttention measures decode (one row against a cached history of
// kv positions) and a 512-row causal prefill, Llama-3-8B head shapes
// (32 query heads, 8 KV heads of 128). The cache history is filled with
// random values directly, since storing it through Attention would cost
// the benchmark quadratic time.
func BenchmarkAttention(b *testing.B) {
	for _, dt := range []backend.DType{backend.F16, backend.F32} {
		for _, kv := range []int{512, 1024, 2048, 4096} {
			b.Run(fmt.Sprintf("decode/%v/kv=%d", dt, kv), func(b *testing.B) { benchAttention(b, dt, kv, 1) })
		}
		b.Run(fmt.Sprintf("prefill/%v/n=512", dt), func(b *testing.B) { benchAttention(b, dt, 512, 512) })
	}
	// stories260K's heads (8 query heads, 4 KV heads of 8) for 16 rows
	// against about 64 positions: a batched decode step of a tiny model.
	b.Run("tiny/F32/n=16", func(b *testing.B) { benchAttentionShape(b, backend.F32, 80, 16, 8, 4, 8) })
	// stories15m's heads (6 of 48) decoding one row at position 128.
	b.Run("stories15m/F32/n=1", func(b *testing.B) { benchAttentionShape(b, backend.F32, 128, 1, 6, 6, 48) })
}

func benchAttention(b *testing.B, dt backend.DType, kv, n int) {
	benchAttentionShape(b, dt, kv, n, 32, 8, 128)
}

func benchAttentionShape(b *testing.B, dt backend.DType, kv, n, hq, hkv, hd int) {
	const block = 16
	be := New(Options{})
	defer be.Close()
	blocks := (kv + block - 1) / block
	c, err := be.NewKVCache(backend.KVSpec{Layers: 1, KVHeads: hkv, HeadDim: hd, BlockSize: block, Blocks: blocks, DType: dt})
	if err != nil {
		b.Fatal(err)
	}
	cache := c.(*kvCache)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range cache.data {
		cache.data[i] = byte(rng.Uint32())
	}
	if dt == backend.F16 {
		for i := 1; i < len(cache.data); i += 2 {
			cache.data[i] &= 0x3b // finite halves below 1
		}
	} else {
		v := bytesF32(cache.data)
		for i := range v {
			v[i] = 2*rng.Float32() - 1
		}
	}
	tab := make([]int32, blocks)
	for i := range tab {
		tab[i] = int32(i)
	}
	pos := make([]int32, n)
	for i := range pos {
		pos[i] = int32(kv - n + i)
	}
	q := benchTensor(b, be, backend.F32, n, hq*hd)
	k := benchTensor(b, be, backend.F32, n, hkv*hd)
	v := benchTensor(b, be, backend.F32, n, hkv*hd)
	out := benchTensor(b, be, backend.F32, n, hq*hd)
	pt := benchTensor(b, be, backend.I32, n, 1)
	st := benchTensor(b, be, backend.I32, n, 1)
	bt := benchTensor(b, be, backend.I32, 1, blocks)
	if err := be.Upload(pt, quant.I32Bytes(pos)); err != nil {
		b.Fatal(err)
	}
	if err := be.Upload(bt, quant.I32Bytes(tab)); err != nil {
		b.Fatal(err)
	}
	a := backend.Attn{Pos: pt, Seq: st, Blocks: bt, Scale: 0.088}
	be.Attention(out, q, k, v, c, a)
	b.ResetTimer()
	for range b.N {
		be.Attention(out, q, k, v, c, a)
	}
	b.StopTimer()
	if err := be.Sync(); err != nil {
		b.Fatal(err)
	}
	// Positions attended: kv per decode row; a causal triangle for prefill.
	var attended float64
	for _, p := range pos {
		attended += float64(p + 1)
	}
	report(b, float64(len(cache.data)), 4*attended*float64(hq*hd))
}

// BenchmarkDecodeStep runs the 19 operations of one small layer (dim 256,
// see TestDecodeAllocs) for 1 and 8 rows: the per-operation overhead that
// dominates small models such as stories260K.
func BenchmarkDecodeStep(b *testing.B) {
	for _, rows := range []int{1, 8} {
		b.Run(fmt.Sprintf("rows=%d", rows), func(b *testing.B) {
			be := New(Options{})
			defer be.Close()
			s := newDecodeStep(b, be, rows)
			s.run()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				s.run()
			}
			b.StopTimer()
			if err := be.Sync(); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/19, "ns/op-call")
		})
	}
}

// BenchmarkRoofline measures, interleaved so that all three see the same
// machine (this matters where it is shared), the streaming bandwidth
// probe and the F32 and Q8_0 matrix-vector products at 4096×4096, hot
// (one matrix, which a large last-level cache may hold) and cold (copies
// filling 1 GiB, read in turn from main memory). Each iteration is one
// round; the metrics are the best round's: run it with -benchtime 5x.
// bw-frac is the F32 product's weight bytes per second over the probe's;
// q8-speedup is how many times faster the Q8_0 product is.
func BenchmarkRoofline(b *testing.B) {
	for _, cold := range []bool{false, true} {
		for _, threads := range []int{1, 2} {
			name := fmt.Sprintf("hot/threads=%d", threads)
			if cold {
				name = fmt.Sprintf("cold/threads=%d", threads)
			}
			b.Run(name, func(b *testing.B) { benchRoofline(b, cold, threads) })
		}
	}
}

func benchRoofline(b *testing.B, cold bool, threads int) {
	be := New(Options{Threads: threads})
	defer be.Close()
	copies := func(dt backend.DType) []backend.Tensor {
		w0 := benchTensor(b, be, dt, 4096, 4096)
		ws := []backend.Tensor{w0}
		raw := make([]byte, w0.Bytes())
		if err := be.Download(raw, w0); err != nil {
			b.Fatal(err)
		}
		for cold && len(ws)*len(raw) < 1<<30 {
			w, err := be.Alloc(dt, 4096, 4096)
			if err != nil {
				b.Fatal(err)
			}
			if err := be.Upload(w, raw); err != nil {
				b.Fatal(err)
			}
			ws = append(ws, w)
		}
		return ws
	}
	f32, q8 := copies(backend.F32), copies(backend.Q8_0)
	x := benchTensor(b, be, backend.F32, 1, 4096)
	y := benchTensor(b, be, backend.F32, 1, 4096)
	probeBytes := 64 << 20
	if cold {
		probeBytes = 1 << 30
	}
	// rate returns the best weight bytes per second of a few sweeps.
	rate := func(ws []backend.Tensor) float64 {
		best := 0.0
		for range max(3, 20/len(ws)) {
			start := time.Now()
			for _, w := range ws {
				be.MatMul(y, x, w)
			}
			best = max(best, float64(len(ws)*ws[0].Bytes())/time.Since(start).Seconds())
		}
		return best
	}
	var probe, rf, rq float64
	b.ResetTimer()
	for range b.N {
		probe = max(probe, MeasureBandwidth(probeBytes, threads))
		rf, rq = max(rf, rate(f32)), max(rq, rate(q8))
	}
	b.StopTimer()
	if err := be.Sync(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(probe/1e9, "probe-GB/s")
	b.ReportMetric(rf/1e9, "f32-GB/s")
	b.ReportMetric(rf/probe, "bw-frac")
	b.ReportMetric(rq/1e9, "q8-GB/s")
	// Both products have 4096×4096 elements: the time ratio is the ratio
	// of bytes per second times the ratio of bytes (4 per F32 element).
	b.ReportMetric(rq/rf*float64(f32[0].Bytes())/float64(q8[0].Bytes()), "q8-speedup")
}
