// Package conformance is the test suite every loom backend must pass, in
// the style of gonum's blas/testblas: a backend's own test calls Run, which
// checks every operation of backend.Backend (and the optional ArgMaxer)
// on fresh random inputs against a reference.
//
// The reference is either the suite's own float64 implementation of each
// operation's documented loop (Options.Reference == nil; the cpu backend
// is tested this way) or another backend (the gpu backend passes the cpu
// backend) that runs the same operation on the same inputs. Inputs are
// rounded once, the way the backend under test stores them (weights are
// dequantized exactly with runtime/quant, cached keys and values are
// rounded to the cache's type), so the tolerances measure arithmetic only.
//
// Every run draws new inputs from a seed taken from the clock; a failing
// test logs the seed, and Options.Seed replays it. Cases cover odd sizes
// that are not multiples of 8, 32 or a warp (except where a block-quantized
// type needs multiples of 32), one and several rows, strided (column
// sliced) operands, in-place calls where the contract allows them, and a
// few sizes of real models, since device kernels pick variants by size.
// Outputs are poisoned with NaN before each call, so an element left
// unwritten fails, and the columns around a strided output must be left
// untouched.
package conformance

import (
	"hash/fnv"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/loomllm/loom/runtime/backend"
)

// Relative tolerances (see RelErr) by the kind of weights an operation
// reads: F32 everywhere, F16 or BF16 weights or cache, block-quantized
// weights. Backends may round intermediate values (for instance run
// tensor-core products in BF16) as long as they stay within these.
const (
	TolF32   = 1e-5
	TolHalf  = 1e-2
	TolQuant = 2e-2
)

// Tolerance returns the relative tolerance for results computed from data
// of type dt: TolF32, TolHalf or TolQuant.
func Tolerance(dt backend.DType) float64 {
	switch {
	case dt.Quantized():
		return TolQuant
	case dt == backend.F16 || dt == backend.BF16:
		return TolHalf
	}
	return TolF32
}

// RelErr returns the relative error of got against want, ‖got − want‖ /
// ‖want‖ in the Euclidean norm (the absolute error ‖got − want‖ when want
// is all zeros). It returns +Inf when the lengths differ or either holds a
// NaN or an infinity, so such results never pass a tolerance.
func RelErr(got, want []float32) float64 {
	if len(got) != len(want) {
		return math.Inf(1)
	}
	var num, den float64
	for i := range got {
		g, w := float64(got[i]), float64(want[i])
		if math.IsNaN(g) || math.IsInf(g, 0) || math.IsNaN(w) || math.IsInf(w, 0) {
			return math.Inf(1)
		}
		num += (g - w) * (g - w)
		den += w * w
	}
	if den == 0 {
		return math.Sqrt(num)
	}
	return math.Sqrt(num / den)
}

// Options configures Run.
type Options struct {
	// Reference, when not nil, is the backend whose results are the
	// expected ones (the same operation on the same inputs). When nil the
	// suite's float64 implementations are. The reference must support
	// every weight type the backend under test does, and must not be the
	// backend under test.
	Reference backend.Backend
	// Seed replays a failed run; 0 draws one from the clock.
	Seed uint64
	// Short leaves out the cases with model-sized shapes (a 4096-wide
	// matrix, a KV history over 1024 positions). Run also leaves them out
	// when testing.Short() reports true.
	Short bool
	// NoIndexChecks leaves out the cases that pass out-of-range token ids
	// or block indices and expect backend.ErrIndex, for backends that
	// cannot check indices held in device memory.
	NoIndexChecks bool
}

// Run runs the suite as subtests of t, one per operation. newBackend is
// called for each subtest (and for each error case, since errors are
// sticky) and must return a fresh backend; it should register its closing
// with t.Cleanup. Subtests run one after another.
func Run(t *testing.T, newBackend func(t *testing.T) backend.Backend, opt Options) {
	seed := opt.Seed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	opt.Short = opt.Short || testing.Short()
	tests := []struct {
		name string
		fn   func(s *suite)
	}{
		{"Memory", testMemory},
		{"Errors", nil}, // needs fresh backends: see testErrors
		{"Embed", testEmbed},
		{"MatMul", testMatMul},
		{"Add", testAdd},
		{"RMSNorm", testRMSNorm},
		{"LayerNorm", testLayerNorm},
		{"RoPE", testRoPE},
		{"Attention", testAttention},
		{"SwiGLU", testSwiGLU},
		{"GELU", testGELU},
		{"Copy", testCopy},
		{"CopyKVBlock", testCopyKVBlock},
		{"ArgMax", testArgMax},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := fnv.New64a()
			h.Write([]byte(tc.name))
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("conformance seed %d (replay with Options.Seed)", seed)
				}
			})
			s := &suite{t: t, ref: opt.Reference, opt: opt, rng: rand.New(rand.NewPCG(seed, h.Sum64()))}
			if tc.fn == nil {
				testErrors(s, newBackend)
				return
			}
			s.be = newBackend(t)
			tc.fn(s)
			if err := s.be.Sync(); err != nil {
				t.Errorf("%s: Sync: %v", s.be.Name(), err)
			}
		})
	}
}
