package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loomllm/loom/internal/testdata"
	"github.com/loomllm/loom/runtime/constrain"
)

// TestChat: three turns and a /reset on stdin; a reply per turn on
// stdout; the second turn reuses the first's keys and values (the prefix
// cache), the turn after /reset does not; greedy replies repeat exactly.
func TestChat(t *testing.T) {
	model := testdata.Path(t, "models/stories260K.gguf")
	defer func(r io.Reader) { chatInput = r }(chatInput)
	say := func(lines ...string) (string, string) {
		chatInput = strings.NewReader(strings.Join(lines, "\n") + "\n")
		code, out, errOut := runLoom("chat", "--model", model, "--temperature", "0", "--max-tokens", "12",
			"--system", "You tell short stories about a cat named Tom and his friend Lily.")
		require.Zero(t, code, errOut)
		return out, errOut
	}
	one, _ := say("Once upon a time")
	require.NotEmpty(t, strings.TrimSpace(one))
	out, errOut := say("Once upon a time", "", "What happened next?", "/reset", "Once upon a time", "/exit", "ignored")
	require.True(t, strings.HasPrefix(out, one), "the first reply")
	require.True(t, strings.HasSuffix(out, one), "the same greedy reply after /reset")
	require.Greater(t, len(out), 2*len(one), "a second reply in between")
	stats := strings.Split(strings.TrimSpace(errOut), "\n")
	var turns []string
	for _, l := range stats {
		if strings.HasPrefix(l, "[prompt") {
			turns = append(turns, l)
		}
	}
	require.Len(t, turns, 3, errOut)
	require.Contains(t, turns[0], ", 0 from the prefix cache")
	require.NotContains(t, turns[1], ", 0 from the prefix cache", "the second turn starts from the first")
	require.Contains(t, errOut, "(new conversation)")

	code, _, errOut := runLoom("chat", "--model", model, "extra")
	require.Equal(t, 2, code, errOut)

	// --chat-template-kwargs reaches the template.
	tmpl := filepath.Join(t.TempDir(), "t.jinja")
	require.NoError(t, os.WriteFile(tmpl, []byte("{% if not flag %}{{ raise_exception('no flag') }}{% endif %}{{ messages[-1].content }}"), 0o644))
	chatInput = strings.NewReader("Once upon a time\n")
	code, out, errOut = runLoom("chat", "--model", model, "--chat-template", tmpl, "--temperature", "0", "--max-tokens", "12")
	require.Zero(t, code, errOut)
	require.Contains(t, errOut, "no flag")
	require.Empty(t, strings.TrimSpace(out))
	chatInput = strings.NewReader("Once upon a time\n")
	code, out, errOut = runLoom("chat", "--model", model, "--chat-template", tmpl, "--temperature", "0", "--max-tokens", "12",
		"--chat-template-kwargs", `{"flag": true}`)
	require.Zero(t, code, errOut)
	require.NotEmpty(t, strings.TrimSpace(out))
	code, _, errOut = runLoom("chat", "--model", model, "--chat-template-kwargs", "[1]")
	require.Equal(t, 2, code, errOut)
	require.Contains(t, errOut, "want a JSON object")
}

// TestJSONFlag: loom run --json and loom chat --json print a JSON object
// prefix (a whole object when it closes before the token limit).
func TestJSONFlag(t *testing.T) {
	model := testdata.Path(t, "models/stories260K.gguf")
	check := func(text string) {
		var j constrain.JSON
		for i := range len(text) {
			require.True(t, j.Feed(text[i]), "%q at %d", text, i)
		}
	}
	code, out, errOut := runLoom("run", "--model", model, "--prompt", "JSON:", "--json", "--max-tokens", "40", "--seed", "4")
	require.Zero(t, code, errOut)
	check(strings.TrimPrefix(out, "JSON:"))

	defer func(r io.Reader) { chatInput = r }(chatInput)
	chatInput = strings.NewReader("Give me JSON\n")
	code, out, errOut = runLoom("chat", "--model", model, "--json", "--max-tokens", "40", "--seed", "4")
	require.Zero(t, code, errOut)
	check(strings.TrimSuffix(out, "\n"))
}

// TestJSONSchemaFlag: loom run --json-schema and loom chat --json-schema
// print an instance of the schema; a schema with a keyword loom cannot
// enforce, or a missing file, is a usage error naming it.
func TestJSONSchemaFlag(t *testing.T) {
	model := testdata.Path(t, "models/stories260K.gguf")
	dir := t.TempDir()
	file := filepath.Join(dir, "schema.json")
	require.NoError(t, os.WriteFile(file, []byte(`{"type": "object", "required": ["title", "stars"],
		"properties": {"title": {"type": "string", "maxLength": 16}, "stars": {"enum": ["one", "two", "three"]}}}`), 0o644))
	raw, err := os.ReadFile(file)
	require.NoError(t, err)
	schema, err := constrain.CompileSchema(raw)
	require.NoError(t, err)
	check := func(text string) {
		st := schema.Start()
		for i := range len(text) {
			require.True(t, st.Feed(text[i]), "%q at %d", text, i)
		}
		require.True(t, st.Done(), "%q", text)
	}
	code, out, errOut := runLoom("run", "--model", model, "--prompt", "JSON:", "--json-schema", file, "--max-tokens", "100", "--seed", "4")
	require.Zero(t, code, errOut)
	check(strings.TrimPrefix(out, "JSON:"))

	defer func(r io.Reader) { chatInput = r }(chatInput)
	chatInput = strings.NewReader("Give me JSON\n")
	code, out, errOut = runLoom("chat", "--model", model, "--json-schema", file, "--max-tokens", "100", "--seed", "4")
	require.Zero(t, code, errOut)
	check(strings.TrimSuffix(out, "\n"))

	bad := filepath.Join(dir, "bad.json")
	require.NoError(t, os.WriteFile(bad, []byte(`{"type": "object", "properties": {"d": {"type": "string", "format": "date"}}}`), 0o644))
	code, _, errOut = runLoom("run", "--model", model, "--json-schema", bad)
	require.NotZero(t, code)
	require.Contains(t, errOut, `bad.json: unsupported JSON schema: #.properties.d: keyword "format" is not supported`)
	code, _, errOut = runLoom("run", "--model", model, "--json-schema", filepath.Join(dir, "missing.json"))
	require.NotZero(t, code)
	require.Contains(t, errOut, "missing.json")
}
