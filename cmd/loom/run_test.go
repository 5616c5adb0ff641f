package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loomllm/loom/internal/testdata"
)

func runLoom(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

// TestRunGolden is the acceptance command: llama2.c's published
// output, byte for byte.
func TestRunGolden(t *testing.T) {
	model := testdata.Path(t, "models/stories260K.gguf")
	want, err := os.ReadFile(testdata.Path(t, "golden/stories260K_greedy_n200.txt"))
	require.NoError(t, err)
	code, out, errOut := runLoom("run", "--model", model, "--temperature", "0", "--max-tokens", "200")
	require.Zero(t, code, errOut)
	require.Equal(t, string(want), out)
	require.Contains(t, errOut, "generated: 200 tokens")
	require.Contains(t, errOut, "finish: length")

	// Prompt lookup: the same bytes, with drafts accepted on the way.
	code, out, errOut = runLoom("run", "--model", model, "--temperature", "0", "--max-tokens", "200", "--lookup", "4")
	require.Zero(t, code, errOut)
	require.Equal(t, string(want), out)
	require.Regexp(t, `drafts: [1-9][0-9]* of [0-9]+ accepted`, errOut)

	// A draft model (here the model itself): the same bytes, every draft accepted.
	code, out, errOut = runLoom("run", "--model", model, "--temperature", "0", "--max-tokens", "200", "--draft-model", model)
	require.Zero(t, code, errOut)
	require.Equal(t, string(want), out)
	require.Regexp(t, `drafts: ([0-9]+) of ([0-9]+) accepted`, errOut)
	m := regexp.MustCompile(`drafts: ([0-9]+) of ([0-9]+) accepted`).FindStringSubmatch(errOut)
	require.Equal(t, m[1], m[2], "the model agrees with itself")
	code, _, errOut = runLoom("run", "--model", model, "--lookup", "33")
	require.Equal(t, 2, code, errOut)

	// An F16 key/value cache: the same bytes on this model.
	code, out, errOut = runLoom("run", "--model", model, "--temperature", "0", "--max-tokens", "200", "--kv-type", "f16")
	require.Zero(t, code, errOut)
	require.Equal(t, string(want), out)
	code, _, errOut = runLoom("run", "--model", model, "--kv-type", "q4_0")
	require.NotZero(t, code)
	require.Contains(t, errOut, `kv type "q4_0"`)
}

func TestRunPromptAndStop(t *testing.T) {
	model := testdata.Path(t, "models/stories260K.gguf")
	code, out, errOut := runLoom("run", "--model", model, "--temperature", "0", "--max-tokens", "40", "--prompt", "Once upon a time")
	require.Zero(t, code, errOut)
	require.Regexp(t, `^Once upon a time, `, out)

	code, stopped, errOut := runLoom("run", "--model", model, "--temperature", "0", "--max-tokens", "40",
		"--prompt", "Once upon a time", "--stop", "little", "--stop", "zebra")
	require.Zero(t, code, errOut)
	require.Contains(t, errOut, "finish: stop")
	require.Less(t, len(stopped), len(out))
	require.Equal(t, out[:len(stopped)], stopped)
	require.Equal(t, "little", out[len(stopped):len(stopped)+6])

	f := filepath.Join(t.TempDir(), "prompt.txt")
	require.NoError(t, os.WriteFile(f, []byte("Once upon a time\n"), 0o600))
	code, fromFile, errOut := runLoom("run", "--model", model, "--temperature", "0", "--max-tokens", "40", "--prompt-file", f)
	require.Zero(t, code, errOut)
	require.Equal(t, out, fromFile)

	// Seeded sampling reproduces.
	_, a, _ := runLoom("run", "--model", model, "--max-tokens", "30", "--seed", "7", "--temperature", "1")
	_, b, _ := runLoom("run", "--model", model, "--max-tokens", "30", "--seed", "7", "--temperature", "1")
	require.Equal(t, a, b)

	code, _, errOut = runLoom("run", "--model", model, "--beams", "3", "--max-tokens", "10")
	require.Zero(t, code, errOut)
}

func TestRunDemo(t *testing.T) {
	code, out, errOut := runLoom("run", "--max-tokens", "10", "--prompt", "the cat")
	require.Zero(t, code, errOut)
	require.Contains(t, errOut, "random-weight demo")
	require.Regexp(t, `^the cat \S`, out)
}

func TestRunBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--temperature", "-1"}, {"--top-p", "2"}, {"--beams", "0"}, {"--max-tokens", "-5"},
		{"--prompt", "a", "--prompt-file", "b"}, {"--nope"}, {"stray"},
	} {
		code, _, errOut := runLoom(append([]string{"run"}, args...)...)
		require.Equal(t, 2, code, "%v: %s", args, errOut)
	}
	code, _, errOut := runLoom("run", "--model", "/nonexistent/model.gguf")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "nonexistent")
	model := testdata.Path(t, "models/stories260K.gguf")
	code, _, errOut = runLoom("run", "--model", model, "--ctx", "16", "--max-tokens", "20")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "context")
}

// TestRunMatchesRunC: loom run prints what llama2.c's run.c prints for the
// same prompts (model/testdata/stories260K_runc.json), where run.c prints
// every byte: it drops raw byte tokens that are not printable ASCII, which
// loom writes as the UTF-8 they form.
func TestRunMatchesRunC(t *testing.T) {
	model := testdata.Path(t, "models/stories260K.gguf")
	raw, err := os.ReadFile(filepath.Join("..", "..", "model", "testdata", "stories260K_runc.json"))
	require.NoError(t, err)
	var rc struct {
		Cases []struct {
			Prompt string  `json:"prompt"`
			Steps  int     `json:"steps"`
			IDs    []int32 `json:"ids"`
			Stdout string  `json:"stdout"`
		} `json:"cases"`
	}
	require.NoError(t, json.Unmarshal(raw, &rc))
	compared := 0
	for _, c := range rc.Cases {
		bytesTokens := false
		for _, id := range c.IDs {
			bytesTokens = bytesTokens || (id >= 3 && id < 3+256) // stories260K's <0xNN> tokens
		}
		code, prompt, _ := runLoom("tokenize", "--model", model, c.Prompt)
		require.Zero(t, code)
		var ids []int
		require.NoError(t, json.Unmarshal([]byte(prompt), &ids))
		code, out, errOut := runLoom("run", "--model", model, "--temperature", "0",
			"--max-tokens", strconv.Itoa(c.Steps-(len(ids)-1)), "--prompt", c.Prompt)
		require.Zero(t, code, errOut)
		if bytesTokens && c.Stdout != out { // runtime/generate's TestMatchesRunC compares the ids
			continue
		}
		require.Equal(t, c.Stdout, out, "prompt %q", c.Prompt)
		compared++
	}
	require.GreaterOrEqual(t, compared, 6)
}
