//go:build cuda

package gpu_test

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/loomllm/loom/gpu"
	"github.com/loomllm/loom/runtime/backend"
	"github.com/loomllm/loom/runtime/quant"
	"github.com/stretchr/testify/require"
)

// Benchmarks time device work with CUDA events (Backend.Time) and report
// GB/s of compulsory traffic (weights, KV cache, activations read and
// written once) and that rate as a fraction of the measured
// device-to-device copy bandwidth ("of-copy"), the ceiling of memory-bound
// kernels. Matrix products also report TFLOP/s. Shapes are Llama-3-8B's.
//
//	go test -tags cuda -run '^$' -bench . -benchtime 200x ./gpu/

var (
	benchOnce sync.Once
	benchGPU  *gpu.Backend
	copyBW    float64 // bytes/s
	benchErr  error
)

// bench returns the benchmarks' shared backend and the copy bandwidth,
// measured once per process on a 1 GiB copy.
func bench(b *testing.B) (*gpu.Backend, float64) {
	b.Helper()
	benchOnce.Do(func() {
		if benchGPU, benchErr = gpu.New(gpu.Options{}); benchErr == nil {
			copyBW, benchErr = benchGPU.CopyBandwidth(1<<30, 20)
		}
	})
	require.NoError(b, benchErr)
	return benchGPU, copyBW
}

// run times ops over b.N repetitions and reports the metrics: bytes moved
// and flops per repetition.
func run(b *testing.B, g *gpu.Backend, bw float64, bytes, flops int64, op func()) {
	b.Helper()
	op() // warm up (grows workspaces)
	require.NoError(b, g.Sync())
	b.SetBytes(bytes)
	b.ResetTimer()
	d, err := g.Time(func() {
		for i := 0; i < b.N; i++ {
			op()
		}
	})
	b.StopTimer()
	require.NoError(b, err)
	sec := d.Seconds() / float64(b.N)
	b.ReportMetric(sec*1e6, "µs/op")
	b.ReportMetric(float64(bytes)/sec/1e9, "GB/s")
	b.ReportMetric(float64(bytes)/sec/bw, "of-copy")
	if flops > 0 {
		b.ReportMetric(float64(flops)/sec/1e12, "TFLOP/s")
	}
}

// BenchmarkCopy reports the device-to-device copy bandwidth (read + write).
func BenchmarkCopy(b *testing.B) {
	g, bw := bench(b)
	const n = 1 << 30
	rate, err := g.CopyBandwidth(n, max(1, b.N))
	require.NoError(b, err)
	b.ReportMetric(rate/1e9, "GB/s")
	b.ReportMetric(bw/1e9, "first-GB/s")
}

// weight allocates an out × in weight of dt filled with small finite values
// (a repeated pattern, uploaded in row chunks so no host copy of the whole
// matrix is needed).
func weight(b *testing.B, g *gpu.Backend, dt backend.DType, out, in int) backend.Tensor {
	b.Helper()
	w, err := g.Alloc(dt, out, in)
	require.NoError(b, err)
	rb := w.RowBytes()
	chunk := max(1, (16<<20)/rb)
	rng := rand.New(rand.NewPCG(1, uint64(out)))
	vals := randoms(rng, min(chunk, out)*in, 0.05)
	raw := make([]byte, min(chunk, out)*rb)
	switch dt {
	case backend.BF16:
		quant.EncodeBF16(raw, vals)
	case backend.F16:
		quant.EncodeF16(raw, vals)
	case backend.Q8_0:
		quant.QuantizeQ8_0(raw, vals)
	default:
		copy(raw, quant.F32Bytes(vals))
	}
	if dt.Quantized() { // split storage needs whole-tensor uploads
		full := make([]byte, w.Bytes())
		for off := 0; off < len(full); off += len(raw) {
			copy(full[off:], raw)
		}
		require.NoError(b, g.Upload(w, full))
		return w
	}
	for r0 := 0; r0 < out; r0 += chunk {
		r1 := min(out, r0+chunk)
		require.NoError(b, g.Upload(w.Slice(r0, r1), raw[:(r1-r0)*rb]))
	}
	return w
}

func activations(b *testing.B, g *gpu.Backend, rows, cols int) backend.Tensor {
	b.Helper()
	x, err := g.Alloc(backend.F32, rows, cols)
	require.NoError(b, err)
	vals := randoms(rand.New(rand.NewPCG(2, uint64(rows*cols))), rows*cols, 1)
	require.NoError(b, g.Upload(x, quant.F32Bytes(vals)))
	return x
}

// llama3Shapes are the matrices of Llama-3-8B: Q/O projection, gate and
// up, down, and the output head.
var llama3Shapes = []struct{ out, in int }{{4096, 4096}, {14336, 4096}, {4096, 14336}, {128256, 4096}}

// BenchmarkGEMV times MatMul with BF16 weights at decode batch sizes.
func BenchmarkGEMV(b *testing.B) {
	g, bw := bench(b)
	for _, s := range llama3Shapes {
		w := weight(b, g, backend.BF16, s.out, s.in)
		for _, n := range []int{1, 8, 32, 64} {
			x, y := activations(b, g, n, s.in), activations(b, g, n, s.out)
			bytes := int64(w.Bytes()) + int64(x.Bytes()) + int64(y.Bytes())
			b.Run(fmt.Sprintf("bf16/%dx%d/n=%d", s.out, s.in, n), func(b *testing.B) {
				run(b, g, bw, bytes, 2*int64(n)*int64(s.out)*int64(s.in), func() { g.MatMul(y, x, w) })
			})
			g.Free(x)
			g.Free(y)
		}
		g.Free(w)
	}
}

// BenchmarkGEMM times MatMul with BF16 weights at a 2048-token prefill.
func BenchmarkGEMM(b *testing.B) {
	g, bw := bench(b)
	const n = 2048
	for _, s := range llama3Shapes {
		w := weight(b, g, backend.BF16, s.out, s.in)
		x, y := activations(b, g, n, s.in), activations(b, g, n, s.out)
		bytes := int64(w.Bytes()) + int64(x.Bytes()) + int64(y.Bytes())
		b.Run(fmt.Sprintf("bf16/%dx%d/n=%d", s.out, s.in, n), func(b *testing.B) {
			run(b, g, bw, bytes, 2*int64(n)*int64(s.out)*int64(s.in), func() { g.MatMul(y, x, w) })
		})
		g.Free(x)
		g.Free(y)
		g.Free(w)
	}
}

// BenchmarkAttentionDecode times one layer's decode attention of one
// sequence (32 query heads, 8 KV heads of 128, BF16 cache) against KV
// histories of 512 to 8192 positions.
func BenchmarkAttentionDecode(b *testing.B) {
	g, bw := bench(b)
	const hq, hkv, d, bs = 32, 8, 128, 16
	for _, kv := range []int{512, 1024, 2048, 4096, 8192} {
		nb := kv / bs
		cache, err := g.NewKVCache(backend.KVSpec{Layers: 1, KVHeads: hkv, HeadDim: d, BlockSize: bs, Blocks: nb, DType: backend.BF16})
		require.NoError(b, err)
		table := make([]int32, nb)
		for i := range table {
			table[i] = int32(i)
		}
		blocks, err := g.Alloc(backend.I32, 1, nb)
		require.NoError(b, err)
		require.NoError(b, g.Upload(blocks, quant.I32Bytes(table)))
		seq, err := g.Alloc(backend.I32, 1, 1)
		require.NoError(b, err)
		require.NoError(b, g.Upload(seq, quant.I32Bytes([]int32{0})))
		pos, err := g.Alloc(backend.I32, 1, 1)
		require.NoError(b, err)
		require.NoError(b, g.Upload(pos, quant.I32Bytes([]int32{int32(kv - 1)})))
		q, out := activations(b, g, 1, hq*d), activations(b, g, 1, hq*d)
		k, v := activations(b, g, 1, hkv*d), activations(b, g, 1, hkv*d)
		a := backend.Attn{Pos: pos, Seq: seq, Blocks: blocks, Scale: 0.088388}
		bytes := int64(2*kv*hkv*d*2) + int64(2*q.Bytes())
		b.Run(fmt.Sprintf("bf16/kv=%d", kv), func(b *testing.B) {
			run(b, g, bw, bytes, 0, func() { g.Attention(out, q, k, v, cache, a) })
		})
		for _, t := range []backend.Tensor{blocks, seq, pos, q, out, k, v} {
			g.Free(t)
		}
		cache.Free()
	}
}
