//go:build !linux

package tokenizer

import "time"

// cpuTime returns the wall-clock time f takes.
func cpuTime(f func()) time.Duration {
	start := time.Now()
	f()
	return time.Since(start)
}
