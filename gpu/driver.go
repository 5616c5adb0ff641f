//go:build cuda

package gpu

// This file is a small cgo shim over the CUDA driver API for what
// gorgonia.org/cu v0.9.6 lacks or does too slowly for a per-operation path:
//
//   - kernel launch without allocation: cu's Function.Launch mallocs two
//     argument arrays per call; here the arguments live in one C struct
//     per Backend, written in place, and the launch also makes the
//     context current, all in one cgo call;
//   - stream capture and graph instantiate/launch (cu has graph building
//     but no capture or instantiation);
//   - module loading from memory, global lookup and function attributes
//     (raising a kernel's dynamic shared memory limit);
//   - strided copies into host memory (cu's Memcpy2D passes a Go pointer
//     inside a Go struct, which cgo's pointer checks reject).

/*
#cgo LDFLAGS: -lcuda
#cgo linux CFLAGS: -I/usr/local/cuda/include
#cgo linux LDFLAGS: -L/usr/local/cuda/lib64 -L/usr/local/cuda/lib64/stubs
#include <cuda.h>
#include <stdlib.h>
#include <string.h>

enum { LOOM_MAX_ARGS = 24 };

// loom_state is one backend's launch state: its context and stream, and the
// argument block of the next launch (argp[i] points at args[i]).
typedef struct {
	CUcontext ctx;
	CUstream stream;
	int word; // the device error word, read back by loom_read_word
	unsigned long long args[LOOM_MAX_ARGS];
	void* argp[LOOM_MAX_ARGS];
} loom_state;

static loom_state* loom_state_new(void) {
	loom_state* s = (loom_state*)calloc(1, sizeof(loom_state));
	if (s != NULL) {
		for (int i = 0; i < LOOM_MAX_ARGS; i++) s->argp[i] = &s->args[i];
	}
	return s;
}

// loom_bind makes ctx current on the calling thread if it is not already.
static CUresult loom_bind(CUcontext ctx) {
	CUcontext cur = NULL;
	CUresult r = cuCtxGetCurrent(&cur);
	if (r != CUDA_SUCCESS || cur == ctx) return r;
	return cuCtxSetCurrent(ctx);
}

static CUresult loom_launch(loom_state* s, CUfunction f, unsigned gx, unsigned gy, unsigned gz,
                            unsigned bx, unsigned by, unsigned bz, unsigned smem) {
	CUresult r = loom_bind(s->ctx);
	if (r != CUDA_SUCCESS) return r;
	return cuLaunchKernel(f, gx, gy, gz, bx, by, bz, smem, s->stream, s->argp, NULL);
}

// loom_read_word copies the device error word at p into s->word.
static CUresult loom_read_word(loom_state* s, CUdeviceptr p) {
	return cuMemcpyDtoH(&s->word, p, sizeof s->word);
}

static CUresult loom_func_set_smem(CUfunction f, int bytes) {
	return cuFuncSetAttribute(f, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes);
}

static CUresult loom_device_attr(int* v, int attr, int dev) {
	return cuDeviceGetAttribute(v, (CUdevice_attribute)attr, (CUdevice)dev);
}

static CUresult loom_begin_capture(CUstream s) {
	return cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL);
}

static CUresult loom_end_capture(CUstream s, CUgraph* g) { return cuStreamEndCapture(s, g); }

static CUresult loom_instantiate(CUgraphExec* e, CUgraph g) {
	return cuGraphInstantiateWithFlags(e, g, 0);
}

// loom_copy_2d_dtoh copies height rows of width bytes from device memory
// (rows spitch bytes apart) into host memory (rows dpitch bytes apart).
static CUresult loom_copy_2d_dtoh(void* dst, size_t dpitch, CUdeviceptr src, size_t spitch,
                                  size_t width, size_t height) {
	CUDA_MEMCPY2D c;
	memset(&c, 0, sizeof c);
	c.srcMemoryType = CU_MEMORYTYPE_DEVICE;
	c.srcDevice = src;
	c.srcPitch = spitch;
	c.dstMemoryType = CU_MEMORYTYPE_HOST;
	c.dstHost = dst;
	c.dstPitch = dpitch;
	c.WidthInBytes = width;
	c.Height = height;
	return cuMemcpy2D(&c);
}

// loom_alloc_host allocates n bytes of page-locked host memory, which the
// copy engines reach without a staging copy.
static CUresult loom_alloc_host(void** p, size_t n) { return cuMemAllocHost(p, n); }

static const char* loom_error_name(CUresult r) {
	const char* s = NULL;
	if (cuGetErrorName(r, &s) != CUDA_SUCCESS || s == NULL) return "CUDA_ERROR_UNKNOWN";
	return s;
}

static const char* loom_error_string(CUresult r) {
	const char* s = NULL;
	if (cuGetErrorString(r, &s) != CUDA_SUCCESS || s == NULL) return "unknown error";
	return s;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"

	"gorgonia.org/cu"
)

// The C argument block and kernelSpecs agree on the parameter limit.
var (
	_ [C.LOOM_MAX_ARGS - maxArgs]struct{}
	_ [maxArgs - C.LOOM_MAX_ARGS]struct{}
)

// cuError is a CUDA driver API result other than success.
type cuError C.CUresult

func (e cuError) Error() string {
	r := C.CUresult(e)
	return fmt.Sprintf("%s (%s)", C.GoString(C.loom_error_name(r)), C.GoString(C.loom_error_string(r)))
}

// check converts a driver result into an error (nil on success).
func check(r C.CUresult) error {
	if r == C.CUDA_SUCCESS {
		return nil
	}
	return cuError(r)
}

// isOOM reports whether err is the driver's out-of-memory result, from this
// shim or from gorgonia.org/cu.
func isOOM(err error) bool {
	var ce cuError
	if errors.As(err, &ce) {
		return C.CUresult(ce) == C.CUDA_ERROR_OUT_OF_MEMORY
	}
	return errors.Is(err, cu.OutOfMemory)
}

// cuStream returns the driver handle of a gorgonia.org/cu stream.
func cuStream(s cu.Stream) C.CUstream { return C.CUstream(unsafe.Pointer(s.C())) }

// deviceAttr reads a device attribute by its CUdevice_attribute value.
func deviceAttr(dev, attr int) (int, error) {
	var v C.int
	err := check(C.loom_device_attr(&v, C.int(attr), C.int(dev)))
	return int(v), err
}

// Attributes this package reads that gorgonia.org/cu does not name.
const attrMaxSharedOptin = C.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN

// module is the loaded fatbin with every kernel looked up.
type module struct {
	mod     C.CUmodule
	fn      [numKernels]C.CUfunction
	errWord cu.DevicePtr // the kernels' loom_error word
}

// loadModule loads image (a fatbin) into the current context and looks up
// every kernel of kernelSpecs and the device error word.
func loadModule(image []byte) (*module, error) {
	if len(image) == 0 {
		return nil, errors.New("the embedded fatbin is empty: rebuild with make cuda")
	}
	m := &module{}
	if err := check(C.cuModuleLoadData(&m.mod, unsafe.Pointer(&image[0]))); err != nil {
		return nil, fmt.Errorf("loading the kernel fatbin (%d bytes): %w", len(image), err)
	}
	for k := range m.fn {
		name := C.CString(kernelSpecs[k].name)
		err := check(C.cuModuleGetFunction(&m.fn[k], m.mod, name))
		C.free(unsafe.Pointer(name))
		if err != nil {
			m.unload()
			return nil, fmt.Errorf("kernel %s is missing from the fatbin (rebuild with make cuda): %w", kernelSpecs[k].name, err)
		}
		if s := kernelSpecs[k].smem; s > 48<<10 {
			if err := check(C.loom_func_set_smem(m.fn[k], C.int(s))); err != nil {
				m.unload()
				return nil, fmt.Errorf("kernel %s: allowing %d bytes of shared memory: %w", kernelSpecs[k].name, s, err)
			}
		}
	}
	var ptr C.CUdeviceptr
	var size C.size_t
	name := C.CString("loom_error")
	err := check(C.cuModuleGetGlobal(&ptr, &size, m.mod, name))
	C.free(unsafe.Pointer(name))
	if err != nil || size != 4 {
		m.unload()
		return nil, fmt.Errorf("device error word loom_error (size %d) missing from the fatbin: %v", size, err)
	}
	m.errWord = cu.DevicePtr(ptr)
	return m, nil
}

func (m *module) unload() {
	if m.mod != nil {
		C.cuModuleUnload(m.mod)
		m.mod = nil
	}
}

// launcher is a backend's C-side launch state.
type launcher struct{ st *C.loom_state }

func newLauncher(stream cu.Stream) (launcher, error) {
	st := C.loom_state_new()
	if st == nil {
		return launcher{}, errors.New("allocating the launch state")
	}
	if err := check(C.cuCtxGetCurrent(&st.ctx)); err != nil {
		C.free(unsafe.Pointer(st))
		return launcher{}, err
	}
	st.stream = cuStream(stream)
	return launcher{st}, nil
}

func (l launcher) free() {
	if l.st != nil {
		C.free(unsafe.Pointer(l.st))
	}
}

// bind makes the backend's context current on the calling thread. The
// caller must have locked its goroutine to the thread.
func (l launcher) bind() error { return check(C.loom_bind(l.st.ctx)) }

// launch starts f on the backend's stream with args (each one 8-byte
// kernel parameter). It allocates nothing.
func (l launcher) launch(f C.CUfunction, grid, block dim3, smem int, args []uint64) error {
	for i, a := range args {
		l.st.args[i] = C.ulonglong(a)
	}
	return check(C.loom_launch(l.st, f,
		C.uint(grid.x), C.uint(grid.y), C.uint(grid.z),
		C.uint(block.x), C.uint(block.y), C.uint(block.z), C.uint(smem)))
}

// readWord returns the device error word at p (synchronous; the caller
// has made the context current). It allocates nothing.
func (l launcher) readWord(p cu.DevicePtr) (int32, error) {
	err := check(C.loom_read_word(l.st, C.CUdeviceptr(p)))
	return int32(l.st.word), err
}

// graphExec is an instantiated CUDA graph.
type graphExec struct{ exec C.CUgraphExec }

func (l launcher) beginCapture() error { return check(C.loom_begin_capture(l.st.stream)) }

// endCapture ends the stream capture and instantiates the graph. When keep
// is false the captured graph is only discarded (the capture failed).
func (l launcher) endCapture(keep bool) (graphExec, error) {
	var g C.CUgraph
	err := check(C.loom_end_capture(l.st.stream, &g))
	if g != nil {
		defer C.cuGraphDestroy(g)
	}
	if err != nil || !keep {
		return graphExec{}, err
	}
	var e graphExec
	if err := check(C.loom_instantiate(&e.exec, g)); err != nil {
		return graphExec{}, fmt.Errorf("instantiating the graph: %w", err)
	}
	return e, nil
}

func (l launcher) launchGraph(g graphExec) error {
	return check(C.cuGraphLaunch(g.exec, l.st.stream))
}

func (g graphExec) destroy() { C.cuGraphExecDestroy(g.exec) }

// allocHost returns n bytes of page-locked host memory (the calling thread
// must have the context bound).
func allocHost(n int) (unsafe.Pointer, error) {
	var p unsafe.Pointer
	if err := check(C.loom_alloc_host(&p, C.size_t(n))); err != nil {
		return nil, err
	}
	return p, nil
}

// copy2DToHost copies height rows of width bytes, spitch bytes apart on the
// device, into dst packed (synchronous).
func copy2DToHost(dst []byte, src cu.DevicePtr, spitch, width, height int) error {
	return check(C.loom_copy_2d_dtoh(unsafe.Pointer(&dst[0]), C.size_t(width), C.CUdeviceptr(src),
		C.size_t(spitch), C.size_t(width), C.size_t(height)))
}
