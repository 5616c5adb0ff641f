package tokenizer

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loomllm/loom/internal/testdata"
	"github.com/loomllm/loom/model"
	"github.com/loomllm/loom/model/gguf"
)

// vectorCase is one llama.cpp tokenizer test case.
type vectorCase struct {
	text string
	ids  []int32
}

// readVectors reads the .inp/.out pair beside a ggml-vocab file.
func readVectors(t testing.TB, vocab string) []vectorCase {
	inp, err := os.ReadFile(vocab + ".inp")
	require.NoError(t, err)
	out, err := os.ReadFile(vocab + ".out")
	require.NoError(t, err)
	texts := strings.Split(string(inp), "\n__ggml_vocab_test__\n")
	if texts[len(texts)-1] == "" {
		texts = texts[:len(texts)-1]
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	require.Len(t, lines, len(texts), "cases in %s.inp and .out", vocab)
	cases := make([]vectorCase, len(texts))
	for i, text := range texts {
		cases[i].text = text
		for _, f := range strings.Fields(lines[i]) {
			id, err := strconv.Atoi(f)
			require.NoError(t, err)
			cases[i].ids = append(cases[i].ids, int32(id))
		}
	}
	return cases
}

// loadSpec reads the tokenizer data of a GGUF file.
func loadSpec(t testing.TB, path string) *model.TokenizerSpec {
	m, err := gguf.Load(path)
	require.NoError(t, err)
	require.NoError(t, m.Close())
	return &m.Tokenizer
}

func loadVocab(t testing.TB, name string) (*Tokenizer, string) {
	path := testdata.Path(t, "tokenizers/"+name)
	tok, err := New(loadSpec(t, path))
	require.NoError(t, err)
	return tok, path
}

func TestVectors(t *testing.T) {
	for _, name := range []string{"ggml-vocab-llama-spm.gguf", "ggml-vocab-phi-3.gguf", "ggml-vocab-gpt-2.gguf"} {
		t.Run(name, func(t *testing.T) {
			tok, path := loadVocab(t, name)
			cases := readVectors(t, path)
			require.NotEmpty(t, cases)
			for i, c := range cases {
				got := tok.Encode(c.text, EncodeOptions{})
				if len(got) == 0 {
					got = nil
				}
				require.Equal(t, c.ids, got, "case %d %q", i, c.text)
				require.Equal(t, c.text, tok.Decode(got), "case %d round trip", i)
			}
		})
	}
}
