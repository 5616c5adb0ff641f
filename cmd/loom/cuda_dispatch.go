package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A loom built with CUDA cannot even start on a machine without a GPU:
// the binary links libcuda.so.1, and gorgonia.org/cu's init calls cuInit
// and exits with a bare message when it fails. So make cuda builds two
// binaries side by side: bin/loom (pure Go, the CPU backend) and
// bin/loom-cuda (built with -tags cuda). bin/loom starts first; when the
// command may use a GPU (commandDevice) it probes by running "loom-cuda __probe" (see
// cuda_probe.go) and, if that finds the device, replaces itself with
// loom-cuda (same arguments). Otherwise it runs on the CPU with a one-line
// notice (--device auto) or stops with "no CUDA device: <reason>"
// (--device cuda or cuda:N). Without a loom-cuda beside it (a CPU-only
// build), auto silently means the CPU.

const (
	cudaBinaryName = "loom-cuda"
	// envDispatched marks a process started by the dispatch, so it never
	// probes or dispatches again.
	envDispatched = "LOOM_CUDA_DISPATCHED"
	// envDevice supplies the device when no --device flag is given.
	envDevice = "LOOM_DEVICE"
	// probeTimeout bounds the probe (driver initialisation on a large
	// machine takes a few seconds).
	probeTimeout = 30 * time.Second
)

// cudaDispatch decides which binary runs this command line (args without
// the program name). main calls it first:
//
//	if code, handled := cudaDispatch(os.Args[1:], os.Stderr); handled {
//		os.Exit(code)
//	}
//
// It returns handled == false when this process should go on: the
// command does not use a device, the device is the CPU, no usable GPU was
// found for --device auto (after printing a notice), or this is already
// the CUDA binary. On success it does not return: the process becomes
// loom-cuda. It returns handled == true with an exit code when
// --device cuda[:N] was asked for and cannot be honoured.
func cudaDispatch(args []string, stderr io.Writer) (exitCode int, handled bool) {
	if builtWithCUDA || os.Getenv(envDispatched) != "" || len(args) == 0 {
		return 0, false
	}
	dev := strings.ToLower(strings.TrimSpace(commandDevice(args)))
	if dev != "auto" && dev != "cuda" && !strings.HasPrefix(dev, "cuda:") {
		return 0, false // no device, the CPU, or a bad value the command reports
	}
	explicit := dev != "auto"
	exe, err := cudaBinary()
	if err == nil {
		_, err = probeCUDA(exe, dev)
	}
	if err != nil {
		if errors.Is(err, errNoCUDABinary) && !explicit {
			return 0, false
		}
		if explicit {
			fmt.Fprintf(stderr, "loom: no CUDA device: %v\n", err)
			return 1, true
		}
		fmt.Fprintf(stderr, "loom: no CUDA device (%v); running on the CPU\n", err)
		return 0, false
	}
	env := append(os.Environ(), envDispatched+"=1")
	err = syscall.Exec(exe, append([]string{exe}, args...), env)
	fmt.Fprintf(stderr, "loom: starting %s: %v\n", exe, err)
	return 1, true
}

// errNoCUDABinary reports a build without loom-cuda beside loom.
var errNoCUDABinary = errors.New("this loom was built without CUDA support (no " + cudaBinaryName + " beside it: build with make cuda)")

// cudaBinary returns the path of loom-cuda beside this executable.
func cudaBinary() (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("locating this executable: %w", err)
	}
	if self, err = filepath.EvalSymlinks(self); err != nil {
		return "", fmt.Errorf("locating this executable: %w", err)
	}
	exe := filepath.Join(filepath.Dir(self), cudaBinaryName)
	if st, err := os.Stat(exe); err != nil || st.IsDir() || exe == self {
		return "", errNoCUDABinary
	}
	return exe, nil
}

// commandDevice returns the device a command line asks for: "auto",
// "cpu", "cuda", "cuda:N", or "" for commands that use none. run, chat,
// bench and serve take --device (default $LOOM_DEVICE, else auto); verify uses
// the GPU with --against cuda. A request for help (-h, --help) uses none:
// the usage text needs no probe and no line about the GPU.
func commandDevice(args []string) string {
	for _, a := range args[1:] {
		if a == "--" {
			break
		}
		if a == "-h" || a == "-help" || a == "--help" || a == "--h" {
			return ""
		}
	}
	switch args[0] {
	case "run", "chat", "bench", "serve":
		if d := flagValue(args[1:], "device"); d != "" {
			return d
		}
		if d := os.Getenv(envDevice); d != "" {
			return d
		}
		return "auto"
	case "verify":
		if flagValue(args[1:], "against") == "cuda" {
			return "cuda"
		}
	}
	return ""
}

// flagValue returns the value of the last -name or --name flag in args (up
// to a "--"), written as "--name value" or "--name=value", or "".
func flagValue(args []string, name string) string {
	v := ""
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		n, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || n != name {
			continue
		}
		if !hasVal && i+1 < len(args) {
			i++
			val = args[i]
		}
		v = val
	}
	return v
}

// probeCUDA runs "loom-cuda __probe --device dev" under a timeout and
// returns its report of the device, or an error saying why there is no
// usable device (the driver's own words where it gave some).
func probeCUDA(exe, dev string) (string, error) {
	if dev == "auto" {
		dev = "cuda"
	}
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "__probe", "--device", dev)
	cmd.Env = append(os.Environ(), envDispatched+"=1")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return "", fmt.Errorf("probing with %s timed out after %v", exe, probeTimeout)
	}
	if err != nil {
		return "", errors.New(probeReason(string(out), err))
	}
	return strings.TrimSpace(string(out)), nil
}

// probeReason turns a failed probe's output into one line.
func probeReason(out string, err error) string {
	switch {
	case strings.Contains(out, "libcuda.so"):
		return "the NVIDIA driver library libcuda.so.1 is not installed"
	case strings.Contains(out, "Error in initialization"):
		// gorgonia.org/cu's init: "... for details on: NoDevice"
		_, why, _ := strings.Cut(out, "details on: ")
		return "the CUDA driver did not initialise: " + strings.TrimSpace(why)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if last := strings.TrimSpace(lines[len(lines)-1]); last != "" {
		return last
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return cudaBinaryName + " exited with status " + strconv.Itoa(ee.ExitCode())
	}
	return err.Error()
}
