//go:build cuda

package gpu

import (
	_ "embed"
	"errors"
	"fmt"
	"math"
	"runtime"

	"github.com/loomllm/loom/runtime/backend"
	"gorgonia.org/cu"
)

// fatbin holds every kernel, compiled by CMakeLists.txt from ../kernels.
//
// loom.fatbin is a build output, not in git: `make cuda` compiles it and
// copies it here. If the build stops at the next line with "pattern
// loom.fatbin: no matching files found", run `make cuda` first.
//
//go:embed loom.fatbin
var fatbin []byte

// Backend is the CUDA backend for one device. Create it with New. It
// implements backend.Backend, backend.ArgMaxer, backend.Grapher and
// backend.MemoryReporter. It may be called from any goroutine, one at a
// time (see the package documentation).
type Backend struct {
	dev   cu.Device
	info  DeviceInfo
	ctx   cu.CUContext // the device's primary context, retained
	strm  cu.Stream
	l     launcher
	mod   *module
	start cu.Event // for Time
	end   cu.Event

	err       error // the first failure (sticky)
	closed    bool
	capturing bool // inside Graph's step
	ws        workspaces
	graphs    map[string]graphExec
	bufs      map[*buffer]struct{} // live allocations, freed by Close
	host      map[*byte]int        // page-locked host memory (AllocHost), freed by Close
	used      int64                // bytes allocated
	debug     bool                 // Options.Debug
	smemOptin int                  // most dynamic shared memory a block may opt into
}

var (
	_ backend.Backend        = (*Backend)(nil)
	_ backend.ArgMaxer       = (*Backend)(nil)
	_ backend.Grapher        = (*Backend)(nil)
	_ backend.MemoryReporter = (*Backend)(nil)
)

// Devices lists the CUDA devices the driver sees.
func Devices() ([]DeviceInfo, error) {
	n, err := cu.NumDevices()
	if err != nil {
		return nil, fmt.Errorf("gpu: counting devices: %w", err)
	}
	out := make([]DeviceInfo, 0, n)
	for i := 0; i < n; i++ {
		info, err := deviceInfo(i)
		if err != nil {
			return nil, err
		}
		out = append(out, info)
	}
	return out, nil
}

// deviceInfo describes device i without creating a context (FreeMemory is
// -1 then).
func deviceInfo(i int) (DeviceInfo, error) {
	info := DeviceInfo{Index: i, FreeMemory: -1, Driver: cu.Version()}
	dev, err := cu.GetDevice(i)
	if err == nil {
		info.Name, err = dev.Name()
	}
	if err == nil {
		info.TotalMemory, err = dev.TotalMem()
	}
	if err == nil {
		info.Major, info.Minor, err = dev.ComputeCapability()
	}
	if err == nil {
		info.SMs, err = dev.Attribute(cu.MultiprocessorCount)
	}
	if err != nil {
		return DeviceInfo{}, fmt.Errorf("gpu: cuda:%d: reading device properties: %w", i, err)
	}
	return info, nil
}

// New opens device opt.Device: it retains the device's primary context,
// creates a stream, and loads the kernels. It returns an error wrapping
// backend.ErrNoDevice when the device does not exist.
func New(opt Options) (*Backend, error) {
	n, err := cu.NumDevices()
	if err != nil {
		return nil, fmt.Errorf("gpu: %w: counting CUDA devices: %v", backend.ErrNoDevice, err)
	}
	if opt.Device < 0 || opt.Device >= n {
		return nil, fmt.Errorf("gpu: %w: cuda:%d requested, %d CUDA device(s) present", backend.ErrNoDevice, opt.Device, n)
	}
	info, err := deviceInfo(opt.Device)
	if err != nil {
		return nil, err
	}
	if info.Major < 8 {
		return nil, fmt.Errorf("gpu: %w: cuda:%d (%s) has compute capability %d.%d; loom's kernels need 8.0 or newer", backend.ErrNoDevice, opt.Device, info.Name, info.Major, info.Minor)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	b := &Backend{info: info, debug: opt.Debug, graphs: map[string]graphExec{}, bufs: map[*buffer]struct{}{}}
	if b.dev, err = cu.GetDevice(opt.Device); err != nil {
		return nil, b.openFailed("getting the device", err)
	}
	if b.ctx, err = b.dev.RetainPrimaryCtx(); err != nil {
		return nil, b.openFailed("retaining the primary context", err)
	}
	if err = cu.SetCurrentContext(b.ctx); err != nil {
		return nil, b.openFailed("making the context current", err)
	}
	if b.strm, err = cu.MakeStream(cu.DefaultStream); err != nil {
		return nil, b.openFailed("creating a stream", err)
	}
	if b.l, err = newLauncher(b.strm); err != nil {
		return nil, b.openFailed("preparing launches", err)
	}
	if b.start, err = cu.MakeEvent(cu.DefaultEvent); err == nil {
		b.end, err = cu.MakeEvent(cu.DefaultEvent)
	}
	if err != nil {
		return nil, b.openFailed("creating events", err)
	}
	if b.smemOptin, err = deviceAttr(opt.Device, attrMaxSharedOptin); err != nil {
		return nil, b.openFailed("reading the shared memory limit", err)
	}
	for k, s := range kernelSpecs {
		if s.smem > b.smemOptin {
			return nil, b.openFailed("checking shared memory", fmt.Errorf("kernel %s needs %d bytes of shared memory, the device allows %d", kernelSpecs[k].name, s.smem, b.smemOptin))
		}
	}
	if b.mod, err = loadModule(fatbin); err != nil {
		return nil, b.openFailed("loading kernels", err)
	}
	if err = cu.MemsetD32(b.mod.errWord, 0, 1); err != nil {
		return nil, b.openFailed("clearing the error word", err)
	}
	return b, nil
}

// openFailed releases what New created before failing and wraps err.
func (b *Backend) openFailed(what string, err error) error {
	b.release()
	return fmt.Errorf("gpu: cuda:%d (%s): %s: %w", b.info.Index, b.info.Name, what, err)
}

// release frees every driver object the backend holds. The goroutine must
// be locked to its thread.
func (b *Backend) release() {
	if b.l.st != nil {
		_ = b.l.bind()
		_ = b.strm.Synchronize()
	}
	for _, g := range b.graphs {
		g.destroy()
	}
	b.graphs = nil
	b.ws = workspaces{}
	for buf := range b.bufs {
		_ = cu.MemFree(buf.ptr)
		buf.ptr = 0
	}
	b.bufs = nil
	b.used = 0
	b.freeHost()
	if b.mod != nil {
		b.mod.unload()
		b.mod = nil
	}
	var zeroEvent cu.Event
	if b.start != zeroEvent {
		_ = cu.DestroyEvent(&b.start)
	}
	if b.end != zeroEvent {
		_ = cu.DestroyEvent(&b.end)
	}
	var zeroStream cu.Stream
	if b.strm != zeroStream {
		_ = b.strm.Destroy()
	}
	b.l.free()
	b.l = launcher{}
	var zeroCtx cu.CUContext
	if b.ctx != zeroCtx {
		_ = b.dev.ReleasePrimaryCtx()
		b.ctx = zeroCtx
	}
}

// Name returns "cuda:N (device name)".
func (b *Backend) Name() string { return fmt.Sprintf("cuda:%d (%s)", b.info.Index, b.info.Name) }

// Device describes the backend's device.
func (b *Backend) Device() DeviceInfo { return b.info }

// SupportsWeights reports whether MatMul and Embed accept weights of type dt.
func (b *Backend) SupportsWeights(dt backend.DType) bool {
	switch dt {
	case backend.F32, backend.F16, backend.BF16, backend.Q8_0, backend.Q4_0:
		return true
	}
	return false
}

// Err returns the first error an operation met, without waiting.
func (b *Backend) Err() error { return b.err }

// fail records err as the sticky error unless one is already recorded.
func (b *Backend) fail(err error) {
	if b.err == nil {
		b.err = err
	}
}

// ok reports whether operations may still run. It records ErrClosed when
// the backend is closed.
func (b *Backend) ok() bool {
	if b.closed && b.err == nil {
		b.err = fmt.Errorf("gpu: %w", backend.ErrClosed)
	}
	return b.err == nil
}

// launch starts kernel k. Launch failures (a bad configuration, a context
// already broken by an earlier fault) become the sticky error.
//
// The kernel gets the dynamic shared memory of its kernelSpecs entry.
func (b *Backend) launch(k kernelID, grid, block dim3, args ...uint64) {
	s := &kernelSpecs[k]
	switch {
	case b.err != nil: // an earlier kernel of the same operation failed
		return
	case len(args) != s.args:
		b.fail(fmt.Errorf("gpu: %s: passing %d parameters to a %d-parameter kernel", s.name, len(args), s.args))
		return
	case grid.x <= 0 || grid.x > maxGridX || grid.y <= 0 || grid.y > maxGridYZ || grid.z <= 0 || grid.z > maxGridYZ:
		b.fail(fmt.Errorf("gpu: %s: grid %v out of range", s.name, grid))
		return
	}
	if err := b.l.launch(b.mod.fn[k], grid, block, s.smem, args); err != nil {
		b.fail(fmt.Errorf("gpu: launching %s (grid %v, block %v, %d bytes shared): %w", s.name, grid, block, s.smem, err))
		return
	}
	if b.debug && !b.capturing {
		runtime.LockOSThread()
		b.wait(s.name)
		runtime.UnlockOSThread()
	}
}

// Sync waits for every queued operation and returns the first error any
// operation met, including index errors the kernels found.
func (b *Backend) Sync() error {
	if b.capturing {
		b.fail(errors.New("gpu: Sync called inside Graph's step"))
	}
	if !b.ok() {
		return b.err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.wait("Sync")
	return b.err
}

// wait binds the context, waits for the stream and reads the device error
// word, recording any failure. The goroutine must be locked to its thread.
func (b *Backend) wait(op string) {
	if err := b.l.bind(); err != nil {
		b.fail(fmt.Errorf("gpu: %s: making the context current: %w", op, err))
		return
	}
	if err := b.strm.Synchronize(); err != nil {
		b.fail(fmt.Errorf("gpu: %s: a queued operation failed: %w", op, err))
		return
	}
	word, err := b.l.readWord(b.mod.errWord)
	if err != nil {
		b.fail(fmt.Errorf("gpu: %s: reading the device error word: %w", op, err))
		return
	}
	if word != 0 {
		b.fail(fmt.Errorf("gpu: %s: %w", op, deviceError(word)))
	}
}

// Close releases every allocation, graph and driver object of the backend.
// The backend is unusable afterwards.
func (b *Backend) Close() error {
	if b.closed {
		return nil
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var err error
	if b.l.st != nil {
		if err = b.l.bind(); err == nil {
			err = b.strm.Synchronize()
		}
	}
	b.release()
	b.closed = true
	if err != nil {
		return fmt.Errorf("gpu: Close: %w", err)
	}
	return nil
}

// Memory returns the bytes this backend has allocated and the bytes of the
// device still free (-1 when the driver cannot say).
func (b *Backend) Memory() (used, free int64) {
	if b.closed {
		return 0, -1
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if b.l.bind() != nil {
		return b.used, -1
	}
	f, _, err := cu.MemInfo()
	if err != nil {
		return b.used, -1
	}
	return b.used, f
}

// Kernel parameter encodings: every parameter is 8 bytes.

// pf encodes a float scalar parameter (a double in the kernel).
func pf(v float32) uint64 { return math.Float64bits(float64(v)) }

// pi encodes an integer parameter (a long long in the kernel).
func pi(v int) uint64 { return uint64(int64(v)) }

// pb encodes a boolean parameter as 0 or 1.
func pb(v bool) uint64 {
	if v {
		return 1
	}
	return 0
}
