// Package mmap maps model files read-only into memory, so opening a
// multi-gigabyte file reads only the pages that are touched (the header
// when a file is inspected, the weights when they are used).
package mmap

import (
	"errors"
	"fmt"
	"math"
	"os"

	"golang.org/x/sys/unix"
)

// ErrTooLarge reports a file larger than this platform can map.
var ErrTooLarge = errors.New("file too large to map")

// File maps the whole file at path read-only. It returns the file's bytes
// (nil for an empty file) and the function that unmaps them; the bytes are
// invalid after it is called.
func File(path string) (data []byte, unmap func() error, err error) {
	fd, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer fd.Close()
	st, err := fd.Stat()
	if err != nil {
		return nil, nil, err
	}
	size := st.Size()
	if size == 0 {
		return nil, func() error { return nil }, nil
	}
	if size > math.MaxInt {
		return nil, nil, fmt.Errorf("%s: %d bytes: %w", path, size, ErrTooLarge)
	}
	data, err = unix.Mmap(int(fd.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: mmap: %w", path, err)
	}
	return data, func() error { return unix.Munmap(data) }, nil
}
