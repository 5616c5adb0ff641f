package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loomllm/loom/internal/testdata"
)

func TestTokenizeCommand(t *testing.T) {
	model := testdata.Path(t, "models/stories260K.gguf")
	var out, errOut bytes.Buffer
	require.Equal(t, 0, run([]string{"tokenize", "--model", model, "Once upon a time"}, &out, &errOut), errOut.String())
	require.Equal(t, "[1,403,407,261,378]\n", out.String())

	out.Reset()
	require.Equal(t, 0, run([]string{"tokenize", "--model", model, "--no-bos", "--pieces", "Once upon a time"}, &out, &errOut))
	require.Equal(t, "[403,407,261,378]\n[\"▁Once\",\"▁upon\",\"▁a\",\"▁time\"]\n", out.String())

	out.Reset()
	tokenizeStdin = strings.NewReader("Once upon a time")
	require.Equal(t, 0, run([]string{"tokenize", "--model", model, "--no-bos", "-"}, &out, &errOut))
	require.Equal(t, "[403,407,261,378]\n", out.String())

	out.Reset()
	tokenizeStdin = strings.NewReader("")
	require.Equal(t, 0, run([]string{"tokenize", "--model", model, "--no-bos"}, &out, &errOut))
	require.Equal(t, "[]\n", out.String())

	require.Equal(t, 2, run([]string{"tokenize", "hello"}, &out, &errOut), "--model is required")
	require.Equal(t, 1, run([]string{"tokenize", "--model", "/nonexistent.gguf", "x"}, &out, &errOut))
}
