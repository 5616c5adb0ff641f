package conformance

import (
	"fmt"
	"math"
	"slices"

	"github.com/loomllm/loom/runtime/backend"
	"github.com/loomllm/loom/runtime/quant"
	"github.com/stretchr/testify/require"
)

// attnScenario is a paged KV cache with a few sequences on each backend
// (the one under test and the reference, if any), and the host's copy of
// what the cache should hold.
type attnScenario struct {
	s      *suite
	spec   backend.KVSpec
	caches map[backend.Backend]backend.KVCache
	tables map[backend.Backend]backend.Tensor
	table  [][]int32 // host block table, -1 where unused

	// Host reference: rounded keys and values by (layer, seq, pos).
	keys, values map[[3]int][]float32
}

// newAttnScenario allocates a cache of spec on each backend and a block
// table giving sequence i room for capacity[i] positions in blocks drawn
// at random from the pool (so a sequence's blocks are not contiguous).
// spec.Blocks is set to the blocks needed plus a few spare ones.
func (s *suite) newAttnScenario(spec backend.KVSpec, capacity []int) *attnScenario {
	need, width := 0, 1
	for _, c := range capacity {
		nb := (c + spec.BlockSize - 1) / spec.BlockSize
		need += nb
		width = max(width, nb)
	}
	spec.Blocks = need + 3
	width++ // an unused column, -1 everywhere
	perm := s.rng.Perm(spec.Blocks)
	sc := &attnScenario{s: s, spec: spec, caches: map[backend.Backend]backend.KVCache{}, tables: map[backend.Backend]backend.Tensor{},
		keys: map[[3]int][]float32{}, values: map[[3]int][]float32{}}
	flat := make([]int32, 0, len(capacity)*width)
	for _, c := range capacity {
		row := make([]int32, width)
		for i := range row {
			row[i] = -1
			if i*spec.BlockSize < c {
				row[i], perm = int32(perm[0]), perm[1:]
			}
		}
		sc.table = append(sc.table, row)
		flat = append(flat, row...)
	}
	tab := newOperand(backend.I32, len(capacity), width, 0, 0)
	copy(quant.BytesI32(tab.raw), flat)
	for _, be := range s.backends() {
		c, err := be.NewKVCache(spec)
		require.NoError(s.t, err, "%s: NewKVCache(%+v)", be.Name(), spec)
		s.t.Cleanup(c.Free)
		sc.caches[be] = c
		sc.tables[be] = s.upload(be, tab).view
	}
	return sc
}

// backends returns the backend under test and the reference backend, if any.
func (s *suite) backends() []backend.Backend {
	if s.ref != nil {
		return []backend.Backend{s.be, s.ref}
	}
	return []backend.Backend{s.be}
}

// roundTo rounds v to the cache's element type.
func roundTo(dt backend.DType, v []float32) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		switch dt {
		case backend.F16:
			x = quant.F16ToF32(quant.F32ToF16(x))
		case backend.BF16:
			x = quant.BF16ToF32(quant.F32ToBF16(x))
		}
		out[i] = x
	}
	return out
}

// call runs one Attention call of the rows (seq, pos) on layer with group
// query heads per KV head, on every backend, and checks checkRows of the
// output rows (all when checkRows ≥ len(rows), picked at random otherwise)
// against the reference. Layout varies at random: q, k
// and v as column slices of one fused tensor or as separate (possibly
// strided) tensors, the output in place over q or separate.
func (sc *attnScenario) call(layer int, rows [][2]int, group int, checkRows int) {
	s, spec := sc.s, sc.spec
	s.t.Helper()
	n, d, hkv := len(rows), spec.HeadDim, spec.KVHeads
	hq := group * hkv
	qw, kw := hq*d, hkv*d
	fused, inPlace := s.rng.IntN(2) == 0, s.rng.IntN(3) == 0

	// q, k and v: one n × (qw+2kw) tensor whose first qw columns are q, or
	// three tensors.
	var q, k, v *operand
	if fused {
		q = newOperand(backend.F32, n, qw, 2*kw, 0)
		all := quant.BytesF32(q.raw)
		for i := range all {
			all[i] = 2*s.rng.Float32() - 1
			if i%(qw+2*kw) < qw {
				all[i] *= 4 // larger queries make the softmax less flat
			}
		}
	} else {
		q, k, v = s.uniform(n, qw, -4, 4, s.rng.IntN(2) == 0), s.uniform(n, kw, -1, 1, s.rng.IntN(2) == 0), s.uniform(n, kw, -1, 1, false)
	}
	var kv, vv []float32
	if !fused {
		kv, vv = k.values(), v.values()
	}
	kvRow := func(r, which int) []float32 {
		if fused {
			row := quant.BytesF32(q.raw)[r*(qw+2*kw):]
			return row[qw+which*kw : qw+(which+1)*kw]
		}
		if which == 0 {
			return kv[r*kw : (r+1)*kw]
		}
		return vv[r*kw : (r+1)*kw]
	}
	pos, seq := make([]int32, n), make([]int32, n)
	for r, rs := range rows {
		seq[r], pos[r] = int32(rs[0]), int32(rs[1])
	}
	po, so := ints32(pos), ints32(seq)
	out := s.poisoned(n, qw, s.rng.IntN(2) == 0)
	scale := float32(1 / math.Sqrt(float64(d)))

	run := func(be backend.Backend) []float32 {
		qd := s.upload(be, q)
		var kt, vt backend.Tensor
		if fused {
			kt, vt = qd.parent.ColSlice(qw, qw+kw), qd.parent.ColSlice(qw+kw, qw+2*kw)
		} else {
			kt, vt = s.upload(be, k).view, s.upload(be, v).view
		}
		od := qd
		if !inPlace {
			od = s.upload(be, out)
		}
		be.Attention(od.view, qd.view, kt, vt, sc.caches[be], backend.Attn{
			Layer: layer, Pos: s.upload(be, po).view, Seq: s.upload(be, so).view, Blocks: sc.tables[be], Scale: scale,
		})
		return s.result(be, od)
	}
	got := run(s.be)
	var want []float32
	if s.ref != nil {
		want = run(s.ref)
	}
	// The host copy: every store first, then every read.
	for r, rs := range rows {
		key := [3]int{layer, rs[0], rs[1]}
		sc.keys[key], sc.values[key] = roundTo(spec.DType, kvRow(r, 0)), roundTo(spec.DType, kvRow(r, 1))
	}
	if checkRows <= 0 {
		return
	}
	// The rows to check: all, or a random sample of checkRows.
	check := s.rng.Perm(n)[:min(checkRows, n)]
	slices.Sort(check)
	if s.ref != nil {
		var sub []float32
		for _, r := range check {
			sub = append(sub, want[r*qw:(r+1)*qw]...)
		}
		want = sub
	} else {
		qv := q.values()
		for _, r := range check {
			rs := rows[r]
			var ks, vs [][]float32
			for p := 0; p <= rs[1]; p++ {
				key := [3]int{layer, rs[0], p}
				if _, ok := sc.keys[key]; !ok {
					s.t.Fatalf("conformance: scenario reads position %d of sequence %d before storing it", p, rs[0])
				}
				ks, vs = append(ks, sc.keys[key]), append(vs, sc.values[key])
			}
			want = append(want, refAttend(qv[r*qw:(r+1)*qw], ks, vs, hq, hkv, d, scale)...)
		}
	}
	var sub []float32
	for _, r := range check {
		sub = append(sub, got[r*qw:(r+1)*qw]...)
	}
	got = sub
	tol := TolF32
	if spec.DType != backend.F32 {
		tol = TolHalf
	}
	s.check(fmt.Sprintf("Attention layer %d, %d rows, Hq=%d Hkv=%d D=%d B=%d %v fused=%v in-place=%v", layer, n, hq, hkv, d, spec.BlockSize, spec.DType, fused, inPlace), got, want, tol)
}

// prefill stores positions [from, to) of every listed sequence in calls of
// up to chunk positions per sequence (all at once when chunk is 0), the
// rows of each call shuffled.
func (sc *attnScenario) prefill(layer int, lens []int, chunk, group int, checkRows int) {
	maxLen := 0
	for _, l := range lens {
		maxLen = max(maxLen, l)
	}
	if chunk <= 0 {
		chunk = maxLen
	}
	for c := 0; c < maxLen; c += chunk {
		var rows [][2]int
		for sq, l := range lens {
			for p := c; p < min(c+chunk, l); p++ {
				rows = append(rows, [2]int{sq, p})
			}
		}
		sc.s.rng.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
		sc.call(layer, rows, group, checkRows)
	}
}

// all checks every row of an Attention call.
const all = math.MaxInt

func testAttention(s *suite) {
	type scenario struct {
		hkv, dim, block int
		dt              backend.DType
		layers          int
		lens            []int // prompt lengths
		chunk           int   // prefill positions per sequence per call (0: all)
		prefillGroup    int
		decodeGroup     int
		decode          int // decode steps
		checkPrefill    int // prefill rows checked per call: long histories check a sample
		large           bool
	}
	scenarios := []scenario{
		{hkv: 2, dim: 64, block: 16, dt: backend.F32, layers: 2, lens: []int{5, 17}, prefillGroup: 1, decodeGroup: 2, decode: 3, checkPrefill: all},
		{hkv: 1, dim: 128, block: 32, dt: backend.F16, layers: 2, lens: []int{40}, chunk: 13, prefillGroup: 8, decodeGroup: 8, decode: 2, checkPrefill: all},
		{hkv: 4, dim: 48, block: 5, dt: backend.BF16, layers: 2, lens: []int{9, 1, 23}, prefillGroup: 2, decodeGroup: 2, decode: 3, checkPrefill: all},
		{hkv: 2, dim: 80, block: 16, dt: backend.F16, layers: 1, lens: []int{33, 6}, chunk: 8, prefillGroup: 4, decodeGroup: 4, decode: 2, checkPrefill: all},
		{hkv: 8, dim: 64, block: 8, dt: backend.F32, layers: 1, lens: []int{12, 3}, prefillGroup: 1, decodeGroup: 1, decode: 2, checkPrefill: all},
		{hkv: 2, dim: 128, block: 16, dt: backend.BF16, layers: 1, lens: []int{130}, prefillGroup: 4, decodeGroup: 4, decode: 1, checkPrefill: all},
		// Calls of < 64 rows against a 600-position history: a backend that
		// splits each row's history for decoding (and merges the splits)
		// sees rows with one split and rows with several in one call.
		{hkv: 2, dim: 64, block: 16, dt: backend.BF16, layers: 1, lens: []int{600, 20}, chunk: 30, prefillGroup: 2, decodeGroup: 4, decode: 2, checkPrefill: all},
		{hkv: 1, dim: 128, block: 16, dt: backend.F16, layers: 1, lens: []int{1030, 37}, chunk: 256, prefillGroup: 1, decodeGroup: 8, decode: 2, checkPrefill: 12, large: true},
		{hkv: 1, dim: 128, block: 16, dt: backend.F32, layers: 1, lens: []int{1100}, chunk: 550, prefillGroup: 1, decodeGroup: 4, decode: 1, checkPrefill: 12, large: true},
	}
	for _, sn := range scenarios {
		if sn.large && s.opt.Short {
			continue
		}
		spec := backend.KVSpec{Layers: sn.layers, KVHeads: sn.hkv, HeadDim: sn.dim, BlockSize: sn.block, DType: sn.dt}
		capacity := make([]int, len(sn.lens))
		for i, l := range sn.lens {
			capacity[i] = l + sn.decode
		}
		sc := s.newAttnScenario(spec, capacity)
		for l := 0; l < sn.layers; l++ {
			sc.prefill(l, sn.lens, sn.chunk, sn.prefillGroup, sn.checkPrefill)
		}
		for step := 0; step < sn.decode; step++ {
			for l := sn.layers - 1; l >= 0; l-- {
				rows := make([][2]int, len(sn.lens))
				for sq, ln := range sn.lens {
					rows[sq] = [2]int{sq, ln + step}
				}
				sc.call(l, rows, sn.decodeGroup, all)
			}
		}
	}
}

// testCopyKVBlock forks a sequence by copying its blocks (in every layer)
// and checks that the fork attends to the copied history and that writing
// the fork leaves the original alone.
func testCopyKVBlock(s *suite) {
	for _, dt := range []backend.DType{backend.F32, backend.F16, backend.BF16} {
		const prompt = 20
		spec := backend.KVSpec{Layers: 2, KVHeads: 2, HeadDim: 64, BlockSize: 8, DType: dt}
		// Sequence 1 gets its own blocks; its first positions come from
		// sequence 0 by copying.
		sc := s.newAttnScenario(spec, []int{prompt + 2, prompt + 2})
		for l := 0; l < spec.Layers; l++ {
			sc.prefill(l, []int{prompt}, 0, 2, 0)
		}
		for i := 0; i*spec.BlockSize < prompt; i++ {
			for _, be := range s.backends() {
				be.CopyKVBlock(sc.caches[be], int(sc.table[1][i]), int(sc.table[0][i]))
			}
		}
		for key, k := range sc.keys {
			if key[1] == 0 {
				fork := [3]int{key[0], 1, key[2]}
				sc.keys[fork], sc.values[fork] = k, sc.values[key]
			}
		}
		for step := 0; step < 2; step++ {
			for l := 0; l < spec.Layers; l++ {
				sc.call(l, [][2]int{{1, prompt + step}, {0, prompt + step}}, 2, all)
			}
		}
	}
}
