//go:build !cuda

package gpu

import (
	"fmt"

	"github.com/loomllm/loom/runtime/backend"
)

// Backend is the CUDA backend. In a build without the cuda tag it cannot be
// created: New always fails. It embeds backend.Backend only so that code
// using *Backend compiles in both builds.
type Backend struct{ backend.Backend }

// errNoCUDA is what New and Devices return in a build without CUDA.
var errNoCUDA = fmt.Errorf("gpu: %w: built without CUDA support (rebuild with make cuda, or go build -tags cuda)", backend.ErrNoDevice)

// New fails: this binary was built without the cuda tag.
func New(opt Options) (*Backend, error) {
	return nil, fmt.Errorf("cuda:%d: %w", opt.Device, errNoCUDA)
}

// Devices fails: this binary was built without the cuda tag.
func Devices() ([]DeviceInfo, error) { return nil, errNoCUDA }
