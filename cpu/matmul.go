package cpu

import (
	"fmt"

	"github.com/loomllm/loom/cpu/vec"
	"github.com/loomllm/loom/runtime/backend"
)

// weights returns the bytes of a contiguous weight tensor of a supported type.
func (b *Backend) weights(t backend.Tensor) ([]byte, error) {
	if !b.SupportsWeights(t.DType()) {
		return nil, fmt.Errorf("%w: weights %v", backend.ErrDType, t)
	}
	s, err := b.bytesOf(t, false)
	if err != nil {
		return nil, err
	}
	if t.DType() == backend.F32 && len(s) > 0 && uintptrOf(s)%4 != 0 {
		return nil, fmt.Errorf("%w: %v is not 4-byte aligned", backend.ErrShape, t)
	}
	return s, nil
}

// overlaps reports whether two tensors share elements. Views of one
// buffer with the same stride (column slices of one parent) overlap when
// both their rows and their columns do; otherwise their byte ranges are
// compared.
func overlaps(a, b backend.Tensor) bool {
	if a.Buffer() != b.Buffer() {
		return false
	}
	as, bs := a.StrideBytes(), b.StrideBytes()
	if as == bs && a.Rows() > 1 && b.Rows() > 1 {
		ar, ac := a.Offset()/as, a.Offset()%as
		br, bc := b.Offset()/bs, b.Offset()%bs
		if ac+a.RowBytes() <= as && bc+b.RowBytes() <= bs {
			return ar < br+b.Rows() && br < ar+a.Rows() && ac < bc+b.RowBytes() && bc < ac+a.RowBytes()
		}
	}
	aEnd := a.Offset() + (a.Rows()-1)*as + a.RowBytes()
	bEnd := b.Offset() + (b.Rows()-1)*bs + b.RowBytes()
	return a.Offset() < bEnd && b.Offset() < aEnd
}

// MatMul sets dst = x · wᵀ (see backend.Backend). For one row it is a
// matrix-vector product split by weight rows across the pool. With
// quantized weights (Q8_0, Q4_0, the K-quants, IQ4_NL, IQ4_XS) the activations are first quantized to 8 bits, as
// llama.cpp does, and every product is an integer dot product (unless
// Options.ExactQuant is set): faster than widening the weights at every
// row count measured (1 to 128). For several
// rows the weights are cut into tiles of rows small enough to stay in the
// core's cache, and a worker widens its tile to F32 once (F32 tiles are
// used in place) and multiplies it with every activation row, four weight
// rows per activation load, so each weight byte is read from memory once
// per call.
func (b *Backend) MatMul(dst, x, w backend.Tensor) {
	if !b.ok() {
		return
	}
	xm, err := b.f32(x, false)
	if err != nil {
		b.failMatMul(dst, x, w, err)
		return
	}
	wb, err := b.weights(w)
	if err != nil {
		b.failMatMul(dst, x, w, err)
		return
	}
	dm, err := b.f32(dst, true)
	if err != nil {
		b.failMatMul(dst, x, w, err)
		return
	}
	n, in, out := x.Rows(), x.Cols(), w.Rows()
	if w.Cols() != in || dst.Rows() != n || dst.Cols() != out {
		b.failMatMul(dst, x, w, fmt.Errorf("%w: want x n×%d and dst n×%d for w %d×%d", backend.ErrShape, w.Cols(), out, out, w.Cols()))
		return
	}
	if overlaps(dst, x) {
		b.failMatMul(dst, x, w, fmt.Errorf("%w: dst overlaps x", backend.ErrShape))
		return
	}
	j := &b.mm
	*j = matmulJob{b: b, dst: dm, x: xm, w: wb, dt: w.DType(), rowBytes: w.RowBytes(), in: in}
	if j.dt.Quantized() && !b.exactQuant {
		// Quantize the activations once; every weight row then takes an
		// integer dot product with them (see Options.ExactQuant).
		nb := in / 32
		if len(b.xq) < n*in {
			b.xq, b.xd, b.xs = make([]int8, n*in), make([]float32, n*nb), make([]float32, 2*n*nb)
		}
		for r := 0; r < n; r++ {
			b.k.quantizeQ8(b.xq[r*in:(r+1)*in], b.xd[r*nb:(r+1)*nb], xm.row(r))
		}
		j.xq, j.xd = b.xq[:n*in], b.xd[:n*nb]
		switch j.dt {
		case backend.Q4_K, backend.Q5_K:
			// Their dots take each block's quant sum (the mins' term).
			vec.SumsQ8(b.xs[:n*nb], j.xq)
			j.xs, j.xsPer = b.xs[:n*nb], nb
		case backend.Q6_K, backend.Q2_K, backend.Q3_K:
			// Their dots take the sums per 16 (Q6_K's and Q3_K's offsets,
			// Q2_K's mins).
			vec.SumsQ8By16(b.xs[:2*n*nb], j.xq)
			j.xs, j.xsPer = b.xs[:2*n*nb], 2*nb
		}
	}
	var grain int // weight rows per chunk
	switch {
	case n*out*in < 4*minChunk:
		grain = out // too small to be worth waking the pool
	case n*out*in < smallOp*b.threads:
		// A few tens of microseconds per goroutine: one share each (in
		// whole eight-row groups, vec.DotRows's unit), since with the
		// helpers awake an even split finishes first; a late helper's
		// share is still taken by whoever is free.
		grain = (out + b.threads - 1) / b.threads
		grain = min((grain+7)&^7, out)
	case n == 1 || (j.xq != nil && n <= rowBlock):
		grain = splitGrain(out, b.threads, max(4, minChunk/in))
		grain = min((grain+7)&^7, out)
	case j.xq != nil:
		// Several blocks of activation rows pass over each chunk of
		// weights: keep the chunk within about 256 KiB of L2.
		grain = min(max((256<<10)/j.rowBytes, 4), (out+b.threads-1)/b.threads)
	default:
		// A tile of weight rows widened to F32 takes about 256 KiB, half
		// a typical L2, but each thread gets at least one tile.
		grain = min(max(64<<10/in, 4), 64, (out+b.threads-1)/b.threads)
	}
	b.pool.run(j, out, grain)
	b.mm = matmulJob{}
}

func (b *Backend) failMatMul(dst, x, w backend.Tensor, err error) {
	b.fail(fmt.Sprintf("MatMul(dst %v, x %v, w %v)", dst, x, w), err)
}

// matmulJob is one MatMul call; its units are weight rows (outputs).
type matmulJob struct {
	b        *Backend
	dst, x   mat[float32]
	w        []byte
	dt       backend.DType
	rowBytes int
	in       int
	xq       []int8    // x quantized to 8 bits, for Q8_0, Q4_0 and the K-quant weights
	xd       []float32 // the scales of xq, one per 32 elements
	xs       []float32 // the sums of xq's blocks (Q4_K, Q5_K) or halves (Q2_K, Q3_K, Q6_K)
	xsPer    int       // entries of xs per row
}

// smallOp is the work, in multiply-adds per goroutine, below which MatMul
// gives each goroutine one share rather than several smaller chunks.
const smallOp = 1 << 19

// rowBlock is the number of 8-bit activation rows (32 KiB at 4096
// columns) multiplied with each weight row of a chunk while they are in L1.
const rowBlock = 8

func (j *matmulJob) run(wk, lo, hi int) {
	k := &j.b.k
	if j.xq != nil {
		// Blocks of rowBlock quantized activation rows stay in L1 while
		// the chunk's weight rows pass by.
		nb := j.in / 32
		for r0 := 0; r0 < j.x.rows; r0 += rowBlock {
			r1 := min(r0+rowBlock, j.x.rows)
			if tile := k.quantTile(j.dt); tile != nil {
				// Register-blocked where the CPU allows, every sum as the
				// pair's own (vec.DotTileQ8_0Q8, DotTileQ4_0Q8).
				tile(j.dst.d[r0*j.dst.stride+lo:], j.dst.stride, j.w[lo*j.rowBytes:hi*j.rowBytes], j.rowBytes, hi-lo,
					j.xq[r0*j.in:r1*j.in], j.xd[r0*nb:r1*nb], j.in, r1-r0)
				continue
			}
			for o := lo; o < hi; o++ {
				wr := j.w[o*j.rowBytes : (o+1)*j.rowBytes]
				for r := r0; r < r1; r++ {
					q, d := j.xq[r*j.in:(r+1)*j.in], j.xd[r*nb:(r+1)*nb]
					var sums []float32
					if j.xs != nil {
						sums = j.xs[r*j.xsPer : (r+1)*j.xsPer]
					}
					switch j.dt {
					case backend.Q8_0:
						j.dst.d[r*j.dst.stride+o] = k.dotQ8_0Q8(wr, q, d)
					case backend.Q4_0:
						j.dst.d[r*j.dst.stride+o] = k.dotQ4_0Q8(wr, q, d)
					case backend.Q4_K:
						j.dst.d[r*j.dst.stride+o] = k.dotQ4_KQ8(wr, q, d, sums)
					case backend.Q5_K:
						j.dst.d[r*j.dst.stride+o] = k.dotQ5_KQ8(wr, q, d, sums)
					case backend.IQ4_NL:
						j.dst.d[r*j.dst.stride+o] = k.dotIQ4NLQ8(wr, q, d)
					case backend.Q2_K:
						j.dst.d[r*j.dst.stride+o] = k.dotQ2_KQ8(wr, q, d, sums)
					case backend.Q3_K:
						j.dst.d[r*j.dst.stride+o] = k.dotQ3_KQ8(wr, q, d, sums)
					case backend.IQ4_XS:
						j.dst.d[r*j.dst.stride+o] = k.dotIQ4XSQ8(wr, q, d)
					default:
						j.dst.d[r*j.dst.stride+o] = k.dotQ6_KQ8(wr, q, d, sums)
					}
				}
			}
		}
		return
	}
	if j.x.rows == 1 {
		x, d := j.x.row(0), j.dst.row(0)
		if j.dt == backend.F32 {
			k.dotRows(d[lo:hi], bytesF32(j.w[lo*j.rowBytes:hi*j.rowBytes]), j.in, x)
			return
		}
		if j.dt == backend.F16 || j.dt == backend.BF16 {
			// The canonical eight-row dot of the rows widened in registers
			// (vec.DotRowsF16/BF16): the sums a widened tile gives the same
			// row in a batch (vec.DotTile), so F16 and BF16 products are
			// batch invariant too. Rows whose length is not a multiple of 8
			// are widened into scratch first, then the same dot.
			w := j.w[lo*j.rowBytes : hi*j.rowBytes]
			switch {
			case j.in%8 == 0 && j.dt == backend.F16:
				k.dotRowsF16(d[lo:hi], w, j.in, x)
				return
			case j.in%8 == 0:
				k.dotRowsBF16(d[lo:hi], w, j.in, x)
				return
			}
			for o := lo; o < hi; o += 8 {
				m := min(8, hi-o)
				tile := j.b.scratchFor(wk, m*j.in)
				for i := range m {
					k.widen(j.dt, tile[i*j.in:(i+1)*j.in], j.w[(o+i)*j.rowBytes:(o+i+1)*j.rowBytes])
				}
				k.dotRows(d[o:o+m], tile, j.in, x)
			}
			return
		}
		for o := lo; o < hi; o++ {
			d[o] = k.dotW(j.dt, j.w[o*j.rowBytes:(o+1)*j.rowBytes], x)
		}
		return
	}
	// Widen the tile [lo, hi) to F32 once (F32 weights are used in place).
	var tile []float32
	if j.dt == backend.F32 {
		tile = bytesF32(j.w[lo*j.rowBytes : hi*j.rowBytes])
	} else {
		tile = j.b.scratchFor(wk, (hi-lo)*j.in)
		for o := lo; o < hi; o++ {
			k.widen(j.dt, tile[(o-lo)*j.in:(o-lo+1)*j.in], j.w[o*j.rowBytes:(o+1)*j.rowBytes])
		}
	}
	// Every activation row against the tile, three activation rows by
	// four weight rows in registers (vec.DotTile), each sum in the same
	// order as the one-row product's vec.DotRows: a row's outputs do not
	// depend on the batch.
	k.dotTile(j.dst.d[lo:], j.dst.stride, j.x.d, j.x.stride, j.x.rows, tile, j.in, hi-lo, j.in)
}

// Embed gathers table rows into dst (see backend.Backend), widening them to F32.
func (b *Backend) Embed(dst, table, ids backend.Tensor) {
	if !b.ok() {
		return
	}
	fail := func(err error) { b.fail(fmt.Sprintf("Embed(dst %v, table %v, ids %v)", dst, table, ids), err) }
	dm, err := b.f32(dst, true)
	if err != nil {
		fail(err)
		return
	}
	im, err := b.i32(ids)
	if err != nil {
		fail(err)
		return
	}
	var tb []byte
	if table.DType() == backend.F32 {
		tb, err = b.span(table, false) // an F32 table may be a strided activation
		if err == nil && uintptrOf(tb)%4 != 0 {
			err = fmt.Errorf("%w: %v is not 4-byte aligned", backend.ErrShape, table)
		}
	} else {
		tb, err = b.weights(table)
	}
	if err != nil {
		fail(err)
		return
	}
	n, d := dst.Rows(), dst.Cols()
	if ids.Rows() != n || ids.Cols() != 1 || table.Cols() != d {
		fail(fmt.Errorf("%w: want ids n×1 and table V×%d", backend.ErrShape, d))
		return
	}
	for r := 0; r < n; r++ {
		if id := im.d[r*im.stride]; id < 0 || int(id) >= table.Rows() {
			fail(fmt.Errorf("%w: ids[%d] = %d, table has %d rows", backend.ErrIndex, r, id, table.Rows()))
			return
		}
	}
	j := &b.emb
	*j = embedJob{k: &b.k, dst: dm, ids: im, table: tb, dt: table.DType(), strideBytes: table.StrideBytes()}
	b.pool.run(j, n, max(1, 16384/d))
	b.emb = embedJob{}
}

// embedJob is one Embed call; its units are rows of dst.
type embedJob struct {
	k           *kernels
	dst         mat[float32]
	ids         mat[int32]
	table       []byte
	dt          backend.DType
	strideBytes int
}

func (j *embedJob) run(_, lo, hi int) {
	for r := lo; r < hi; r++ {
		id := int(j.ids.d[r*j.ids.stride])
		j.k.widen(j.dt, j.dst.row(r), j.table[id*j.strideBytes:])
	}
}
