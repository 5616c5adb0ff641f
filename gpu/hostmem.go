//go:build cuda

package gpu

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"gorgonia.org/cu"

	"github.com/loomllm/loom/runtime/backend"
)

var _ backend.HostAllocator = (*Backend)(nil)

// AllocHost returns n zeroed bytes of page-locked host memory
// (cuMemAllocHost): downloads into it run at the copy engine's speed
// instead of through the driver's staging buffer. It is freed by FreeHost
// or Close.
func (b *Backend) AllocHost(n int) ([]byte, error) {
	if !b.ok() {
		return nil, b.err
	}
	if n <= 0 {
		return nil, fmt.Errorf("gpu: AllocHost: %w: %d bytes", backend.ErrShape, n)
	}
	if b.capturing {
		return nil, errors.New("gpu: AllocHost called inside Graph's step")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := b.l.bind(); err != nil {
		return nil, fmt.Errorf("gpu: AllocHost: %w", err)
	}
	p, err := allocHost(n)
	if err != nil {
		return nil, fmt.Errorf("gpu: AllocHost of %s: %w", human(int64(n)), err)
	}
	s := unsafe.Slice((*byte)(p), n)
	clear(s)
	if b.host == nil {
		b.host = map[*byte]int{}
	}
	b.host[&s[0]] = n
	return s, nil
}

// FreeHost releases memory AllocHost returned; other slices are ignored.
func (b *Backend) FreeHost(s []byte) {
	if len(s) == 0 || b.host == nil {
		return
	}
	if _, ok := b.host[&s[0]]; !ok {
		return
	}
	delete(b.host, &s[0])
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if b.l.bind() == nil {
		_ = cu.MemFreeHost(unsafe.Pointer(&s[0]))
	}
}

// freeHost releases every page-locked allocation (Close).
func (b *Backend) freeHost() {
	for p := range b.host {
		_ = cu.MemFreeHost(unsafe.Pointer(p))
	}
	b.host = nil
}
