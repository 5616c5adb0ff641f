package cpu

import (
	"fmt"
	"math"

	"github.com/loomllm/loom/cpu/vec"
	"github.com/loomllm/loom/runtime/backend"
)

// kvCache is the CPU key/value cache: one allocation holding, for every
// layer and block, the keys and then the values of each KV head as
// BlockSize consecutive rows of HeadDim elements:
//
//	[layer][block][K, V][kvHead][slot][headDim]
//
// so that attention streams one head's keys (or values) of a block as one
// contiguous run, and copying a block is one copy per layer.
type kvCache struct {
	b         *Backend
	spec      backend.KVSpec
	data      []byte
	eb        int // bytes per element
	rowBytes  int // one position of one head
	headBytes int // BlockSize positions of one head
}

// Spec returns the cache's dimensions.
func (c *kvCache) Spec() backend.KVSpec { return c.spec }

// Free releases the cache's memory.
func (c *kvCache) Free() {
	if c.data != nil {
		c.b.used.Add(-int64(len(c.data)))
		c.data = nil
	}
}

// off returns the byte offset of slot p of KV head g of block blk in layer l,
// for keys (kv = 0) or values (kv = 1).
func (c *kvCache) off(kv, l, blk, g, p int) int {
	s := c.spec
	return (((l*s.Blocks+blk)*2+kv)*s.KVHeads+g)*c.headBytes + p*c.rowBytes
}

// NewKVCache allocates a zeroed paged key/value cache in host memory.
func (b *Backend) NewKVCache(spec backend.KVSpec) (backend.KVCache, error) {
	if spec.Layers <= 0 || spec.KVHeads <= 0 || spec.HeadDim <= 0 || spec.BlockSize <= 0 || spec.Blocks <= 0 {
		return nil, fmt.Errorf("cpu: kv cache %+v: %w: every dimension must be positive", spec, backend.ErrShape)
	}
	switch spec.DType {
	case backend.F32, backend.F16, backend.BF16:
	default:
		return nil, fmt.Errorf("cpu: kv cache: %w: %v (want f32, f16 or bf16)", backend.ErrDType, spec.DType)
	}
	const limit = 1 << 62
	size := int64(1)
	for _, d := range []int{2, spec.Layers, spec.KVHeads, spec.HeadDim, spec.BlockSize, spec.Blocks, spec.DType.BlockBytes()} {
		if size > limit/int64(d) {
			return nil, fmt.Errorf("cpu: kv cache %+v: %w: size overflows", spec, backend.ErrOutOfMemory)
		}
		size *= int64(d)
	}
	data, err := b.allocBytes(int(size))
	if err != nil {
		return nil, fmt.Errorf("cpu: kv cache %+v: %w", spec, err)
	}
	eb := spec.DType.BlockBytes()
	return &kvCache{b: b, spec: spec, data: data, eb: eb, rowBytes: spec.HeadDim * eb, headBytes: spec.BlockSize * spec.HeadDim * eb}, nil
}

// cacheOf returns the cache as this backend's type.
func (b *Backend) cacheOf(cache backend.KVCache) (*kvCache, error) {
	c, ok := cache.(*kvCache)
	if !ok || c == nil || c.b != b {
		return nil, fmt.Errorf("%w: kv cache does not belong to this backend", backend.ErrShape)
	}
	if c.data == nil {
		return nil, fmt.Errorf("%w: kv cache was freed", backend.ErrShape)
	}
	return c, nil
}

// CopyKVBlock copies block src of every layer onto block dst.
func (b *Backend) CopyKVBlock(cache backend.KVCache, dst, src int) {
	if !b.ok() {
		return
	}
	c, err := b.cacheOf(cache)
	if err == nil && (dst < 0 || src < 0 || dst >= c.spec.Blocks || src >= c.spec.Blocks) {
		err = fmt.Errorf("%w: cache has %d blocks", backend.ErrIndex, c.spec.Blocks)
	}
	if err != nil {
		b.fail(fmt.Sprintf("CopyKVBlock(dst %d, src %d)", dst, src), err)
		return
	}
	n := 2 * c.spec.KVHeads * c.headBytes
	for l := 0; l < c.spec.Layers; l++ {
		copy(c.data[c.off(0, l, dst, 0, 0):][:n], c.data[c.off(0, l, src, 0, 0):][:n])
	}
}

// Attention stores this batch's keys and values in the cache, then runs
// causal grouped-query attention of every row against its sequence's
// cached positions (see backend.Backend). The work is split by (row, KV
// head): the query heads sharing a KV head read its keys and values once.
// When rows × KV heads cannot occupy the pool, a group's query heads are
// also split into subgroups, and then a long history into its parts (see
// attnJob).
func (b *Backend) Attention(out, q, k, v backend.Tensor, cache backend.KVCache, a backend.Attn) {
	if !b.ok() {
		return
	}
	j := &b.attn
	if err := b.prepareAttention(j, out, q, k, v, cache, a); err != nil {
		b.fail(fmt.Sprintf("Attention(out %v, q %v, k %v, v %v, layer %d, pos %v, seq %v, blocks %v)", out, q, k, v, a.Layer, a.Pos, a.Seq, a.Blocks), err)
		*j = attnJob{}
		return
	}
	c, hkv, d := j.c, j.c.spec.KVHeads, j.c.spec.HeadDim
	for r := 0; r < j.q.rows; r++ {
		p := int(j.pos.d[r*j.pos.stride])
		blk := int(j.blocks.row(int(j.seq.d[r*j.seq.stride]))[p/c.spec.BlockSize])
		slot := p % c.spec.BlockSize
		kr, vr := j.k.row(r), j.v.row(r)
		for g := 0; g < hkv; g++ {
			roundRow(c.spec.DType, c.data[c.off(0, j.layer, blk, g, slot):][:c.rowBytes], kr[g*d:(g+1)*d])
			roundRow(c.spec.DType, c.data[c.off(1, j.layer, blk, g, slot):][:c.rowBytes], vr[g*d:(g+1)*d])
		}
	}
	// How the work is cut changes nothing in the arithmetic (see attnJob),
	// only who does it. Each unit is about (positions × heads × head size)
	// multiply-adds twice over; tiny calls run on the caller alone.
	units := j.q.rows * hkv
	j.subs, j.parts = 1, 1
	if units < 2*b.threads && j.group > 1 {
		want := (2*b.threads + units - 1) / units
		for s := min(want, j.group); s >= 1; s-- {
			if j.group%s == 0 {
				j.subs = s
				break
			}
		}
	}
	units *= j.subs
	if units < 2*b.threads && j.maxPos >= 2*attnSpan {
		j.parts = (j.maxPos + attnSpan - 1) / attnSpan
		if need := j.q.rows * hkv * j.parts * j.recSize(); len(b.part) < need {
			b.part = make([]float32, need)
		}
		j.part = b.part[:j.q.rows*hkv*j.parts*j.recSize()]
		units *= j.parts
	}
	grain := splitGrain(units, b.threads, 1)
	if work := j.attended * j.group * d * 2; work < 2*minChunk {
		grain = units
	}
	b.pool.run(j, units, grain)
	if j.parts > 1 {
		for rg := 0; rg < j.q.rows*hkv; rg++ {
			r, g := rg/hkv, rg%hkv
			j.combine(j.part[rg*j.parts*j.recSize():(rg+1)*j.parts*j.recSize()], j.parts, r, g, 0, j.group)
		}
	}
	*j = attnJob{}
}

// prepareAttention checks an Attention call and fills j.
func (b *Backend) prepareAttention(j *attnJob, out, q, k, v backend.Tensor, cache backend.KVCache, a backend.Attn) error {
	c, err := b.cacheOf(cache)
	if err != nil {
		return err
	}
	*j = attnJob{b: b, c: c, layer: a.Layer, scale: a.Scale}
	j.base, j.blockBytes, j.valueOff = c.off(0, a.Layer, 0, 0, 0), c.off(0, 0, 1, 0, 0), c.off(1, 0, 0, 0, 0)
	if j.out, err = b.f32(out, true); err != nil {
		return err
	}
	if j.q, err = b.f32(q, false); err != nil {
		return err
	}
	if j.k, err = b.f32(k, false); err != nil {
		return err
	}
	if j.v, err = b.f32(v, false); err != nil {
		return err
	}
	if j.pos, err = b.i32(a.Pos); err != nil {
		return err
	}
	if j.seq, err = b.i32(a.Seq); err != nil {
		return err
	}
	if j.blocks, err = b.i32(a.Blocks); err != nil {
		return err
	}
	s := c.spec
	n, d, kvw := q.Rows(), s.HeadDim, s.KVHeads*s.HeadDim
	switch {
	case q.Cols()%d != 0 || (q.Cols()/d)%s.KVHeads != 0:
		return fmt.Errorf("%w: q has %d columns, not a multiple of %d KV heads × head size %d", backend.ErrShape, q.Cols(), s.KVHeads, d)
	case out.Rows() != n || out.Cols() != q.Cols():
		return fmt.Errorf("%w: out and q differ in shape", backend.ErrShape)
	case k.Rows() != n || v.Rows() != n || k.Cols() != kvw || v.Cols() != kvw:
		return fmt.Errorf("%w: want k and v %d×%d", backend.ErrShape, n, kvw)
	case a.Pos.Rows() != n || a.Pos.Cols() != 1 || a.Seq.Rows() != n || a.Seq.Cols() != 1:
		return fmt.Errorf("%w: want pos and seq %d×1", backend.ErrShape, n)
	case a.Layer < 0 || a.Layer >= s.Layers:
		return fmt.Errorf("%w: layer %d of %d", backend.ErrIndex, a.Layer, s.Layers)
	case overlaps(out, k) || overlaps(out, v):
		return fmt.Errorf("%w: out overlaps k or v", backend.ErrShape)
	}
	j.group = q.Cols() / d / s.KVHeads
	for r := 0; r < n; r++ {
		p, sq := int(j.pos.d[r*j.pos.stride]), int(j.seq.d[r*j.seq.stride])
		if sq < 0 || sq >= j.blocks.rows {
			return fmt.Errorf("%w: seq[%d] = %d, block table has %d rows", backend.ErrIndex, r, sq, j.blocks.rows)
		}
		if p < 0 || p/s.BlockSize >= j.blocks.cols {
			return fmt.Errorf("%w: pos[%d] = %d, block table holds %d positions", backend.ErrIndex, r, p, j.blocks.cols*s.BlockSize)
		}
		j.attended += (p + 1) * s.KVHeads
		j.maxPos = max(j.maxPos, p+1)
		for i, blk := range j.blocks.row(sq)[:p/s.BlockSize+1] {
			if blk < 0 || int(blk) >= s.Blocks {
				return fmt.Errorf("%w: blocks[%d][%d] = %d, cache has %d blocks", backend.ErrIndex, sq, i, blk, s.Blocks)
			}
		}
	}
	return nil
}

// attnSpan is the length of the parts a row's history is cut into:
// positions [0, attnSpan), [attnSpan, 2·attnSpan), ... Each part yields
// the maximum of its scores, the sum of their exponentials and the
// weighted sum of its values, and the parts are then combined (as
// flash-decoding does). The cut depends on nothing but the position, so a
// row's result is the same whatever else is in the batch and however the
// pool shares the work out.
const attnSpan = 256

// attnJob is one Attention call. Unit u covers row r, KV head g, the
// subgroup sb of g's query heads and, when parts > 1, part sp of the
// row's history:
//
//	sp = u % parts, sb = u / parts % subs, g = u / parts / subs % KVHeads,
//	r = u / parts / subs / KVHeads
//
// With one part per unit (the usual case) a unit goes through the row's
// parts itself, keeping their partial results in its scratch, and
// combines them into out. When there are too few rows and heads to
// occupy the pool (a single decode row against a long history), the parts
// are units of their own, their partial results go to part, and Attention
// combines them afterwards: the same arithmetic in the same order.
type attnJob struct {
	b           *Backend
	c           *kvCache
	layer       int
	scale       float32
	group       int // query heads per KV head
	attended    int // sum over rows and KV heads of the positions read
	maxPos      int // the most positions one row reads
	subs, parts int
	part        []float32 // per (row, KV head, part): a record (see recSize)
	// Byte offsets into the cache: of the call's layer, between blocks,
	// from keys to values (see kvCache.off).
	base, blockBytes, valueOff int
	out, q, k, v               mat[float32]
	pos, seq, blocks           mat[int32]
}

// recSize is the length of one part's record: for each query head of the
// group its weighted value sum (HeadDim), then the group's score maxima,
// then the sums of their exponentials (0 for a part with no positions).
func (j *attnJob) recSize() int { return j.group * (j.c.spec.HeadDim + 2) }

func (j *attnJob) run(wk, lo, hi int) {
	s := j.c.spec
	d, hkv, sub := s.HeadDim, s.KVHeads, j.group/j.subs
	for u := lo; u < hi; u++ {
		sp, rest := u%j.parts, u/j.parts
		sb, rest := rest%j.subs, rest/j.subs
		g, r := rest%hkv, rest/hkv
		h0, h1 := sb*sub, (sb+1)*sub
		npos := int(j.pos.d[r*j.pos.stride]) + 1
		if j.parts > 1 {
			rec := j.part[((r*hkv+g)*j.parts+sp)*j.recSize():][:j.recSize()]
			t0 := sp * attnSpan
			if t0 >= npos {
				for h := h0; h < h1; h++ {
					rec[j.group*d+h], rec[j.group*(d+1)+h] = float32(math.Inf(-1)), 0
				}
				continue
			}
			j.partial(wk, j.b.scratchFor(wk, j.partialScratch()), rec, r, g, h0, h1, t0, min(t0+attnSpan, npos))
			continue
		}
		np := (npos + attnSpan - 1) / attnSpan
		buf := j.b.scratchFor(wk, np*j.recSize()+j.partialScratch())
		recs, buf := buf[:np*j.recSize()], buf[np*j.recSize():]
		for p := range np {
			j.partial(wk, buf, recs[p*j.recSize():(p+1)*j.recSize()], r, g, h0, h1, p*attnSpan, min((p+1)*attnSpan, npos))
		}
		j.combine(recs, np, r, g, h0, h1)
	}
}

// partial computes the record of positions [t0, t1) (within one part) of
// row r for query heads h0..h1-1 of KV head g's group, into those heads'
// places in rec: fused calls (vec.AttnBlocks: scores, softmax, value
// sums, each phase for all those heads) over runs of the part's cache
// blocks, used in place for an F32 cache and widened into buf otherwise.
// A run holds about callBytes of keys, so that the keys and values stay
// in L1 while every head of the group goes over them. buf is worker wk's
// scratch of partialScratch elements.
func (j *attnJob) partial(wk int, buf, rec []float32, r, g, h0, h1, t0, t1 int) {
	s := j.c.spec
	d, grp, bs := s.HeadDim, j.group, s.BlockSize
	run := j.runPositions()
	sbuf, wide := buf[:vec.AttnScratch(h1-h0, run)], buf[vec.AttnScratch(h1-h0, run):]
	table := j.blocks.row(int(j.seq.d[r*j.seq.stride]))
	q := j.q.row(r)[(g*grp+h0)*d : (g*grp+h1)*d]
	acc, m, l := rec[h0*d:h1*d], rec[grp*d+h0:grp*d+h1], rec[grp*(d+1)+h0:grp*(d+1)+h1]
	clear(acc)
	clear(l)
	for i := range m {
		m[i] = float32(math.Inf(-1))
	}
	lists := &j.b.kvLists[wk]
	for c0 := t0; c0 < t1; {
		ks, vs := lists[0][:0], lists[1][:0]
		c1 := c0
		for c1 < t1 && (c1 == c0 || c1-c0+min(bs, t1-c1) <= run) {
			b1 := min((c1/bs+1)*bs, t1)
			var wk, wv []float32
			if s.DType != backend.F32 {
				wk, wv = wide[(c1-c0)*d:(b1-c0)*d], wide[(run+c1-c0)*d:(run+b1-c0)*d]
			}
			ks = append(ks, j.block(0, table, g, c1, b1, wk))
			vs = append(vs, j.block(1, table, g, c1, b1, wv))
			c1 = b1
		}
		lists[0], lists[1] = ks, vs
		j.b.k.attnBlocks(acc, m, l, q, d, ks, vs, j.scale, sbuf)
		c0 = c1
	}
}

// callBytes is about the most key bytes one vec.AttnBlocks call of
// partial covers: for an F32 cache, read in place; half as many for
// another type, whose keys and values are widened into scratch first.
const callBytes = 16 << 10

// runPositions is the most positions one vec.AttnBlocks call of partial
// covers: whole cache blocks, callBytes of keys, and at least one block.
func (j *attnJob) runPositions() int {
	s := j.c.spec
	limit := callBytes
	if s.DType != backend.F32 {
		limit /= 2
	}
	return max(s.BlockSize, min(limit/(4*s.HeadDim), attnSpan))
}

// partialScratch is the scratch partial needs.
func (j *attnJob) partialScratch() int {
	run := j.runPositions()
	n := vec.AttnScratch(j.group/j.subs, run)
	if j.c.spec.DType != backend.F32 {
		n += 2 * run * j.c.spec.HeadDim
	}
	return n
}

// block returns positions [b0, b1) (within one cache block) of KV head g
// of the sequence with block table table, keys (kv = 0) or values (kv =
// 1), as (b1-b0) rows of HeadDim F32 values: the cache's own memory for an
// F32 cache, else widened into buf.
func (j *attnJob) block(kv int, table []int32, g, b0, b1 int, buf []float32) []float32 {
	c := j.c
	bs := c.spec.BlockSize
	// c.off(kv, layer, blk, g, b0%bs), from the per-call base.
	off := j.base + int(table[b0/bs])*j.blockBytes + kv*j.valueOff + g*c.headBytes + b0%bs*c.rowBytes
	raw := c.data[off:][:(b1-b0)*c.rowBytes]
	if c.spec.DType == backend.F32 {
		return bytesF32(raw)
	}
	out := buf[:(b1-b0)*c.spec.HeadDim]
	j.b.k.widen(c.spec.DType, out, raw)
	return out
}

// combine merges np consecutive records (recSize apart in recs) of row r,
// KV head g, into out for query heads h0..h1-1 of the group: the scores'
// overall maximum m, then out = sum over parts of e**(m_p-m)·values_p,
// divided by sum over parts of e**(m_p-m)·sum_p. Parts with no positions
// (sum 0) are skipped.
func (j *attnJob) combine(recs []float32, np, r, g, h0, h1 int) {
	d, grp := j.c.spec.HeadDim, j.group
	rs := j.recSize()
	out := j.out.row(r)[g*grp*d : (g+1)*grp*d]
	for h := h0; h < h1; h++ {
		m, parts, last := float32(math.Inf(-1)), 0, 0
		for p := range np {
			if rec := recs[p*rs:]; rec[grp*(d+1)+h] != 0 {
				m = max(m, rec[grp*d+h])
				parts, last = parts+1, p
			}
		}
		o := out[h*d : (h+1)*d]
		if parts == 1 {
			// One part with positions (whether the row was split or
			// not): its values over its sum.
			rec := recs[last*rs : (last+1)*rs]
			inv := 1 / rec[grp*(d+1)+h]
			for i, v := range rec[h*d : (h+1)*d] {
				o[i] = v * inv
			}
			continue
		}
		clear(o)
		var sum float32
		for p := range np {
			rec := recs[p*rs : (p+1)*rs]
			if rec[grp*(d+1)+h] == 0 {
				continue // no positions in this part
			}
			w := expf(rec[grp*d+h] - m)
			sum += w * rec[grp*(d+1)+h]
			j.b.k.axpy(w, rec[h*d:(h+1)*d], o)
		}
		inv := 1 / sum
		for i := range o {
			o[i] *= inv
		}
	}
}
