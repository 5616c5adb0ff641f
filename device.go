package loom

import (
	"github.com/loomllm/loom/gpu"
	"github.com/loomllm/loom/runtime/backend"
)

// openGPU opens CUDA device n. In a build without CUDA it fails with an
// error wrapping backend.ErrNoDevice.
func openGPU(n int) (backend.Backend, error) {
	b, err := gpu.New(gpu.Options{Device: n})
	if err != nil {
		return nil, err
	}
	return b, nil
}
