//go:build cuda

package gpu

import (
	"fmt"
	"runtime"
)

// Workspaces are device scratch buffers some operations need between two
// kernels (MatMul's 16-bit copies and split-K partial sums, Attention's
// split partials; kernels/ABI.md). Each slot grows to the largest request
// and is then reused, so steady-state operations allocate nothing.
//
// Growing a slot drops the recorded graphs (they hold its old address);
// Graph records them again. Allocation is refused inside a recording. A slot too small there
// makes the operation skip its launches and note the size it needs; Graph
// then discards the recording, grows the slot and records again.

// wsSlot names one workspace.
type wsSlot int

const (
	wsXH     wsSlot = iota // MatMul: x rounded to 16 bits
	wsWH                   // MatMul: weights converted to 16 bits
	wsSplitK               // MatMul: split-K partial sums
	wsAttnO                // Attention: split partial outputs
	wsAttnML               // Attention: split maxima and sums
	numWS
)

var wsNames = [numWS]string{"matmul activations", "matmul weights", "matmul split-K sums", "attention partial outputs", "attention partial sums"}

// workspaces are a backend's scratch slots.
type workspaces struct {
	buf   [numWS]*buffer
	need  [numWS]int64 // sizes requested during a recording
	short bool         // a request during the recording did not fit
}

// scratch returns the address of at least n bytes of slot s, or 0 when the
// operation must not launch (an error was recorded, or the slot is short
// during a recording).
func (b *Backend) scratch(s wsSlot, n int64) uint64 {
	if buf := b.ws.buf[s]; buf != nil && int64(buf.size) >= n {
		return uint64(buf.ptr)
	}
	if b.capturing {
		b.ws.need[s] = max(b.ws.need[s], n)
		b.ws.short = true
		return 0
	}
	if err := b.growScratch(s, n); err != nil {
		b.fail(err)
		return 0
	}
	return uint64(b.ws.buf[s].ptr)
}

// growScratch replaces slot s by one of at least n bytes, after the queued
// operations that may use the old one have finished.
func (b *Backend) growScratch(s wsSlot, n int64) error {
	old := b.ws.buf[s]
	if old != nil {
		n = max(n, int64(old.size)+int64(old.size)/2)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := b.l.bind(); err != nil {
			return fmt.Errorf("gpu: growing the %s workspace: %w", wsNames[s], err)
		}
		if err := b.strm.Synchronize(); err != nil {
			return fmt.Errorf("gpu: growing the %s workspace: a queued operation failed: %w", wsNames[s], err)
		}
		// Recorded graphs hold the old address: drop them, so each is
		// recorded again (with the new one) the next time Graph sees it.
		for key, g := range b.graphs {
			g.destroy()
			delete(b.graphs, key)
		}
		b.ws.buf[s] = nil
		if err := b.freeBuffer(old); err != nil {
			return fmt.Errorf("gpu: growing the %s workspace: %w", wsNames[s], err)
		}
	}
	const align = 1 << 20
	n = (n + align - 1) / align * align
	buf, err := b.alloc(n, "the "+wsNames[s]+" workspace")
	if err != nil {
		return err
	}
	b.ws.buf[s] = buf
	return nil
}

// growNeeded grows every slot a recording found short.
func (b *Backend) growNeeded() error {
	for s := range b.ws.need {
		if n := b.ws.need[s]; n > 0 {
			b.ws.need[s] = 0
			if buf := b.ws.buf[s]; buf == nil || int64(buf.size) < n {
				if err := b.growScratch(wsSlot(s), n); err != nil {
					return err
				}
			}
		}
	}
	b.ws.short = false
	return nil
}
