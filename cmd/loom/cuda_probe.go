//go:build cuda

package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/loomllm/loom/gpu"
)

// The hidden __probe command of loom-cuda, which loom runs before handing
// a command over (cuda_dispatch.go): it opens the device, loads the
// kernels, prints one line describing the device and exits 0, or fails
// with the reason.

func init() {
	register(command{name: "__probe", summary: "(internal) check the CUDA device for loom's dispatch", run: runProbe})
}

func runProbe(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("__probe", stderr)
	dev := fs.String("device", "cuda", "cuda or cuda:N")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	n := 0
	if s, ok := strings.CutPrefix(*dev, "cuda:"); ok {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 0 {
			return fmt.Errorf("%w: device %q (want cuda or cuda:N)", errUsage, *dev)
		}
	} else if *dev != "cuda" {
		return fmt.Errorf("%w: device %q (want cuda or cuda:N)", errUsage, *dev)
	}
	be, err := gpu.New(gpu.Options{Device: n})
	if err != nil {
		return err
	}
	d := be.Device()
	_, free := be.Memory()
	if err := be.Close(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "cuda:%d %s, %.1f GiB (%.1f GiB free), compute capability %d.%d, %d SMs, driver %d.%d\n",
		d.Index, d.Name, float64(d.TotalMemory)/(1<<30), float64(free)/(1<<30), d.Major, d.Minor, d.SMs, d.Driver/1000, d.Driver%1000/10)
	return nil
}
