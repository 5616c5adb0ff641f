//go:build cuda

package gpu

import (
	"fmt"
	"math"
	"runtime"

	"github.com/loomllm/loom/runtime/backend"
	"gorgonia.org/cu"
)

// maxHeadDim is the largest head size the attention kernels take.
const maxHeadDim = 256

// kvCache is a paged key/value cache in one device allocation, laid out as
// kernels/ABI.md §3 says: 2·Layers planes (the keys, then the values, of
// each layer), each an array of Blocks blocks of [KVHeads][BlockSize]
// [HeadDim] elements.
type kvCache struct {
	b          *Backend
	buf        *buffer
	spec       backend.KVSpec
	blockBytes int64 // one block of one plane
	planeBytes int64 // Blocks blocks
}

// Spec returns the cache's dimensions.
func (c *kvCache) Spec() backend.KVSpec { return c.spec }

// Free releases the cache's memory. Freeing twice does nothing.
func (c *kvCache) Free() {
	if c.buf == nil || c.b.closed {
		return
	}
	if c.b.capturing {
		c.b.fail(fmt.Errorf("gpu: KVCache.Free called inside Graph's step"))
		return
	}
	if err := c.b.freeBuffer(c.buf); err != nil {
		c.b.fail(fmt.Errorf("gpu: freeing the KV cache: %w", err))
	}
	c.buf = nil
}

// plane returns the device address of plane p (2·layer for keys, 2·layer+1
// for values).
func (c *kvCache) plane(p int) uint64 { return uint64(c.buf.ptr) + uint64(int64(p)*c.planeBytes) }

// NewKVCache allocates a paged key/value cache in device memory, zeroed.
// It fails with an error wrapping backend.ErrOutOfMemory when the cache
// does not fit.
func (b *Backend) NewKVCache(spec backend.KVSpec) (backend.KVCache, error) {
	if !b.ok() {
		return nil, b.err
	}
	switch spec.DType {
	case backend.F32, backend.F16, backend.BF16:
	default:
		return nil, fmt.Errorf("gpu: NewKVCache: %w: %v keys and values (want f32, f16 or bf16)", backend.ErrDType, spec.DType)
	}
	if spec.Layers <= 0 || spec.KVHeads <= 0 || spec.HeadDim <= 0 || spec.BlockSize <= 0 || spec.Blocks <= 0 {
		return nil, fmt.Errorf("gpu: NewKVCache: %w: every dimension must be positive: %+v", backend.ErrShape, spec)
	}
	if spec.HeadDim > maxHeadDim {
		return nil, fmt.Errorf("gpu: NewKVCache: %w: head size %d is over the kernels' limit of %d", backend.ErrShape, spec.HeadDim, maxHeadDim)
	}
	blockBytes := int64(spec.KVHeads) * int64(spec.BlockSize) * int64(spec.HeadDim) * int64(spec.DType.BlockBytes())
	planes := 2 * int64(spec.Layers)
	if blockBytes > math.MaxInt64/planes/int64(spec.Blocks) {
		return nil, fmt.Errorf("gpu: NewKVCache: %w: %+v overflows", backend.ErrOutOfMemory, spec)
	}
	total := blockBytes * planes * int64(spec.Blocks)
	what := fmt.Sprintf("a KV cache of %d blocks × %d positions (%d layers, %d KV heads of %d, %v)",
		spec.Blocks, spec.BlockSize, spec.Layers, spec.KVHeads, spec.HeadDim, spec.DType)
	buf, err := b.alloc(total, what)
	if err != nil {
		return nil, err
	}
	c := &kvCache{b: b, buf: buf, spec: spec, blockBytes: blockBytes, planeBytes: blockBytes * int64(spec.Blocks)}
	// Zero it, so masked-out slots a kernel may load hold finite values.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := b.l.bind(); err == nil {
		err = cu.MemsetD8(buf.ptr, 0, total)
	}
	if err != nil {
		_ = b.freeBuffer(buf)
		return nil, fmt.Errorf("gpu: NewKVCache: clearing %s: %w", what, err)
	}
	return c, nil
}

// cacheOf returns cache as this backend's live cache, or records an error.
func (b *Backend) cacheOf(op string, cache backend.KVCache) *kvCache {
	c, ok := cache.(*kvCache)
	switch {
	case !ok || c.b != b:
		b.fail(fmt.Errorf("gpu: %s: %w: the KV cache does not belong to %s", op, backend.ErrShape, b.Name()))
		return nil
	case c.buf == nil:
		b.fail(fmt.Errorf("gpu: %s: %w: the KV cache was freed", op, backend.ErrShape))
		return nil
	}
	return c
}

// CopyKVBlock copies block src of every layer of the cache onto block dst.
func (b *Backend) CopyKVBlock(cache backend.KVCache, dst, src int) {
	if !b.ok() {
		return
	}
	c := b.cacheOf("CopyKVBlock", cache)
	if c == nil {
		return
	}
	if n := c.spec.Blocks; dst < 0 || dst >= n || src < 0 || src >= n {
		b.fail(fmt.Errorf("gpu: CopyKVBlock: %w: blocks %d and %d of a %d-block cache", backend.ErrIndex, dst, src, n))
		return
	}
	if dst == src {
		return
	}
	units := c.blockBytes
	if (c.planeBytes|c.blockBytes)%16 == 0 {
		units /= 16
	}
	planes := 2 * c.spec.Layers
	grid := dim3{min(ceilDiv(int(units), ewBlock), 1024), min(planes, maxGridYZ), 1}
	b.launch(kCopyKVBlock, grid, ewThreads,
		uint64(c.buf.ptr), pi(planes), uint64(c.planeBytes), uint64(c.blockBytes), pi(dst), pi(src))
}
