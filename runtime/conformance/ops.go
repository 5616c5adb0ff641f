package conformance

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/loomllm/loom/runtime/backend"
	"github.com/loomllm/loom/runtime/quant"
	"github.com/stretchr/testify/require"
)

// weightTypes returns the weight types the suite tests: those the backend
// under test (and the reference backend, if any) accepts.
func (s *suite) weightTypes() []backend.DType {
	var dts []backend.DType
	for _, dt := range []backend.DType{backend.F32, backend.F16, backend.BF16, backend.Q8_0, backend.Q4_0, backend.Q2_K, backend.Q3_K, backend.Q4_K, backend.Q5_K, backend.Q6_K, backend.IQ4_NL, backend.IQ4_XS} {
		if s.be.SupportsWeights(dt) && (s.ref == nil || s.ref.SupportsWeights(dt)) {
			dts = append(dts, dt)
		}
	}
	return dts
}

// roundCols rounds cols up to a whole number of dt's blocks.
func roundCols(dt backend.DType, cols int) int {
	be := dt.BlockElems()
	return (cols + be - 1) / be * be
}

// uploadWeights puts weights on be: uploaded, or used in place through
// backend.HostMapper when mapped is set and be implements it.
func (s *suite) uploadWeights(be backend.Backend, o *operand, mapped bool) backend.Tensor {
	s.t.Helper()
	if hm, ok := be.(backend.HostMapper); ok && mapped {
		t, err := hm.MapHost(o.dt, o.rows, o.cols, o.raw)
		require.NoError(s.t, err, "%s: MapHost", be.Name())
		s.t.Cleanup(func() { be.Free(t) })
		return t
	}
	return s.upload(be, o).view
}

func testMemory(s *suite) {
	types := []backend.DType{backend.F32, backend.F16, backend.BF16, backend.I32}
	for _, dt := range []backend.DType{backend.Q8_0, backend.Q4_0, backend.Q2_K, backend.Q3_K, backend.Q4_K, backend.Q5_K, backend.Q6_K, backend.IQ4_NL, backend.IQ4_XS} {
		if s.be.SupportsWeights(dt) {
			types = append(types, dt)
		}
	}
	mr, _ := s.be.(backend.MemoryReporter)
	for _, dt := range types {
		rows, cols := 1+s.rng.IntN(9), roundCols(dt, 1+s.rng.IntN(100))
		var before int64
		if mr != nil {
			before, _ = mr.Memory()
		}
		tn, err := s.be.Alloc(dt, rows, cols)
		require.NoError(s.t, err, "Alloc %d×%d %v", rows, cols, dt)
		require.Equal(s.t, dt, tn.DType())
		require.Equal(s.t, rows, tn.Rows())
		require.Equal(s.t, cols, tn.Cols())
		require.True(s.t, tn.Contiguous())
		src := make([]byte, tn.Bytes())
		for i := range src {
			src[i] = byte(s.rng.Uint32())
		}
		require.NoError(s.t, s.be.Upload(tn, src))
		got := make([]byte, len(src))
		require.NoError(s.t, s.be.Download(got, tn))
		require.Equal(s.t, src, got, "%v round trip", dt)

		// Row and column views download their own elements.
		r0, r1 := s.rng.IntN(rows), rows
		rb := tn.RowBytes()
		got = make([]byte, (r1-r0)*rb)
		require.NoError(s.t, s.be.Download(got, tn.Slice(r0, r1)))
		require.Equal(s.t, src[r0*rb:r1*rb], got, "%v rows [%d, %d)", dt, r0, r1)
		if dt == backend.F32 || dt == backend.I32 {
			c0 := s.rng.IntN(cols)
			c1 := c0 + 1 + s.rng.IntN(cols-c0)
			got = make([]byte, rows*(c1-c0)*4)
			require.NoError(s.t, s.be.Download(got, tn.ColSlice(c0, c1)))
			for r := 0; r < rows; r++ {
				require.Equal(s.t, src[r*rb+4*c0:r*rb+4*c1], got[r*(c1-c0)*4:(r+1)*(c1-c0)*4], "%v columns [%d, %d) row %d", dt, c0, c1, r)
			}
		}
		if mr != nil {
			used, free := mr.Memory()
			require.GreaterOrEqual(s.t, used, before, "Memory after Alloc")
			require.GreaterOrEqual(s.t, free, int64(-1))
		}
		s.be.Free(tn)
		if mr != nil {
			after, _ := mr.Memory()
			require.LessOrEqual(s.t, after, before+int64(len(src)), "Memory after Free")
		}
	}
}

func testMatMul(s *suite) {
	type shape struct{ n, in, out int }
	shapes := []shape{{1, 67, 5}, {1, 256, 131}, {2, 96, 33}, {5, 160, 67}, {9, 320, 70}, {33, 64, 257}, {1, 1, 1}, {130, 256, 200}}
	if !s.opt.Short {
		shapes = append(shapes, shape{1, 4096, 4096}, shape{64, 4096, 160})
	}
	// 5..8 rows with an inner size that is not a multiple of 8: a backend
	// that sends aligned 16-bit weights to a matrix-matrix path from 5 rows
	// still keeps a vector path for these (and for F32 and quantized
	// weights); {5, 160, 67} above covers the aligned case.
	shapes = append(shapes, shape{7, 83, 45})
	for _, dt := range s.weightTypes() {
		for i, sh := range shapes {
			in, out := roundCols(dt, sh.in), sh.out
			if dt.Quantized() && sh.n*out < 16 {
				// A backend may quantize the activations for quantized
				// weights (as llama.cpp does), an error of about 0.4% of
				// each product's typical size; the relative error of a
				// norm over fewer than 16 outputs would be dominated by
				// the outputs that happen to cancel to near zero.
				out = 16
			}
			sh := shape{sh.n, in, out}
			strided, mapped := i%2 == 1, i%3 == 2
			s.t.Run(fmt.Sprintf("%v/n=%d,in=%d,out=%d", dt, sh.n, in, sh.out), func(t *testing.T) {
				s := s.sub(t)
				x := s.uniform(sh.n, in, -1, 1, strided)
				w := s.weights(dt, sh.out, in)
				dst := s.poisoned(sh.n, sh.out, strided)
				got, want := s.compare(func(be backend.Backend) []float32 {
					xd, wt, dd := s.upload(be, x), s.uploadWeights(be, w, mapped), s.upload(be, dst)
					be.MatMul(dd.view, xd.view, wt)
					return s.result(be, dd)
				}, func() []float32 { return refMatMul(x.values(), w.values(), sh.n, in, sh.out) })
				s.check("MatMul", got, want, Tolerance(dt))
			})
		}
	}
}

func testEmbed(s *suite) {
	types := s.weightTypes()
	for i, dt := range append(types, backend.F32) {
		activation := i == len(types) // the last round gathers from a strided F32 activation
		for _, n := range []int{1, 4, 9} {
			vocab, d := 3+s.rng.IntN(40), roundCols(dt, 1+s.rng.IntN(100))
			var table *operand
			if activation {
				table = s.uniform(vocab, d, -2, 2, true)
			} else {
				table = s.weights(dt, vocab, d)
			}
			ids := make([]int32, n)
			for i := range ids {
				ids[i] = int32(s.rng.IntN(vocab))
			}
			if n > 1 {
				ids[n-1] = ids[0] // repeated ids
			}
			ido := ints32(ids)
			dst := s.poisoned(n, d, n == 4)
			got, want := s.compare(func(be backend.Backend) []float32 {
				td, id, dd := s.upload(be, table), s.upload(be, ido), s.upload(be, dst)
				be.Embed(dd.view, td.view, id.view)
				return s.result(be, dd)
			}, func() []float32 {
				tv := table.values()
				var out []float32
				for _, id := range ids {
					out = append(out, tv[int(id)*d:int(id+1)*d]...)
				}
				return out
			})
			s.check(fmt.Sprintf("Embed %v table %d×%d, n=%d", dt, vocab, d, n), got, want, 0)
		}
	}
}

// unary is a case of an element-wise operation: shape, strides, in place.
type unary struct {
	n, d             int
	strided, inPlace bool
}

func (s *suite) unaryCases() []unary {
	c := []unary{{1, 1, false, false}, {1, 67, true, false}, {3, 129, false, true}, {7, 1000, true, true}, {16, 33, false, false}}
	if !s.opt.Short {
		c = append(c, unary{1, 14336, false, false}, unary{64, 4096, true, false})
	}
	return c
}

// runUnary runs op (dst, x) on an input drawn from [lo, hi) and checks it
// against ref.
func (s *suite) runUnary(name string, lo, hi float32, op func(be backend.Backend, dst, x backend.Tensor), ref func(x []float32) []float32) {
	for _, c := range s.unaryCases() {
		x := s.uniform(c.n, c.d, lo, hi, c.strided)
		dst := s.poisoned(c.n, c.d, c.strided)
		got, want := s.compare(func(be backend.Backend) []float32 {
			xd := s.upload(be, x)
			if c.inPlace {
				op(be, xd.view, xd.view)
				return s.result(be, xd)
			}
			dd := s.upload(be, dst)
			op(be, dd.view, xd.view)
			return s.result(be, dd)
		}, func() []float32 { return ref(x.values()) })
		s.check(fmt.Sprintf("%s %d×%d strided=%v in-place=%v", name, c.n, c.d, c.strided, c.inPlace), got, want, TolF32)
	}
}

func testGELU(s *suite) {
	s.runUnary("GELU", -6, 6, func(be backend.Backend, dst, x backend.Tensor) { be.GELU(dst, x) }, refGELU)
}

func testCopy(s *suite) {
	s.runUnary("Copy", -1e6, 1e6, func(be backend.Backend, dst, x backend.Tensor) { be.Copy(dst, x) }, func(x []float32) []float32 { return x })
}

func testSwiGLU(s *suite) {
	for _, c := range s.unaryCases() {
		gate, up := s.uniform(c.n, c.d, -10, 10, c.strided), s.uniform(c.n, c.d, -2, 2, false)
		dst := s.poisoned(c.n, c.d, !c.strided)
		got, want := s.compare(func(be backend.Backend) []float32 {
			gd, ud := s.upload(be, gate), s.upload(be, up)
			if c.inPlace {
				be.SwiGLU(gd.view, gd.view, ud.view)
				return s.result(be, gd)
			}
			dd := s.upload(be, dst)
			be.SwiGLU(dd.view, gd.view, ud.view)
			return s.result(be, dd)
		}, func() []float32 { return refSwiGLU(gate.values(), up.values()) })
		s.check(fmt.Sprintf("SwiGLU %d×%d", c.n, c.d), got, want, TolF32)
	}
}

func testAdd(s *suite) {
	for i, c := range s.unaryCases() {
		broadcast := i%2 == 1 && c.n > 1
		bn := c.n
		if broadcast {
			bn = 1
		}
		a, b := s.uniform(c.n, c.d, -3, 3, c.strided), s.uniform(bn, c.d, -3, 3, i%3 == 0)
		dst := s.poisoned(c.n, c.d, i%2 == 0)
		got, want := s.compare(func(be backend.Backend) []float32 {
			ad, bd := s.upload(be, a), s.upload(be, b)
			if c.inPlace {
				be.Add(ad.view, ad.view, bd.view)
				return s.result(be, ad)
			}
			dd := s.upload(be, dst)
			be.Add(dd.view, ad.view, bd.view)
			return s.result(be, dd)
		}, func() []float32 { return refAdd(a.values(), b.values(), c.n, c.d) })
		s.check(fmt.Sprintf("Add %d×%d broadcast=%v", c.n, c.d, broadcast), got, want, TolF32)
	}
}

// testNorm checks RMSNorm (layer false) or LayerNorm.
func testNorm(s *suite, layer bool) {
	for _, c := range s.unaryCases() {
		eps := oneOf(s, float32(1e-5), 1e-6)
		// An offset makes LayerNorm's mean matter; a tiny row checks eps.
		x := s.uniform(c.n, c.d, 0.5, 4, c.strided)
		if c.d == 1 {
			x = s.uniform(c.n, c.d, -1e-3, 1e-3, c.strided)
		}
		w, b := s.uniform(1, c.d, -2, 2, false), s.uniform(1, c.d, -1, 1, false)
		dst := s.poisoned(c.n, c.d, c.strided)
		got, want := s.compare(func(be backend.Backend) []float32 {
			xd, wd, bd := s.upload(be, x), s.upload(be, w), s.upload(be, b)
			out := xd
			if !c.inPlace {
				out = s.upload(be, dst)
			}
			if layer {
				be.LayerNorm(out.view, xd.view, wd.view, bd.view, eps)
			} else {
				be.RMSNorm(out.view, xd.view, wd.view, eps)
			}
			return s.result(be, out)
		}, func() []float32 {
			if layer {
				return refLayerNorm(x.values(), w.values(), b.values(), c.n, c.d, eps)
			}
			return refRMSNorm(x.values(), w.values(), c.n, c.d, eps)
		})
		s.check(fmt.Sprintf("norm %d×%d in-place=%v", c.n, c.d, c.inPlace), got, want, TolF32)
	}
}

func testRMSNorm(s *suite)   { testNorm(s, false) }
func testLayerNorm(s *suite) { testNorm(s, true) }

func testRoPE(s *suite) {
	type shape struct{ n, heads, headDim, half int }
	shapes := []shape{{1, 1, 2, 1}, {1, 8, 64, 32}, {5, 3, 128, 64}, {4, 2, 80, 20}, {16, 5, 48, 24}, {3, 4, 6, 2}}
	if !s.opt.Short {
		shapes = append(shapes, shape{64, 32, 128, 64})
	}
	for i, sh := range shapes {
		for _, neox := range []bool{false, true} {
			d := sh.heads * sh.headDim
			strided, inPlace := i%2 == 1, i%3 == 0
			x := s.uniform(sh.n, d, -2, 2, strided)
			base := oneOf(s, 10000.0, 500000.0)
			freqs := newOperand(backend.F32, 1, sh.half, 0, 0)
			fv := quant.BytesF32(freqs.raw)
			for j := range fv {
				fv[j] = float32(math.Pow(base, -2*float64(j)/float64(2*sh.half)))
			}
			pos := make([]int32, sh.n)
			for j := range pos {
				pos[j] = int32(s.rng.IntN(8192))
			}
			po := ints32(pos)
			dst := s.poisoned(sh.n, d, !strided)
			got, want := s.compare(func(be backend.Backend) []float32 {
				xd, pd, fd := s.upload(be, x), s.upload(be, po), s.upload(be, freqs)
				out := xd
				if !inPlace {
					out = s.upload(be, dst)
				}
				be.RoPE(out.view, xd.view, pd.view, fd.view, sh.headDim, neox)
				return s.result(be, out)
			}, func() []float32 { return refRoPE(x.values(), pos, fv, sh.n, d, sh.headDim, neox) })
			s.check(fmt.Sprintf("RoPE n=%d heads=%d headDim=%d half=%d neox=%v", sh.n, sh.heads, sh.headDim, sh.half, neox), got, want, TolF32)
		}
	}
}

func testArgMax(s *suite) {
	am, ok := s.be.(backend.ArgMaxer)
	if !ok {
		s.t.Skipf("%s does not implement backend.ArgMaxer", s.be.Name())
	}
	sizes := []int{1, 7, 32, 50257}
	if !s.opt.Short {
		sizes = append(sizes, 128256)
	}
	for _, cols := range sizes {
		for _, n := range []int{1, 3} {
			x := s.uniform(n, cols, -30, 30, n == 3)
			v := quant.BytesF32(x.raw)
			want := make([]int32, n)
			for r := 0; r < n; r++ {
				row := v[r*(cols+x.pad)+x.off : r*(cols+x.pad)+x.off+cols]
				if cols > 2 && r != 1 { // a tie: the smaller index wins
					i, j := s.rng.IntN(cols), s.rng.IntN(cols)
					row[i], row[j] = 31, 31
				}
				want[r] = int32(slices.Index(row, slices.Max(row)))
			}
			xd := s.upload(s.be, x)
			dst := ints32(make([]int32, n))
			for i := range dst.raw {
				dst.raw[i] = 0xff
			}
			dd := s.upload(s.be, dst)
			am.ArgMax(dd.view, xd.view)
			raw := make([]byte, 4*n)
			require.NoError(s.t, s.be.Download(raw, dd.view))
			require.True(s.t, bytes.Equal(quant.I32Bytes(want), raw), "%s: ArgMax of %d×%d: got %v, want %v", s.be.Name(), n, cols, quant.BytesI32(raw), want)
		}
	}
}
