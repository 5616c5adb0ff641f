//go:build !cuda

package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCommandDevice(t *testing.T) {
	t.Setenv(envDevice, "")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--model", "m.gguf"}, "auto"},
		{[]string{"run", "--device", "cuda:1", "--model", "m.gguf"}, "cuda:1"},
		{[]string{"bench", "-device=cpu"}, "cpu"},
		{[]string{"chat", "--device", "cuda"}, "cuda"},
		{[]string{"run", "--device", "cpu", "--device=cuda"}, "cuda"},
		{[]string{"run", "--", "--device", "cuda"}, "auto"},
		{[]string{"verify", "--against", "cuda"}, "cuda"},
		{[]string{"verify", "--against=generic"}, ""},
		{[]string{"tokenize", "--device", "cuda"}, ""},
		{[]string{"bench", "-h"}, ""},
		{[]string{"serve", "--device", "cuda", "--help"}, ""},
		{[]string{"run", "--", "-h"}, "auto"},
	} {
		require.Equal(t, c.want, commandDevice(c.args), "%q", c.args)
	}
	t.Setenv(envDevice, "cuda:2")
	require.Equal(t, "cuda:2", commandDevice([]string{"run"}))
	require.Equal(t, "cpu", commandDevice([]string{"run", "--device", "cpu"}))
}

func TestProbeReason(t *testing.T) {
	gorgonia := "Error in initialization, please refer to \"https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__INITIALIZE.html\" for details on: NoDevice\n"
	require.Equal(t, "the CUDA driver did not initialise: NoDevice", probeReason(gorgonia, errors.New("exit status 1")))
	loader := "loom-cuda: error while loading shared libraries: libcuda.so.1: cannot open shared object file: No such file or directory\n"
	require.Contains(t, probeReason(loader, errors.New("exit status 127")), "libcuda.so.1 is not installed")
	require.Equal(t, "gpu: no such device: cuda:3 requested", probeReason("gpu: no such device: cuda:3 requested\n", errors.New("x")))
}

// The dispatch tests run this test binary again, copied into a temporary
// folder beside a fake loom-cuda script, with envDispatchTest set: TestMain
// then calls cudaDispatch on the arguments and prints what it returned.
const envDispatchTest = "LOOM_TEST_CUDA_DISPATCH"

func TestMain(m *testing.M) {
	if os.Getenv(envDispatchTest) != "" {
		code, handled := cudaDispatch(strings.Fields(os.Getenv(envDispatchTest)), os.Stderr)
		fmt.Printf("returned %s %d\n", map[bool]string{true: "handled", false: "not-handled"}[handled], code)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// dispatch runs cudaDispatch(args) in a copy of the test binary placed in
// a folder with the given loom-cuda script ("" for none).
func dispatch(t *testing.T, script, args string) (stdout, stderr string) {
	t.Helper()
	dir := t.TempDir()
	self, err := os.Executable()
	require.NoError(t, err)
	data, err := os.ReadFile(self)
	require.NoError(t, err)
	exe := filepath.Join(dir, "loom")
	require.NoError(t, os.WriteFile(exe, data, 0o755))
	if script != "" {
		require.NoError(t, os.WriteFile(filepath.Join(dir, cudaBinaryName), []byte("#!/bin/sh\n"+script), 0o755))
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), envDispatchTest+"="+args, envDispatched+"=", envDevice+"=")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	require.NoError(t, cmd.Run(), "stderr: %s", errb.String())
	return out.String(), errb.String()
}

func TestDispatch(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("needs /bin/sh for the fake loom-cuda")
	}
	noDevice := `echo 'Error in initialization, please refer to "x" for details on: NoDevice'; exit 1` + "\n"
	ok := `if [ "$1" = __probe ]; then echo "cuda:0 Fake GPU"; exit 0; fi; echo "loom-cuda ran: $* dispatched=$` + envDispatched + `"` + "\n"

	out, errs := dispatch(t, "", "run --model m")
	require.Equal(t, "returned not-handled 0\n", out, "CPU-only build, auto: the CPU, silently")
	require.Empty(t, errs)

	out, errs = dispatch(t, "", "run --device cuda")
	require.Equal(t, "returned handled 1\n", out)
	require.Contains(t, errs, "no CUDA device: this loom was built without CUDA support")

	out, errs = dispatch(t, noDevice, "run --model m")
	require.Equal(t, "returned not-handled 0\n", out, "no GPU, auto: the CPU")
	require.Equal(t, "loom: no CUDA device (the CUDA driver did not initialise: NoDevice); running on the CPU\n", errs)

	out, errs = dispatch(t, noDevice, "run --device cuda:1")
	require.Equal(t, "returned handled 1\n", out)
	require.Equal(t, "loom: no CUDA device: the CUDA driver did not initialise: NoDevice\n", errs)

	out, _ = dispatch(t, ok, "bench --device cpu")
	require.Equal(t, "returned not-handled 0\n", out, "--device cpu never probes")

	out, errs = dispatch(t, ok, "run --device cuda --model m")
	require.Equal(t, "loom-cuda ran: run --device cuda --model m dispatched=1\n", out, "the process becomes loom-cuda")
	require.Empty(t, errs)
}
