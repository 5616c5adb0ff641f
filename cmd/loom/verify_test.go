package main

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loomllm/loom/internal/testdata"
)

func TestVerify(t *testing.T) {
	model := testdata.Path(t, "models/stories260K.gguf")
	code, out, errOut := runLoom("verify", "--model", model, "--tokens", "8")
	require.Zero(t, code, errOut)
	require.Contains(t, out, "final")
	require.Contains(t, out, "greedy tokens identical")
	require.Contains(t, out, "PASS")

	// Q8_0 weights differ measurably: a tight tolerance fails the gate.
	code, out, errOut = runLoom("verify", "--model", model, "--against", "q8_0", "--tokens", "4", "--tol", "1e-6")
	require.Equal(t, 1, code, out)
	require.Contains(t, errOut, "differ beyond the tolerance")

	for _, args := range [][]string{{}, {"--model", model, "--against", "tpu"}, {"--model", model, "--tokens", "-1"}} {
		code, _, errOut := runLoom(append([]string{"verify"}, args...)...)
		require.Equal(t, 2, code, errOut)
	}
}
