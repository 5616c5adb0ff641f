package cpu

import "syscall"

// physicalMemory returns the machine's RAM in bytes, or -1 if unknown.
func physicalMemory() int64 {
	var si syscall.Sysinfo_t
	if err := syscall.Sysinfo(&si); err != nil {
		return -1
	}
	return int64(si.Totalram) * int64(si.Unit)
}
