package conformance

import (
	"testing"

	"github.com/loomllm/loom/runtime/backend"
	"github.com/stretchr/testify/require"
)

// errCase is one bad call: op makes it on a fresh backend, and Sync must
// then report an error wrapping want.
type errCase struct {
	name  string
	want  error
	index bool // passes an out-of-range index held in a tensor
	op    func(s *suite, be backend.Backend)
}

// f32 allocates an F32 tensor of zeros on be.
func (s *suite) f32(be backend.Backend, rows, cols int) backend.Tensor {
	s.t.Helper()
	return s.upload(be, newOperand(backend.F32, rows, cols, 0, 0)).view
}

// i32 uploads an I32 n × 1 tensor.
func (s *suite) i32(be backend.Backend, v ...int32) backend.Tensor {
	s.t.Helper()
	return s.upload(be, ints32(v)).view
}

var errCases = []errCase{
	{"MatMul/inner", backend.ErrShape, false, func(s *suite, be backend.Backend) {
		be.MatMul(s.f32(be, 2, 8), s.f32(be, 2, 64), s.f32(be, 8, 32))
	}},
	{"MatMul/dst", backend.ErrShape, false, func(s *suite, be backend.Backend) {
		be.MatMul(s.f32(be, 2, 9), s.f32(be, 2, 32), s.f32(be, 8, 32))
	}},
	{"MatMul/rows", backend.ErrShape, false, func(s *suite, be backend.Backend) {
		be.MatMul(s.f32(be, 3, 8), s.f32(be, 2, 32), s.f32(be, 8, 32))
	}},
	{"MatMul/weights-type", backend.ErrDType, false, func(s *suite, be backend.Backend) {
		w := s.upload(be, newOperand(backend.I32, 8, 32, 0, 0)).view
		be.MatMul(s.f32(be, 2, 8), s.f32(be, 2, 32), w)
	}},
	{"Add", backend.ErrShape, false, func(s *suite, be backend.Backend) {
		be.Add(s.f32(be, 2, 8), s.f32(be, 2, 8), s.f32(be, 2, 7))
	}},
	{"Add/broadcast", backend.ErrShape, false, func(s *suite, be backend.Backend) {
		be.Add(s.f32(be, 3, 8), s.f32(be, 3, 8), s.f32(be, 2, 8))
	}},
	{"RMSNorm", backend.ErrShape, false, func(s *suite, be backend.Backend) {
		be.RMSNorm(s.f32(be, 2, 8), s.f32(be, 2, 8), s.f32(be, 1, 9), 1e-5)
	}},
	{"LayerNorm", backend.ErrShape, false, func(s *suite, be backend.Backend) {
		be.LayerNorm(s.f32(be, 2, 8), s.f32(be, 2, 8), s.f32(be, 1, 8), s.f32(be, 1, 7), 1e-5)
	}},
	{"RoPE/headDim", backend.ErrShape, false, func(s *suite, be backend.Backend) {
		be.RoPE(s.f32(be, 1, 12), s.f32(be, 1, 12), s.i32(be, 0), s.f32(be, 1, 2), 5, false)
	}},
	{"RoPE/freqs", backend.ErrShape, false, func(s *suite, be backend.Backend) {
		be.RoPE(s.f32(be, 1, 8), s.f32(be, 1, 8), s.i32(be, 0), s.f32(be, 1, 5), 8, true)
	}},
	{"SwiGLU", backend.ErrShape, false, func(s *suite, be backend.Backend) {
		be.SwiGLU(s.f32(be, 3, 8), s.f32(be, 2, 8), s.f32(be, 2, 8))
	}},
	{"GELU", backend.ErrShape, false, func(s *suite, be backend.Backend) {
		be.GELU(s.f32(be, 2, 9), s.f32(be, 2, 8))
	}},
	{"Copy", backend.ErrShape, false, func(s *suite, be backend.Backend) {
		be.Copy(s.f32(be, 2, 8), s.f32(be, 8, 2))
	}},
	{"Embed/shape", backend.ErrShape, false, func(s *suite, be backend.Backend) {
		be.Embed(s.f32(be, 1, 8), s.f32(be, 4, 9), s.i32(be, 0))
	}},
	{"Attention/shape", backend.ErrShape, false, func(s *suite, be backend.Backend) {
		c := s.kvCache(be)
		be.Attention(s.f32(be, 1, 24), s.f32(be, 1, 24), s.f32(be, 1, 16), s.f32(be, 1, 16), c,
			backend.Attn{Pos: s.i32(be, 0), Seq: s.i32(be, 0), Blocks: s.i32(be, 0), Scale: 1})
	}},
	{"Embed/id", backend.ErrIndex, true, func(s *suite, be backend.Backend) {
		be.Embed(s.f32(be, 2, 8), s.f32(be, 4, 8), s.i32(be, 1, 4))
	}},
	{"Attention/block", backend.ErrIndex, true, func(s *suite, be backend.Backend) {
		c := s.kvCache(be)
		be.Attention(s.f32(be, 1, 16), s.f32(be, 1, 16), s.f32(be, 1, 16), s.f32(be, 1, 16), c,
			backend.Attn{Pos: s.i32(be, 0), Seq: s.i32(be, 0), Blocks: s.i32(be, 4), Scale: 1})
	}},
	{"Attention/position", backend.ErrIndex, true, func(s *suite, be backend.Backend) {
		c := s.kvCache(be)
		be.Attention(s.f32(be, 1, 16), s.f32(be, 1, 16), s.f32(be, 1, 16), s.f32(be, 1, 16), c,
			backend.Attn{Pos: s.i32(be, 4), Seq: s.i32(be, 0), Blocks: s.i32(be, 0), Scale: 1})
	}},
	{"CopyKVBlock", backend.ErrIndex, false, func(s *suite, be backend.Backend) {
		be.CopyKVBlock(s.kvCache(be), 0, 4)
	}},
}

// kvCache returns a one-layer cache of 4 blocks of 4 positions, one KV
// head of 16 elements.
func (s *suite) kvCache(be backend.Backend) backend.KVCache {
	s.t.Helper()
	c, err := be.NewKVCache(backend.KVSpec{Layers: 1, KVHeads: 1, HeadDim: 16, BlockSize: 4, Blocks: 4, DType: backend.F32})
	require.NoError(s.t, err)
	s.t.Cleanup(c.Free)
	return c
}

// testErrors checks that bad calls fail with the documented sentinel
// errors, without panicking, and that operation errors are sticky.
func testErrors(s *suite, newBackend func(t *testing.T) backend.Backend) {
	for _, ec := range errCases {
		if ec.index && s.opt.NoIndexChecks {
			continue
		}
		s.t.Run(ec.name, func(t *testing.T) {
			s := s.sub(t)
			be := newBackend(t)
			ok := s.f32(be, 1, 4)
			ec.op(s, be)
			err := be.Sync()
			require.ErrorIs(t, err, ec.want, "%s: %s", be.Name(), ec.name)
			// Sticky: a later good operation neither clears nor replaces it.
			be.Copy(ok, ok)
			require.ErrorIs(t, be.Sync(), ec.want)
			require.ErrorIs(t, be.Err(), ec.want)
			require.ErrorIs(t, be.Download(make([]byte, 16), ok), ec.want, "Download must report the earlier error")
		})
	}
	// Errors returned directly by memory and cache calls.
	s.t.Run("Memory", func(t *testing.T) {
		s := s.sub(t)
		be := newBackend(t)
		_, err := be.Alloc(backend.Q8_0, 2, 33)
		require.ErrorIs(t, err, backend.ErrShape, "Alloc of 33 Q8_0 columns")
		_, err = be.Alloc(backend.F32, 0, 8)
		require.ErrorIs(t, err, backend.ErrShape, "Alloc of 0 rows")
		x := s.f32(be, 2, 8)
		require.ErrorIs(t, be.Upload(x, make([]byte, 63)), backend.ErrShape, "Upload of the wrong size")
		require.ErrorIs(t, be.Download(make([]byte, 65), x), backend.ErrShape, "Download of the wrong size")
		_, err = be.NewKVCache(backend.KVSpec{Layers: 1, KVHeads: 1, HeadDim: 32, BlockSize: 4, Blocks: 4, DType: backend.Q8_0})
		require.ErrorIs(t, err, backend.ErrDType, "NewKVCache of Q8_0")
		require.NoError(t, be.Sync(), "failed memory calls must not poison later operations")
	})
}
