package loader

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loomllm/loom/internal/testdata"
	"github.com/loomllm/loom/model"
	"github.com/loomllm/loom/model/hf"
	"github.com/loomllm/loom/model/synth"
	"github.com/loomllm/loom/runtime/backend"
)

func TestOpenGGUF(t *testing.T) {
	m, err := Open(testdata.Path(t, "models/stories260K.gguf"))
	require.NoError(t, err)
	defer m.Close()
	require.Equal(t, model.ArchLlama, m.Config.Arch)
	require.Equal(t, 512, m.Config.VocabSize)
}

func TestOpenHF(t *testing.T) {
	cfg, err := synth.Preset("tiny")
	require.NoError(t, err)
	m, err := synth.New(cfg, backend.BF16, model.TokenizerSpec{}, 1)
	require.NoError(t, err)
	dir := filepath.Join(t.TempDir(), "tiny-hf")
	require.NoError(t, hf.Write(dir, m))
	got, err := Open(dir)
	require.NoError(t, err)
	defer got.Close()
	require.True(t, got.Config.RopeNeoX)
	require.Equal(t, m.Tensors["blk.1.ffn_down.weight"].Data, got.Tensors["blk.1.ffn_down.weight"].Data)
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
