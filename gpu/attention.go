//go:build cuda

package gpu

import (
	"github.com/loomllm/loom/runtime/backend"
)

// Attention launches engineer B's attention kernels as kernels/ABI.md §4
// says: the KV store, then either the tensor-core prefill kernel (16-bit
// cache, head size 64 or 128, at least prefillMinRows rows) or
// flash-decoding split over the KV positions, followed by the combine
// kernel when it is split. The number of splits comes from shapes and the
// block table's capacity only (so recorded graphs stay valid as sequences
// grow); the kernels themselves use fewer of them for a short history
// (ABI.md §4.2: at least 64 positions per split).

const prefillMinRows = 64

// Attention stores this batch's keys and values in the cache, then runs
// causal grouped-query attention (see backend.Backend). out may be q (in
// place).
func (b *Backend) Attention(out, q, k, v backend.Tensor, cache backend.KVCache, a backend.Attn) {
	if !b.ok() {
		return
	}
	c := b.cacheOf("Attention", cache)
	if c == nil {
		return
	}
	spec := c.spec
	if err := checkAttention(out, q, k, v, spec, a); err != nil {
		b.fail(err)
		return
	}
	const op = "Attention"
	po, pq, pk, pv := b.devPtr(op, out), b.devPtr(op, q), b.devPtr(op, k), b.devPtr(op, v)
	ppos, pseq, pblk := b.devPtr(op, a.Pos), b.devPtr(op, a.Seq), b.devPtr(op, a.Blocks)
	if b.err != nil {
		return
	}
	n, d, hkv, bs := q.Rows(), spec.HeadDim, spec.KVHeads, spec.BlockSize
	hq := q.Cols() / d
	kc, vc := c.plane(2*a.Layer), c.plane(2*a.Layer+1)
	ldpos, ldseq, ldblk := pi(a.Pos.Stride()), pi(a.Seq.Stride()), pi(a.Blocks.Stride())
	maxBlocks, pool, nSeqs := a.Blocks.Cols(), spec.Blocks, a.Blocks.Rows()

	store, decode := kKVStoreF32, kDecodeF32G1
	switch spec.DType {
	case backend.F16:
		store, decode = kKVStoreF16, kDecodeF16G1
	case backend.BF16:
		store, decode = kKVStoreBF16, kDecodeBF16G1
	}
	b.launch(store, dim3{n, 1, 1}, dim3{kvStoreBlock, 1, 1},
		kc, vc, pk, pi(k.Stride()), pv, pi(v.Stride()), ppos, ldpos, pseq, ldseq, pblk, ldblk,
		pi(n), pi(hkv), pi(d), pi(bs), pi(maxBlocks), pi(pool), pi(nSeqs))

	if spec.DType != backend.F32 && (d == 64 || d == 128) && n >= prefillMinRows {
		kern := kPrefillF16D64
		if spec.DType == backend.BF16 {
			kern = kPrefillBF16D64
		}
		if d == 128 {
			kern++ // the d128 variant follows the d64 one
		}
		b.launch(kern, dim3{ceilDiv(n, 64), hq, 1}, dim3{prefillBlock, 1, 1},
			po, pi(out.Stride()), pq, pi(q.Stride()), kc, vc, ppos, ldpos, pseq, ldseq, pblk, ldblk,
			pi(n), pi(hq), pi(hkv), pi(bs), pi(maxBlocks), pi(pool), pi(nSeqs), pf(a.Scale))
		return
	}

	// Flash-decoding: GT query heads per block, the smallest of 1, 2, 4, 8
	// that covers the group (8 beyond), hsub blocks per KV head.
	g := hq / hkv
	gt, variant := 8, 3
	for i, t := range []int{1, 2, 4} {
		if g <= t {
			gt, variant = t, i
			break
		}
	}
	decode += kernelID(variant)
	hsub := ceilDiv(g, gt)
	nsplit := decodeSplits(b.info.SMs, n, hkv*hsub, maxBlocks*bs)
	var wso, wsml uint64
	if nsplit > 1 {
		wso = b.scratch(wsAttnO, int64(n)*int64(hq)*int64(nsplit)*int64(d)*4)
		wsml = b.scratch(wsAttnML, int64(n)*int64(hq)*int64(nsplit)*2*4)
		if wso == 0 || wsml == 0 {
			return
		}
	}
	b.launch(decode, dim3{nsplit, hkv * hsub, min(n, maxGridYZ)}, dim3{decodeBlock, 1, 1},
		po, pi(out.Stride()), pq, pi(q.Stride()), kc, vc, ppos, ldpos, pseq, ldseq, pblk, ldblk,
		pi(n), pi(hq), pi(hkv), pi(d), pi(bs), pi(maxBlocks), pi(pool), pi(nSeqs), pf(a.Scale), wso, wsml)
	if nsplit > 1 {
		b.launch(kAttnCombine, dim3{min(n, maxGridYZ), hq, 1}, dim3{decodeBlock, 1, 1},
			po, pi(out.Stride()), wso, wsml, ppos, ldpos, pi(n), pi(hq), pi(d), pi(nsplit))
	}
}
