package loader

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loomllm/loom/internal/testdata"
	"github.com/loomllm/loom/model"
)

func TestOpenGGUF(t *testing.T) {
	m, err := Open(testdata.Path(t, "models/stories260K.gguf"))
	require.NoError(t, err)
	defer m.Close()
	require.Equal(t, model.ArchLlama, m.Config.Arch)
	require.Equal(t, 512, m.Config.VocabSize)
}

func TestOpenBadPaths(t *testing.T) {
	dir := t.TempDir()
	_, err := Open(filepath.Join(dir, "absent.gguf"))
	require.ErrorIs(t, err, os.ErrNotExist)

	_, err = Open(dir)
	require.ErrorIs(t, err, model.ErrFormat)
	require.ErrorContains(t, err, "config.json")

	txt := filepath.Join(dir, "notes.txt")
	require.NoError(t, os.WriteFile(txt, []byte("hello, world"), 0o644))
	_, err = Open(txt)
	require.ErrorIs(t, err, model.ErrFormat)
	require.ErrorContains(t, err, txt)
}
