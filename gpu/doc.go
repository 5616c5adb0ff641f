// Package gpu is loom's CUDA backend: backend.Backend on an NVIDIA GPU,
// plus the optional backend.ArgMaxer, backend.Grapher and
// backend.MemoryReporter.
//
// # Building
//
// The backend builds only with the build tag cuda (make cuda). Without it
// New returns an error wrapping backend.ErrNoDevice that says loom was
// built without CUDA support, so code that selects a backend compiles in
// both builds. The kernels (../kernels) are compiled by CMake and nvcc into
// one fatbin, loom.fatbin, which make cuda copies into this folder and the
// package embeds; a cuda build without it fails at the go:embed line.
//
// gorgonia.org/cu, which this package uses, calls cuInit from its init and
// exits the process when that fails. A cuda-built binary, including this
// package's test binary, therefore runs only where a GPU and its driver
// are present: elsewhere compile and vet it (go vet -tags cuda, go test
// -tags cuda -c) and run it on the GPU machine (make device-bundle). The
// command loom keeps a CPU binary that probes for the GPU before it starts
// the CUDA one (cmd/loom/cuda_dispatch.go).
//
// # Threads and contexts
//
// A Backend uses the device's primary context and one stream. A CUDA
// context is current per OS thread, so every method pins its goroutine to
// its thread for the duration of the call and makes the context current
// there when it is not already. A kernel launch does both inside one cgo
// call that allocates nothing, so a Backend may be used from any goroutine,
// but, like the other backends, by one goroutine at a time.
//
// # Operations
//
// Operations are queued on the stream and return at once; only Download,
// Sync, Upload and Time wait. Each operation checks its arguments on the
// host and then launches one kernel, or a few for MatMul and Attention
// (kernels/ABI.md says which); every parameter is passed as 8 bytes. A
// failed check or launch is kept as the backend's sticky error and every
// later operation is skipped. Faults a kernel detects in device-resident
// data (a token id outside the table, a block id outside the cache) are
// collected in a device error word that Sync and Download read, and are
// reported as backend.ErrIndex. Options.Debug waits after every kernel, so
// a failure names the kernel that caused it.
//
// Block-quantized weights (Q8_0, Q4_0) are stored split on the device, all
// quants first and then all scales (repack.go), so the kernels make aligned
// 16-byte loads; Upload and Download convert from and to GGUF's layout, and
// the kernels take only whole quantized tensors, not row slices.
//
// # Memory
//
// Alloc makes one device allocation per tensor: weights are uploaded once
// and activations are allocated once by the model for the largest batch,
// so a decode step allocates nothing. Allocation inside a recorded graph is
// refused. When a request does not fit, Alloc returns an error wrapping
// backend.ErrOutOfMemory that names the request and the free memory.
//
// # Graphs
//
// Graph records the operations of a step into a CUDA graph (stream capture)
// the first time it sees a key and replays the instantiated graph on later
// calls: one launch for the whole step, with the host off the critical
// path. A graph holds the device addresses of the tensors it used, so it
// stays valid only while those tensors do; Close releases every graph.
package gpu
