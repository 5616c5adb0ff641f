package gpu

// Options configures New.
type Options struct {
	// Device is the CUDA device ordinal (0 for the first GPU).
	Device int
	// Debug makes every operation wait for its kernels and read the device
	// error word, so a failure (a fault, an index error) is reported with
	// the name of the kernel that caused it rather than at the next Sync.
	// It is slow; recorded graphs are not affected.
	Debug bool
}

// DeviceInfo describes one CUDA device.
type DeviceInfo struct {
	Index        int    // device ordinal
	Name         string // e.g. "NVIDIA H100 80GB HBM3"
	TotalMemory  int64  // bytes of device memory
	FreeMemory   int64  // bytes free when Devices was called (-1 if unknown)
	Major, Minor int    // compute capability
	SMs          int    // streaming multiprocessors
	Driver       int    // driver API version, e.g. 12080 for CUDA 12.8
}
