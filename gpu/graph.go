//go:build cuda

package gpu

import (
	"errors"
	"fmt"
	"runtime"
)

// Graph runs the operations step issues (see backend.Grapher). The first
// call with a key records them into a CUDA graph by stream capture, without
// running them during the recording, then launches the graph; later calls
// with the key launch the recorded graph without calling step.
//
// step must issue only operations (no Upload, Download, Sync, Alloc or
// Free: those fail inside a recording) on the same tensors each time. A
// failure while recording discards the recording and becomes the backend's
// sticky error.
func (b *Backend) Graph(key string, step func()) error {
	if b.capturing {
		b.fail(errors.New("gpu: Graph called inside Graph's step"))
	}
	if !b.ok() {
		return b.err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := b.l.bind(); err != nil {
		b.fail(fmt.Errorf("gpu: Graph %q: making the context current: %w", key, err))
		return b.err
	}
	g, ok := b.graphs[key]
	for try := 0; !ok; try++ {
		var err error
		if g, err = b.record(key, step); err != nil {
			b.fail(err)
			return b.err
		}
		if !b.ws.short {
			b.graphs[key], ok = g, true
			break
		}
		// A workspace was too small: grow it outside the recording and
		// record again.
		if try > 0 {
			b.fail(fmt.Errorf("gpu: recording graph %q: workspaces still short after growing them", key))
			return b.err
		}
		if err := b.growNeeded(); err != nil {
			b.fail(fmt.Errorf("gpu: recording graph %q: %w", key, err))
			return b.err
		}
	}
	if err := b.l.launchGraph(g); err != nil {
		b.fail(fmt.Errorf("gpu: launching graph %q: %w", key, err))
	}
	return b.err
}

// record captures step's operations and instantiates them; it returns the
// zero graphExec when a workspace was short (b.ws.short). The capture is
// ended even when step panics.
func (b *Backend) record(key string, step func()) (g graphExec, err error) {
	if err := b.l.beginCapture(); err != nil {
		return graphExec{}, fmt.Errorf("gpu: Graph %q: beginning stream capture: %w", key, err)
	}
	b.capturing = true
	defer func() {
		b.capturing = false
		keep := b.err == nil && err == nil && !b.ws.short
		eg, endErr := b.l.endCapture(keep)
		switch {
		case b.err != nil:
			err = fmt.Errorf("gpu: recording graph %q: %w", key, b.err)
		case endErr != nil:
			err = fmt.Errorf("gpu: recording graph %q: %w", key, endErr)
		case keep:
			g = eg
		}
	}()
	step()
	return graphExec{}, nil
}
