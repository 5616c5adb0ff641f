package conformance_test

import (
	"math"
	"os"
	"os/exec"
	"testing"

	"github.com/loomllm/loom/cpu"
	"github.com/loomllm/loom/runtime/backend"
	"github.com/loomllm/loom/runtime/conformance"
	"github.com/stretchr/testify/require"
)

func TestRelErr(t *testing.T) {
	require.Zero(t, conformance.RelErr([]float32{1, 2}, []float32{1, 2}))
	require.InDelta(t, 0.1, conformance.RelErr([]float32{3.3, 4.4}, []float32{3, 4}), 1e-6)
	require.InDelta(t, 0.5, conformance.RelErr([]float32{0.3, 0.4}, []float32{0, 0}), 1e-6)
	nan := float32(math.NaN())
	require.True(t, math.IsInf(conformance.RelErr([]float32{nan}, []float32{1}), 1))
	require.True(t, math.IsInf(conformance.RelErr([]float32{1}, []float32{nan}), 1))
	require.True(t, math.IsInf(conformance.RelErr([]float32{float32(math.Inf(1))}, []float32{1}), 1))
	require.True(t, math.IsInf(conformance.RelErr([]float32{1}, []float32{1, 2}), 1))
	require.Equal(t, conformance.TolF32, conformance.Tolerance(backend.F32))
	require.Equal(t, conformance.TolHalf, conformance.Tolerance(backend.BF16))
	require.Equal(t, conformance.TolQuant, conformance.Tolerance(backend.Q4_0))
}

// mutant is a cpu backend with one deliberate bug, to show the suite
// catches it.
type mutant struct {
	backend.Backend
	bug string
}

func (m *mutant) MatMul(dst, x, w backend.Tensor) {
	switch {
	case m.bug == "matmul-unwritten" && w.Rows() > 1: // leaves the last output column unwritten
		m.Backend.MatMul(dst.ColSlice(0, dst.Cols()-1), x, w.Slice(0, w.Rows()-1))
	default:
		m.Backend.MatMul(dst, x, w)
	}
}

func (m *mutant) Attention(out, q, k, v backend.Tensor, c backend.KVCache, a backend.Attn) {
	if m.bug == "attention-scale" {
		a.Scale *= 1.001
	}
	m.Backend.Attention(out, q, k, v, c, a)
}

func (m *mutant) RoPE(dst, x, pos, freqs backend.Tensor, headDim int, neox bool) {
	if m.bug == "rope-layout" && freqs.Cols() > 1 {
		neox = !neox
	}
	m.Backend.RoPE(dst, x, pos, freqs, headDim, neox)
}

func (m *mutant) Sync() error {
	if m.bug == "errors-lost" {
		return nil
	}
	return m.Backend.Sync()
}

// TestMutantHelper runs the suite on the mutant named by $LOOM_MUTANT; it
// is run as a subprocess by TestSuiteCatchesBugs.
func TestMutantHelper(t *testing.T) {
	bug := os.Getenv("LOOM_MUTANT")
	if bug == "" {
		t.Skip("run by TestSuiteCatchesBugs")
	}
	conformance.Run(t, func(t *testing.T) backend.Backend {
		b := cpu.New(cpu.Options{Threads: 2})
		t.Cleanup(func() { b.Close() })
		return &mutant{Backend: b, bug: bug}
	}, conformance.Options{Short: true})
}

// TestSuiteCatchesBugs checks that the suite fails each mutant backend
// (and passes the unmutated one).
func TestSuiteCatchesBugs(t *testing.T) {
	for bug, subtest := range map[string]string{
		"":                 "MatMul|Attention|RoPE",
		"matmul-unwritten": "MatMul",
		"attention-scale":  "Attention",
		"rope-layout":      "RoPE",
		"errors-lost":      "Errors",
	} {
		t.Run(bug, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestMutantHelper$/^("+subtest+")$", "-test.short")
			cmd.Env = append(os.Environ(), "LOOM_MUTANT="+bug)
			if bug == "" {
				cmd.Env = append(cmd.Env, "LOOM_MUTANT=none")
			}
			out, err := cmd.CombinedOutput()
			if bug == "" {
				require.NoError(t, err, "the suite fails a correct backend:\n%s", out)
				return
			}
			require.Error(t, err, "the suite passes a backend with bug %q", bug)
			require.Contains(t, string(out), "--- FAIL: TestMutantHelper/"+subtest)
		})
	}
}
