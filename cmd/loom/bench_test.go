package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loomllm/loom/bench"
)

// TestBench runs loom bench on a small preset on the CPU: a prefill and
// one decode result per batch size, with positive figures against the
// measured ceilings, greedy and sampled.
func TestBench(t *testing.T) {
	code, out, errOut := runLoom("bench", "--preset", "tiny", "--dtype", "f32", "--device", "cpu", "--threads", "2",
		"--prompt-len", "16", "--decode-prompt", "8", "--gen", "3", "--batch", "1,3", "--reps", "1",
		"--temperature", "0,0.7", "--json")
	require.Zero(t, code, errOut)
	var got []bench.Result
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r bench.Result
		require.NoError(t, json.Unmarshal([]byte(line), &r), line)
		got = append(got, r)
	}
	require.Len(t, got, 5, out)
	require.Equal(t, "prefill", got[0].Kind)
	require.Positive(t, got[0].TTFTms)
	require.Positive(t, got[0].PrefillTokS)
	for i, want := range []struct {
		batch int
		temp  float32
	}{{1, 0}, {1, 0.7}, {3, 0}, {3, 0.7}} {
		r := got[1+i]
		require.Equal(t, "decode", r.Kind)
		require.Equal(t, want.batch, r.Batch)
		require.Equal(t, want.temp, r.Temperature)
		require.Positive(t, r.DecodeTokSAggregate)
		require.Positive(t, r.DecodeFracBW)
		require.Positive(t, r.Ceilings.Bandwidth)
	}
	for _, args := range [][]string{
		{"--preset", "tiny", "--temperature", "-1"},
		{"--preset", "tiny", "--temperature", "0,x"},
		{"--preset", "tiny", "--gen", "1"},
		{"--preset", "tiny", "--batch", "0"},
		{"--model", "x.gguf", "--preset", "tiny"},
	} {
		code, _, errOut := runLoom(append([]string{"bench", "--device", "cpu"}, args...)...)
		require.Equal(t, 2, code, "%v: %s", args, errOut)
	}
}
