// Package testdata locates the shared test files (a trained model, tokenizer
// vectors, golden outputs) that live in ../shared beside the repository,
// and skips a test with a clear message where they are absent.
package testdata

import (
	"os"
	"path/filepath"
	"testing"
)

// SharedDir returns the shared test-data folder: $LOOM_SHARED if set, else
// the folder "shared" beside the module root (found by walking up from the
// working directory to go.mod). It returns "" when neither exists.
func SharedDir() string {
	if d := os.Getenv("LOOM_SHARED"); d != "" {
		return d
	}
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			d := filepath.Join(dir, "..", "shared")
			if st, err := os.Stat(d); err == nil && st.IsDir() {
				return d
			}
			return ""
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// Path returns the path of a shared file (rel is relative to the shared
// folder, e.g. "models/stories260K.gguf"), or skips the test when the file
// is not there.
func Path(tb testing.TB, rel string) string {
	tb.Helper()
	d := SharedDir()
	if d == "" {
		tb.Skipf("shared test data not found (set LOOM_SHARED or place it at ../shared): need %s", rel)
	}
	p := filepath.Join(d, rel)
	if _, err := os.Stat(p); err != nil {
		tb.Skipf("shared test file %s not present: %v", rel, err)
	}
	return p
}
