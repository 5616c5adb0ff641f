package vec

import (
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loomllm/loom/runtime/quant"
)

// TestDotTile checks DotTile against the float64 reference at shapes around
// its 3×4 and 4×8 (AVX-512) blocking, with and without AVX-512, that it writes nothing outside the tile, and (on the
// fast path and the generic one alike) that every element is bitwise what
// DotRows gives for the same pair: the canonical order that makes a
// matrix product batch invariant.
func TestDotTile(t *testing.T) {
	r := newRand(t)
	impls := []struct {
		name string
		tile func([]float32, int, []float32, int, int, []float32, int, int, int)
		rows func(dst, w []float32, stride int, x []float32)
	}{{"fast", DotTile, DotRows}, {"generic", DotTileGeneric, DotRowsGeneric}}
	if useAVX512 {
		// The same fast path without its AVX-512 blocks.
		avx2 := func(dst []float32, ldd int, x []float32, ldx, rows int, w []float32, ldw, cols, k int) {
			useAVX512 = false
			defer func() { useAVX512 = true }()
			DotTile(dst, ldd, x, ldx, rows, w, ldw, cols, k)
		}
		impls = append(impls, struct {
			name string
			tile func([]float32, int, []float32, int, int, []float32, int, int, int)
			rows func(dst, w []float32, stride int, x []float32)
		}{"fast without avx512", avx2, DotRows})
	} else {
		t.Log("no AVX-512 here: its DotTile blocks are not tested")
	}
	for _, k := range []int{0, 1, 5, 8, 9, 16, 31, 64, 65, 172, 300} {
		for _, rows := range []int{1, 2, 3, 4, 5, 7, 8, 9, 16} {
			for _, cols := range []int{1, 2, 3, 4, 5, 8, 9, 13, 16, 17} {
				ldx, ldw, ldd := k+r.IntN(4), k+r.IntN(4), cols+r.IntN(3)
				x := randF32(r, (rows-1)*ldx+k+1)[1:]
				w := randF32(r, (cols-1)*ldw+k+3)[3:]
				for _, im := range impls {
					dst := make([]float32, (rows-1)*ldd+cols+1)
					for i := range dst {
						dst[i] = 42
					}
					im.tile(dst, ldd, x, ldx, rows, w, ldw, cols, k)
					require.Equal(t, float32(42), dst[len(dst)-1], "%s wrote past dst", im.name)
					one := make([]float32, cols)
					for rr := range rows {
						for c := cols; c < ldd && rr < rows-1; c++ {
							require.Equal(t, float32(42), dst[rr*ldd+c], "%s wrote into the gap", im.name)
						}
						im.rows(one, w, ldw, x[rr*ldx:rr*ldx+k])
						for c := range cols {
							name := fmt.Sprintf("%s k=%d rows=%d cols=%d [%d][%d]", im.name, k, rows, cols, rr, c)
							want, abs := ref64(w[c*ldw:c*ldw+k], x[rr*ldx:rr*ldx+k])
							requireClose(t, name, k, dst[rr*ldd+c], want, abs)
							require.Equal(t, math.Float32bits(one[c]), math.Float32bits(dst[rr*ldd+c]), "%s: differs from DotRows", name)
						}
					}
				}
			}
		}
	}
}

// TestDotRowsCanonical: a row's sum does not depend on how many rows the
// call has or where the row falls in it.
func TestDotRowsCanonical(t *testing.T) {
	r := newRand(t)
	for _, n := range []int{3, 8, 40, 100, 1027} {
		w := randF32(r, 21*n)
		x := randF32(r, n)
		all := make([]float32, 21)
		DotRows(all, w, n, x)
		for lo := range 21 {
			for hi := lo + 1; hi <= 21; hi += 3 {
				part := make([]float32, hi-lo)
				DotRows(part, w[lo*n:], n, x)
				for i, v := range part {
					require.Equal(t, math.Float32bits(all[lo+i]), math.Float32bits(v), "n=%d rows [%d,%d) row %d", n, lo, hi, lo+i)
				}
			}
		}
	}
}

func TestAxpyRows(t *testing.T) {
	r := newRand(t)
	for _, n := range []int{1, 3, 7, 8, 9, 15, 16, 24, 31, 32, 33, 40, 64, 100, 128} {
		for _, m := range []int{0, 1, 2, 3, 4, 5, 7, 16, 33} {
			stride := n + r.IntN(4)
			v := randF32(r, max(m-1, 0)*stride+n+1)[1:]
			p := randF32(r, m)
			acc0 := randF32(r, n+1)
			for _, im := range []struct {
				name string
				f    func(acc, v []float32, stride int, p []float32)
			}{{"fast", AxpyRows}, {"generic", AxpyRowsGeneric}} {
				acc := append([]float32(nil), acc0...)
				im.f(acc[:n], v, stride, p)
				require.Equal(t, acc0[n], acc[n], "%s wrote past acc", im.name)
				for i := range n {
					want, abs := float64(acc0[i]), math.Abs(float64(acc0[i]))
					for tt := range m {
						want += float64(p[tt]) * float64(v[tt*stride+i])
						abs += math.Abs(float64(p[tt]) * float64(v[tt*stride+i]))
					}
					require.InDelta(t, want, float64(acc[i]), float64(m+2)*0x1p-24*abs, "%s n=%d m=%d i=%d", im.name, n, m, i)
				}
			}
		}
	}
}

// ulps returns the distance between two float32 values in units in the
// last place (0 for equal values and for two NaNs).
func ulps(a, b float32) int64 {
	if a != a && b != b {
		return 0
	}
	ia, ib := int64(int32(math.Float32bits(a))), int64(int32(math.Float32bits(b)))
	if ia < 0 {
		ia = math.MinInt32 - ia
	}
	if ib < 0 {
		ib = math.MinInt32 - ib
	}
	if ia > ib {
		return ia - ib
	}
	return ib - ia
}

// TestExp checks the scalar Exp and the vectorised one (through ExpSum
// with a leading 0, so that m = 0) against math.Exp.
func TestExp(t *testing.T) {
	r := newRand(t)
	var xs []float32
	for range 20000 {
		xs = append(xs, float32(r.Float64()*-90))
	}
	xs = append(xs, 0, -0.34657359, -87.33, -87.33654, -87.34, -100, -1e30, float32(math.Inf(-1)))
	for _, impl := range []struct {
		name string
		f    func([]float32, float32) (float32, float32)
	}{{"fast", ExpSum}, {"generic", ExpSumGeneric}} {
		for n := 1; n <= len(xs); n = n*2 + 1 { // every tail length on the way
			x := append([]float32{0}, xs[:n]...)
			m, sum := impl.f(x, 1)
			require.Equal(t, float32(0), m)
			var want float64
			for i, v := range append([]float32{0}, xs[:n]...) {
				e := float32(math.Exp(float64(v)))
				if v <= -87.33654 {
					e = 0
				}
				require.LessOrEqual(t, ulps(x[i], e), int64(2), "%s exp(%g) = %g, want %g", impl.name, v, x[i], e)
				want += float64(e)
			}
			require.InDelta(t, want, float64(sum), float64(n+2)*0x1p-24*want, "%s sum n=%d", impl.name, n)
		}
	}
	for _, v := range []float32{0, -0, 1, -1, 88.72, 88.7229, 88.73, 50, 88, 88.5, -87.33, -87.34, -100, 100} {
		want := float32(math.Exp(float64(v)))
		switch {
		case v > 88.72283:
			want = float32(math.Inf(1))
		case v <= -87.33654:
			want = 0
		}
		require.LessOrEqual(t, ulps(Exp(v), want), int64(2), "Exp(%g)", v)
	}
	require.True(t, isNaN(Exp(float32(math.NaN()))))
}

func TestExpSum(t *testing.T) {
	r := newRand(t)
	for _, n := range []int{0, 1, 2, 7, 8, 9, 16, 17, 100, 257} {
		x := randF32(r, n+1)
		for i := range x {
			x[i] *= 10
		}
		for _, scale := range []float32{1, 0.125, -0.5} {
			a, b := append([]float32(nil), x...), append([]float32(nil), x...)
			ma, sa := ExpSum(a[:n], scale)
			mb, sb := ExpSumGeneric(b[:n], scale)
			require.Equal(t, x[n], a[n], "wrote past x")
			require.Equal(t, ma, mb, "n=%d max", n)
			require.InDelta(t, float64(sb), float64(sa), 1e-6*float64(n+1), "n=%d sum", n)
			for i := range n {
				require.LessOrEqual(t, ulps(a[i], b[i]), int64(4), "n=%d x[%d]", n, i)
			}
		}
		if n > 0 {
			for _, at := range []int{0, n / 2, n - 1} {
				a := append([]float32(nil), x[:n]...)
				a[at] = float32(math.NaN())
				_, s := ExpSum(a, 1)
				require.True(t, isNaN(s), "n=%d NaN at %d: sum %v", n, at, s)
			}
		}
	}
	m, s := ExpSum(nil, 1)
	require.True(t, math.IsInf(float64(m), -1))
	require.Zero(t, s)
}

func TestActivations(t *testing.T) {
	r := newRand(t)
	special := []float32{0, -0, 1e-30, -1e-30, 10, -10, 80, -80, 87.5, -87.5, 88.8, -88.8, 100, -100, 1e30, -1e30,
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN())}
	for _, n := range []int{0, 1, 5, 8, 9, 16, 23, 100, 1000} {
		g := randF32(r, n+1)
		u := randF32(r, n+1)
		for i := range g {
			g[i] *= 4
		}
		if n >= len(special) {
			copy(g, special)
		}
		for _, c := range []struct {
			name          string
			fast, generic func(dst []float32)
		}{
			{"SwiGLU", func(d []float32) { SwiGLU(d, g, u) }, func(d []float32) { SwiGLUGeneric(d, g, u) }},
			{"GELU", func(d []float32) { GELU(d, g) }, func(d []float32) { GELUGeneric(d, g) }},
		} {
			a, b := make([]float32, n+1), make([]float32, n+1)
			a[n], b[n] = 42, 42
			c.fast(a[:n])
			c.generic(b[:n])
			require.Equal(t, float32(42), a[n], "%s wrote past dst", c.name)
			for i := range n {
				require.LessOrEqual(t, ulps(a[i], b[i]), int64(4), "%s n=%d x=%g: %g vs %g", c.name, n, g[i], a[i], b[i])
			}
		}
	}
	// In place.
	g := randF32(r, 37)
	want := make([]float32, 37)
	SwiGLU(want, g, g)
	SwiGLU(g, g, g)
	require.Equal(t, want, g)
}

// TestAttnBlocks runs several calls of several blocks through AttnBlocks
// (and its twin) and compares acc/l with a float64 softmax-weighted sum,
// for head sizes on and off the fast path and block lengths around its
// eight-key groups.
func TestAttnBlocks(t *testing.T) {
	r := newRand(t)
	for _, d := range []int{8, 12, 16, 48, 64, 128} {
		for _, nh := range []int{1, 2, 3} {
			// Calls, each a list of block lengths.
			for _, calls := range [][][]int{{{1}}, {{7}}, {{8}}, {{9}}, {{16, 16}, {5}}, {{3, 17, 0, 8}, {1}}, {{16, 4}, {16, 16, 16, 16}}} {
				total := 0
				for _, c := range calls {
					for _, nb := range c {
						total += nb
					}
				}
				k := randF32(r, total*d)
				v := randF32(r, total*d)
				q := randF32(r, nh*d)
				const scale = 0.3
				for _, im := range []struct {
					name string
					f    func(acc, m, l, q []float32, d int, ks, vs [][]float32, scale float32, sbuf []float32)
				}{{"fast", AttnBlocks}, {"generic", AttnBlocksGeneric}} {
					acc := make([]float32, nh*d+1)
					acc[nh*d] = 42
					m := make([]float32, nh)
					l := make([]float32, nh)
					for h := range m {
						m[h] = float32(math.Inf(-1))
					}
					t0 := 0
					for _, c := range calls {
						var ks, vs [][]float32
						n := 0
						for _, nb := range c {
							ks = append(ks, k[t0*d:(t0+nb)*d])
							vs = append(vs, v[t0*d:(t0+nb)*d])
							t0 += nb
							n += nb
						}
						sbuf := make([]float32, AttnScratch(nh, n))
						for i := range sbuf {
							sbuf[i] = float32(math.NaN()) // garbage in the padding must not matter
						}
						im.f(acc[:nh*d], m, l, q, d, ks, vs, scale, sbuf)
					}
					require.Equal(t, float32(42), acc[nh*d], "%s wrote past acc", im.name)
					for h := range nh {
						s := make([]float64, total)
						mx := math.Inf(-1)
						for tt := range total {
							var dot float64
							for i := range d {
								dot += float64(q[h*d+i]) * float64(k[tt*d+i])
							}
							s[tt] = scale * dot
							mx = math.Max(mx, s[tt])
						}
						var sum float64
						for tt := range s {
							s[tt] = math.Exp(s[tt] - mx)
							sum += s[tt]
						}
						name := fmt.Sprintf("%s d=%d nh=%d calls=%v", im.name, d, nh, calls)
						require.InDelta(t, mx, float64(m[h]), 1e-5*(1+math.Abs(mx)), "%s max", name)
						require.InDelta(t, sum, float64(l[h]), 1e-5*sum, "%s sum", name)
						for i := range d {
							var want float64
							for tt := range total {
								want += s[tt] * float64(v[tt*d+i])
							}
							require.InDelta(t, want/sum, float64(acc[h*d+i]/l[h]), 1e-5, "%s out[%d][%d]", name, h, i)
						}
					}
				}
			}
		}
	}
}

func TestArgMax(t *testing.T) {
	r := newRand(t)
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	cases := [][]float32{nil, {nan}, {nan, nan, nan}, {-inf}, {nan, -inf, -inf}, {1, 1, 1}, {0, -0.0, 0}, {nan, 2, nan, 2, 1}, {inf, nan, inf}}
	for _, n := range []int{1, 7, 8, 9, 31, 32, 33, 100, 1000, 32000} {
		x := randF32(r, n)
		cases = append(cases, x)
		y := append([]float32(nil), x...)
		y[r.IntN(n)] = 10
		y[r.IntN(n)] = 10
		y[r.IntN(n)] = nan
		cases = append(cases, y)
		z := make([]float32, n)
		for i := range z {
			z[i] = float32(r.IntN(3))
		}
		cases = append(cases, z)
	}
	for _, x := range cases {
		wi, wm := ArgMaxGeneric(x)
		gi, gm := ArgMax(x)
		require.Equal(t, wi, gi, "%v", x)
		if wi >= 0 {
			require.Equal(t, wm, gm)
			for _, v := range x[:wi] {
				require.False(t, v >= wm)
			}
		}
	}
}

// TestDotRowsHalf: F16 and BF16 rows give bitwise what DotRows gives for
// the rows widened (fast and generic paths alike), whatever the number of
// rows and where a row falls among them.
func TestDotRowsHalf(t *testing.T) {
	r := newRand(t)
	for _, bf := range []bool{false, true} {
		for _, n := range []int{8, 16, 24, 32, 40, 96, 264, 4096} {
			for _, rows := range []int{1, 3, 8, 9, 21} {
				stride := n + 8*r.IntN(3)
				v := randF32(r, (rows-1)*stride+n)
				w := make([]byte, 2*len(v))
				wide := make([]float32, len(v))
				if bf {
					quant.EncodeBF16(w, v)
					WidenBF16(wide, w)
				} else {
					quant.EncodeF16(w, v)
					WidenF16(wide, w)
				}
				x := randF32(r, n)
				for _, im := range []struct {
					name string
					h    func(dst []float32, w []byte, stride int, x []float32)
					f    func(dst, w []float32, stride int, x []float32)
				}{
					{"fast", map[bool]func([]float32, []byte, int, []float32){false: DotRowsF16, true: DotRowsBF16}[bf], DotRows},
					{"generic", map[bool]func([]float32, []byte, int, []float32){false: DotRowsF16Generic, true: DotRowsBF16Generic}[bf], DotRowsGeneric},
				} {
					got, want := make([]float32, rows), make([]float32, rows)
					im.h(got, w, stride, x)
					im.f(want, wide, stride, x)
					for i := range got {
						require.Equal(t, math.Float32bits(want[i]), math.Float32bits(got[i]), "%s bf16=%v n=%d rows=%d row %d", im.name, bf, n, rows, i)
					}
				}
			}
		}
	}
	require.Panics(t, func() { DotRowsF16(make([]float32, 1), make([]byte, 20), 10, make([]float32, 10)) })
}
