//go:build !linux

package cpu

// physicalMemory returns -1: the machine's RAM is not known here.
func physicalMemory() int64 { return -1 }
