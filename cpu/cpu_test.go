package cpu

import (
	"testing"

	"github.com/loomllm/loom/runtime/backend"
	"github.com/loomllm/loom/runtime/conformance"
)

func newBackend(opt Options) func(t *testing.T) backend.Backend {
	return func(t *testing.T) backend.Backend {
		b := New(opt)
		t.Cleanup(func() { b.Close() })
		return b
	}
}

// TestConformance runs the conformance suite on the SIMD and on the
// plain-Go paths, each against the suite's float64 reference.
func TestConformance(t *testing.T) {
	t.Run("simd", func(t *testing.T) { conformance.Run(t, newBackend(Options{}), conformance.Options{}) })
	t.Run("generic", func(t *testing.T) {
		conformance.Run(t, newBackend(Options{Generic: true, Threads: 3}), conformance.Options{})
	})
}
