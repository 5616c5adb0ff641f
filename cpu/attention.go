package cpu

import (
	"fmt"
	"math"

	"github.com/loomllm/loom/runtime/backend"
)

// minSplit is the fewest positions worth a part of their own when
// Attention splits a row's positions across the pool.
const minSplit = 256

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
	// Each unit is about (positions × group × head size) multiply-adds
	// twice over; tiny calls run on the caller alone. Split positions when
	// rows × heads cannot occupy the pool and histories are long.
	units, grain := j.q.rows*hkv, 1
	j.splits, j.span = 1, j.maxPos
	if units < 2*b.threads && j.maxPos >= 2*minSplit {
		j.splits = min((2*b.threads+units-1)/units, j.maxPos/minSplit)
		j.span = (j.maxPos + j.splits - 1) / j.splits
		units *= j.splits
		if need := units * j.partSize(); len(b.part) < need {
			b.part = make([]float32, need)
		}
		j.part = b.part[:units*j.partSize()]
	}
	if work := j.attended * j.group * d * 2; work < 2*minChunk {
		grain = units
	}
	b.pool.run(j, units, grain)
	if j.splits > 1 {
		j.combine()
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

// attnJob is one Attention call. Unit u covers row r and KV head g (with
// its group of query heads) for part sp of the row's positions:
//
//	sp = u % splits, r = u / splits / KVHeads, g = u / splits % KVHeads
//
// With one part per row (the usual case) a unit writes its output
// directly. When there are too few rows and heads to occupy the pool (a
// single decode row against a long history), each row's positions are
// split into parts of span positions whose partial results (the scores'
// maximum, the sum of their exponentials and the weighted sum of values)
// go to part and are combined afterwards, as flash-decoding does.
type attnJob struct {
	b                *Backend
	c                *kvCache
	layer            int
	scale            float32
	group            int // query heads per KV head
	attended         int // sum over units of the positions each reads
	maxPos           int // the most positions one row reads
	splits, span     int
	part             []float32 // per unit: group×HeadDim sums, then group maxima, then group sums
	out, q, k, v     mat[float32]
	pos, seq, blocks mat[int32]
}

// partSize is the length of one unit's partial result in attnJob.part.
func (j *attnJob) partSize() int { return j.group * (j.c.spec.HeadDim + 2) }

func (j *attnJob) run(wk, lo, hi int) {
	c, kern := j.c, &j.b.k
	s := c.spec
	d, grp := s.HeadDim, j.group
	for u := lo; u < hi; u++ {
		sp, rg := u%j.splits, u/j.splits
		r, g := rg/s.KVHeads, rg%s.KVHeads
		table := j.blocks.row(int(j.seq.d[r*j.seq.stride]))
		t0, t1 := sp*j.span, min((sp+1)*j.span, int(j.pos.d[r*j.pos.stride])+1)
		npos := max(t1-t0, 0)
		// Scratch: scores for each head of the group, their output
		// accumulators, and one block of keys or values widened to F32.
		buf := j.b.scratchFor(wk, grp*npos+grp*d+s.BlockSize*d)
		scores, acc, wide := buf[:grp*npos], buf[grp*npos:grp*npos+grp*d], buf[grp*npos+grp*d:]
		q := j.q.row(r)[g*grp*d : (g+1)*grp*d]

		// Keys one block at a time: the block's positions of head g are
		// consecutive rows, multiplied with each query head at once.
		for b0 := t0; b0 < t1; {
			b1 := min((b0/s.BlockSize+1)*s.BlockSize, t1)
			keys := j.block(0, table, g, b0, b1, wide)
			for h := 0; h < grp; h++ {
				sc := scores[h*npos+b0-t0 : h*npos+b1-t0]
				kern.dotRows(sc, keys, d, q[h*d:(h+1)*d])
				for i := range sc {
					sc[i] *= j.scale
				}
			}
			b0 = b1
		}
		var part []float32
		if j.splits > 1 {
			part = j.part[u*j.partSize() : (u+1)*j.partSize()]
		}
		for h := 0; h < grp; h++ {
			m, sum := expScores(scores[h*npos : (h+1)*npos])
			if part != nil {
				part[grp*d+h], part[grp*d+grp+h] = m, sum
			}
		}
		clear(acc)
		for b0 := t0; b0 < t1; {
			b1 := min((b0/s.BlockSize+1)*s.BlockSize, t1)
			values := j.block(1, table, g, b0, b1, wide)
			for t := b0; t < b1; t++ {
				v := values[(t-b0)*d : (t-b0+1)*d]
				for h := 0; h < grp; h++ {
					kern.axpy(scores[h*npos+t-t0], v, acc[h*d:(h+1)*d])
				}
			}
			b0 = b1
		}
		if part != nil {
			copy(part, acc)
			continue
		}
		out := j.out.row(r)[g*grp*d : (g+1)*grp*d]
		for h := 0; h < grp; h++ {
			inv := 1 / scoresSum(scores[h*npos:(h+1)*npos])
			for i, v := range acc[h*d : (h+1)*d] {
				out[h*d+i] = v * inv
			}
		}
	}
}

// block returns positions [b0, b1) (within one cache block) of KV head g
// of the sequence with block table table, keys (kv = 0) or values (kv =
// 1), as (b1-b0) rows of HeadDim F32 values: the cache's own memory for an
// F32 cache, else widened into buf.
func (j *attnJob) block(kv int, table []int32, g, b0, b1 int, buf []float32) []float32 {
	c := j.c
	bs := c.spec.BlockSize
	raw := c.data[c.off(kv, j.layer, int(table[b0/bs]), g, b0%bs):][:(b1-b0)*c.rowBytes]
	if c.spec.DType == backend.F32 {
		return bytesF32(raw)
	}
	out := buf[:(b1-b0)*c.spec.HeadDim]
	j.b.k.widen(c.spec.DType, out, raw)
	return out
}

// combine merges the partial results of split rows into out.
func (j *attnJob) combine() {
	d, grp, hkv := j.c.spec.HeadDim, j.group, j.c.spec.KVHeads
	ps := j.partSize()
	for rg := 0; rg < j.q.rows*hkv; rg++ {
		r, g := rg/hkv, rg%hkv
		out := j.out.row(r)[g*grp*d : (g+1)*grp*d]
		parts := j.part[rg*j.splits*ps : (rg+1)*j.splits*ps]
		for h := 0; h < grp; h++ {
			m := float32(math.Inf(-1))
			for sp := 0; sp < j.splits; sp++ {
				if p := parts[sp*ps:]; p[grp*d+grp+h] > 0 {
					m = max(m, p[grp*d+h])
				}
			}
			o := out[h*d : (h+1)*d]
			clear(o)
			var sum float32
			for sp := 0; sp < j.splits; sp++ {
				p := parts[sp*ps : (sp+1)*ps]
				if p[grp*d+grp+h] == 0 {
					continue // no positions in this part
				}
				w := expf(p[grp*d+h] - m)
				sum += w * p[grp*d+grp+h]
				j.b.k.axpy(w, p[h*d:(h+1)*d], o)
			}
			inv := 1 / sum
			for i := range o {
				o[i] *= inv
			}
		}
	}
}

// expScores replaces x by exp(x - max x) and returns max x and the sum of
// the new values (-Inf and 0 for an empty x).
func expScores(x []float32) (m, sum float32) {
	m = float32(math.Inf(-1))
	for _, v := range x {
		m = max(m, v)
	}
	for i, v := range x {
		e := expf(v - m)
		x[i] = e
		sum += e
	}
	return m, sum
}

// scoresSum returns the sum of x.
func scoresSum(x []float32) float32 {
	var s float32
	for _, v := range x {
		s += v
	}
	return s
}
