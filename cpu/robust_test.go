package cpu

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/loomllm/loom/runtime/backend"
	"github.com/loomllm/loom/runtime/quant"
	"github.com/stretchr/testify/require"
)

// TestForeignAndFreed checks that tensors of another backend, freed
// tensors and the zero Tensor are refused with ErrShape, not a panic.
func TestForeignAndFreed(t *testing.T) {
	other := New(Options{Threads: 1})
	defer other.Close()
	foreign, err := other.Alloc(backend.F32, 2, 8)
	require.NoError(t, err)

	for name, bad := range map[string]func(b *Backend) backend.Tensor{
		"foreign": func(*Backend) backend.Tensor { return foreign },
		"zero":    func(*Backend) backend.Tensor { return backend.Tensor{} },
		"freed": func(b *Backend) backend.Tensor {
			x, err := b.Alloc(backend.F32, 2, 8)
			require.NoError(t, err)
			b.Free(x)
			return x
		},
	} {
		t.Run(name, func(t *testing.T) {
			b := New(Options{Threads: 2})
			defer b.Close()
			x, err := b.Alloc(backend.F32, 2, 8)
			require.NoError(t, err)
			b.Add(x, x, bad(b))
			require.ErrorIs(t, b.Sync(), backend.ErrShape)
			require.ErrorContains(t, b.Sync(), "Add")
			require.Error(t, b.Upload(bad(b), make([]byte, 64)))
		})
	}
}

// TestClosed checks that a closed backend refuses work with ErrClosed.
func TestClosed(t *testing.T) {
	b := New(Options{})
	x, err := b.Alloc(backend.F32, 1, 4)
	require.NoError(t, err)
	require.NoError(t, b.Close())
	require.NoError(t, b.Close(), "second Close")
	b.Copy(x, x)
	require.ErrorIs(t, b.Sync(), backend.ErrClosed)
	_, err = b.Alloc(backend.F32, 1, 4)
	require.ErrorIs(t, err, backend.ErrClosed)
	_, err = b.NewKVCache(backend.KVSpec{Layers: 1, KVHeads: 1, HeadDim: 4, BlockSize: 4, Blocks: 1, DType: backend.F32})
	require.ErrorIs(t, err, backend.ErrClosed)
}

// TestMapHost checks that mapped weights are used in place, that unaligned
// F32 data is copied, and that mapped tensors are never written.
func TestMapHost(t *testing.T) {
	b := New(Options{Threads: 2})
	defer b.Close()
	w := make([]float32, 4*32)
	for i := range w {
		w[i] = float32(i % 5)
	}
	wt, err := b.MapHost(backend.F32, 4, 32, quant.F32Bytes(w))
	require.NoError(t, err)
	x, err := b.Alloc(backend.F32, 1, 32)
	require.NoError(t, err)
	ones := make([]float32, 32)
	for i := range ones {
		ones[i] = 1
	}
	require.NoError(t, b.Upload(x, quant.F32Bytes(ones)))
	y, err := b.Alloc(backend.F32, 1, 4)
	require.NoError(t, err)
	matvec := func() []float32 {
		b.MatMul(y, x, wt)
		out := make([]float32, 4)
		require.NoError(t, b.Download(quant.F32Bytes(out), y))
		return out
	}
	first := matvec()
	w[0] += 100 // zero copy: the backend sees the caller's memory
	require.Equal(t, first[0]+100, matvec()[0])

	// Unaligned F32 bytes are copied into aligned memory.
	raw := make([]byte, 4*32+1)
	copy(raw[1:], quant.F32Bytes(w[:32]))
	ut, err := b.MapHost(backend.F32, 1, 32, raw[1:])
	require.NoError(t, err)
	got := make([]byte, 4*32)
	require.NoError(t, b.Download(got, ut))
	require.Equal(t, raw[1:], got)

	_, err = b.MapHost(backend.Q8_0, 1, 32, make([]byte, 33))
	require.ErrorIs(t, err, backend.ErrShape)

	require.ErrorIs(t, b.Upload(wt, make([]byte, wt.Bytes())), ErrReadOnly)
	used, _ := b.Memory()
	b.MatMul(wt.Reshape(1, 128), x.Reshape(1, 32), wt) // dst is mapped
	require.ErrorIs(t, b.Sync(), ErrReadOnly)
	after, _ := b.Memory()
	require.Equal(t, used, after)
}

// TestMemoryLimit checks that allocations past the limit fail with
// ErrOutOfMemory before any memory is taken, and that Free returns it.
func TestMemoryLimit(t *testing.T) {
	b := New(Options{Threads: 1, MemoryLimit: 1 << 20})
	defer b.Close()
	x, err := b.Alloc(backend.F32, 256, 512) // 512 KiB
	require.NoError(t, err)
	used, free := b.Memory()
	require.Equal(t, int64(512<<10), used)
	require.Equal(t, int64(512<<10), free)
	_, err = b.Alloc(backend.F32, 256, 1024)
	require.ErrorIs(t, err, backend.ErrOutOfMemory)
	_, err = b.NewKVCache(backend.KVSpec{Layers: 1 << 20, KVHeads: 1 << 20, HeadDim: 1 << 20, BlockSize: 1 << 20, Blocks: 1 << 20, DType: backend.F16})
	require.ErrorIs(t, err, backend.ErrOutOfMemory)
	b.Free(x)
	used, _ = b.Memory()
	require.Zero(t, used)

	// The default limit (physical memory) refuses absurd sizes too.
	d := New(Options{Threads: 1})
	defer d.Close()
	_, err = d.Alloc(backend.F32, 1<<40, 1<<10)
	require.ErrorIs(t, err, backend.ErrOutOfMemory)
}

// TestRandomCalls makes operations on tensors of random types and shapes
// and checks each either succeeds or fails with one of the contract's
// sentinel errors, and never panics.
func TestRandomCalls(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 1))
	t.Logf("seed %d", seed)
	dts := []backend.DType{backend.F32, backend.F32, backend.F32, backend.I32, backend.F16, backend.Q8_0}
	for iter := 0; iter < 300; iter++ {
		b := New(Options{Threads: 2})
		var pool []backend.Tensor
		for i := 0; i < 8; i++ {
			dt := dts[rng.IntN(len(dts))]
			cols := (1 + rng.IntN(4)) * dt.BlockElems() * oneOfInt(rng, 1, 2, 8)
			tn, err := b.Alloc(dt, 1+rng.IntN(4), cols)
			require.NoError(t, err)
			raw := make([]byte, tn.Bytes())
			if dt == backend.I32 {
				for j := range raw {
					raw[j] = byte(rng.IntN(3)) // small non-negative and huge ids
				}
			}
			require.NoError(t, b.Upload(tn, raw))
			pool = append(pool, tn)
		}
		pick := func() backend.Tensor {
			tn := pool[rng.IntN(len(pool))]
			if tn.DType() == backend.F32 && tn.Cols() > 1 && rng.IntN(3) == 0 {
				tn = tn.ColSlice(1, tn.Cols())
			}
			return tn
		}
		cache, err := b.NewKVCache(backend.KVSpec{Layers: 1, KVHeads: 1 + rng.IntN(2), HeadDim: 8, BlockSize: 2, Blocks: 3, DType: backend.F16})
		require.NoError(t, err)
		for op := 0; op < 4; op++ {
			switch rng.IntN(12) {
			case 0:
				b.MatMul(pick(), pick(), pick())
			case 1:
				b.Embed(pick(), pick(), pick())
			case 2:
				b.Add(pick(), pick(), pick())
			case 3:
				b.RMSNorm(pick(), pick(), pick(), 1e-5)
			case 4:
				b.LayerNorm(pick(), pick(), pick(), pick(), 1e-5)
			case 5:
				b.RoPE(pick(), pick(), pick(), pick(), rng.IntN(10)-1, rng.IntN(2) == 0)
			case 6:
				b.Attention(pick(), pick(), pick(), pick(), cache, backend.Attn{Layer: rng.IntN(2), Pos: pick(), Seq: pick(), Blocks: pick(), Scale: 1})
			case 7:
				b.SwiGLU(pick(), pick(), pick())
			case 8:
				b.GELU(pick(), pick())
			case 9:
				b.Copy(pick(), pick())
			case 10:
				b.CopyKVBlock(cache, rng.IntN(5)-1, rng.IntN(5)-1)
			case 11:
				b.ArgMax(pick(), pick())
			}
		}
		if err := b.Sync(); err != nil {
			require.True(t, errors.Is(err, backend.ErrShape) || errors.Is(err, backend.ErrDType) || errors.Is(err, backend.ErrIndex), "%v", err)
		}
		b.Close()
	}
}

func oneOfInt(rng *rand.Rand, v ...int) int { return v[rng.IntN(len(v))] }
