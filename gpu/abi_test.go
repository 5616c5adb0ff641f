package gpu

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// ptxEntries extracts each kernel's parameter types from the PTX in
// loom.fatbin (built by make cuda), using the toolkit's cuobjdump. It skips
// the test when either is missing.
func ptxEntries(t *testing.T) map[string][]string {
	t.Helper()
	if _, err := os.Stat("loom.fatbin"); err != nil {
		t.Skip("gpu/loom.fatbin not built (run make cuda)")
	}
	tool, err := exec.LookPath("cuobjdump")
	if err != nil {
		t.Skip("cuobjdump not found (make cuda-toolchain installs it)")
	}
	out, err := exec.Command(tool, "-ptx", "loom.fatbin").Output()
	require.NoError(t, err, "cuobjdump -ptx loom.fatbin")
	entry := regexp.MustCompile(`(?s)\.entry\s+(\w+)\s*\((.*?)\)`)
	param := regexp.MustCompile(`\.param\s+((?:\.align\s+\d+\s+)?\.\w+)\s+\w+(\[\d+\])?`)
	entries := map[string][]string{}
	for _, m := range entry.FindAllStringSubmatch(string(out), -1) {
		if _, dup := entries[m[1]]; dup {
			continue // the same kernel for another architecture
		}
		types := []string{}
		for _, p := range param.FindAllStringSubmatch(m[2], -1) {
			types = append(types, p[1]+p[2])
		}
		entries[m[1]] = types
	}
	require.NotEmpty(t, entries, "no kernels in the PTX of loom.fatbin")
	return entries
}

// TestKernelABI checks kernelSpecs against the compiled kernels: every
// kernel the launchers use exists, takes the number of parameters its
// launcher passes, and every parameter is 8 bytes (the launcher copies 8
// bytes per parameter). It runs wherever the fatbin was built, no GPU
// needed.
func TestKernelABI(t *testing.T) {
	entries := ptxEntries(t)
	known := map[string]bool{}
	for _, s := range kernelSpecs {
		known[s.name] = true
		types, ok := entries[s.name]
		if !ok {
			t.Errorf("kernel %s is not in loom.fatbin", s.name)
			continue
		}
		if len(types) != s.args {
			t.Errorf("kernel %s takes %d parameters, its launcher passes %d", s.name, len(types), s.args)
		}
		for i, ty := range types {
			if ty != ".u64" && ty != ".f64" && ty != ".s64" && ty != ".b64" {
				t.Errorf("kernel %s parameter %d is %s, want an 8-byte scalar or pointer", s.name, i, ty)
			}
		}
	}
	var unused []string
	for name := range entries {
		if !known[name] {
			unused = append(unused, name)
		}
	}
	if len(unused) > 0 {
		t.Logf("kernels in the fatbin without a launcher: %s", strings.Join(unused, ", "))
	}
}
