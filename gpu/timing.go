//go:build cuda

package gpu

import (
	"errors"
	"fmt"
	"runtime"
	"time"

	"gorgonia.org/cu"
)

// Time runs f, which issues operations, and returns the device time they
// took, measured with CUDA events recorded on the backend's stream before
// and after them. It waits for them to finish. Benchmarks use it to time
// kernels without counting the host.
func (b *Backend) Time(f func()) (time.Duration, error) {
	if b.capturing {
		b.fail(errors.New("gpu: Time called inside Graph's step"))
	}
	if !b.ok() {
		return 0, b.err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := b.l.bind(); err != nil {
		return 0, fmt.Errorf("gpu: Time: %w", err)
	}
	if err := b.start.Record(b.strm); err != nil {
		return 0, fmt.Errorf("gpu: Time: recording the start event: %w", err)
	}
	f()
	if err := b.l.bind(); err != nil {
		return 0, fmt.Errorf("gpu: Time: %w", err)
	}
	if err := b.end.Record(b.strm); err != nil {
		return 0, fmt.Errorf("gpu: Time: recording the end event: %w", err)
	}
	if err := b.end.Synchronize(); err != nil {
		b.fail(fmt.Errorf("gpu: Time: a queued operation failed: %w", err))
		return 0, b.err
	}
	if !b.ok() {
		return 0, b.err
	}
	ms, err := b.start.Elapsed(b.end)
	if err != nil {
		return 0, fmt.Errorf("gpu: Time: %w", err)
	}
	return time.Duration(ms * float64(time.Millisecond)), nil
}

// CopyBandwidth measures the device's memory bandwidth the way loom's
// benchmarks use it as a ceiling: reps device-to-device copies of n bytes
// (cuMemcpyDtoDAsync), timed with events, counting each byte read and
// written. It returns bytes per second. n should be well over the L2 cache
// (1 GiB is customary).
func (b *Backend) CopyBandwidth(n int64, reps int) (float64, error) {
	if reps <= 0 || n <= 0 {
		return 0, fmt.Errorf("gpu: CopyBandwidth: %d copies of %d bytes", reps, n)
	}
	src, err := b.alloc(n, "the copy benchmark's source")
	if err != nil {
		return 0, err
	}
	defer func() { _ = b.freeBuffer(src) }()
	dst, err := b.alloc(n, "the copy benchmark's destination")
	if err != nil {
		return 0, err
	}
	defer func() { _ = b.freeBuffer(dst) }()
	copyOnce := func() {
		if b.err == nil {
			if err := cu.MemcpyDtoDAsync(dst.ptr, src.ptr, n, b.strm); err != nil {
				b.fail(fmt.Errorf("gpu: CopyBandwidth: %w", err))
			}
		}
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := b.l.bind(); err != nil {
		return 0, fmt.Errorf("gpu: CopyBandwidth: %w", err)
	}
	if err := cu.MemsetD8Async(src.ptr, 0x3c, n, b.strm); err != nil {
		return 0, fmt.Errorf("gpu: CopyBandwidth: %w", err)
	}
	copyOnce() // warm up
	d, err := b.Time(func() {
		for i := 0; i < reps; i++ {
			copyOnce()
		}
	})
	if err != nil {
		return 0, err
	}
	return 2 * float64(n) * float64(reps) / d.Seconds(), nil
}
