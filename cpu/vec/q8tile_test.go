package vec

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loomllm/loom/runtime/quant"
)

// randQ4_0Rows returns rows Q4_0 rows of nb blocks, ldw bytes apart.
func randQ4_0Rows(r *rand.Rand, rows, nb, ldw int) []byte {
	w := make([]byte, (rows-1)*ldw+nb*Q4_0BlockBytes)
	for i := range w {
		w[i] = byte(r.Uint32())
	}
	for row := range rows {
		for b := range nb {
			o := row*ldw + b*Q4_0BlockBytes
			binary.LittleEndian.PutUint16(w[o:], quant.F32ToF16((r.Float32()-0.5)/8))
		}
	}
	return w
}

// randQ8_0Rows returns rows Q8_0 rows of nb blocks, ldw bytes apart, with
// every int8 value (-128 included) and scales of both signs.
func randQ8_0Rows(r *rand.Rand, rows, nb, ldw int) []byte {
	w := make([]byte, (rows-1)*ldw+nb*Q8_0BlockBytes)
	for i := range w {
		w[i] = byte(r.Uint32())
	}
	for row := range rows {
		for b := range nb {
			o := row*ldw + b*Q8_0BlockBytes
			binary.LittleEndian.PutUint16(w[o:], quant.F32ToF16((r.Float32()-0.5)/64))
		}
	}
	return w
}

// TestDotTileQ8_0Q8: every element bitwise what DotQ8_0Q8 gives for the
// pair (NaN where it gives NaN), nothing written outside the tile, at
// shapes around the 4×3 blocking and odd block counts.
func TestDotTileQ8_0Q8(t *testing.T) {
	r := newRand(t)
	same := func(a, b float32) bool {
		return math.Float32bits(a) == math.Float32bits(b) || (a != a && b != b)
	}
	if !useVNNI {
		t.Log("no AVX512-VNNI here: the tile is the pair-by-pair loop")
	}
	for _, q4 := range []bool{false, true} {
		for _, nb := range []int{1, 2, 3, 8, 9} {
			for _, rows := range []int{1, 3, 4, 5, 8, 9} {
				for _, cols := range []int{1, 2, 3, 4, 6, 7} {
					ldq := nb * QK
					ldw := nb*Q8_0BlockBytes + r.IntN(3)
					ldd := cols + r.IntN(3)
					w := randQ8_0Rows(r, cols, nb, ldw)
					if q4 {
						ldw = nb*Q4_0BlockBytes + r.IntN(3)
						w = randQ4_0Rows(r, cols, nb, ldw)
					}
					bb := Q8_0BlockBytes
					if q4 {
						bb = Q4_0BlockBytes
					}
					x := randF32(r, rows*ldq)
					if rows > 2 {
						x[2*ldq+5] = float32(math.Inf(1)) // row 2: a NaN scale
					}
					q, d := make([]int8, rows*ldq), make([]float32, rows*nb)
					for row := range rows {
						QuantizeQ8(q[row*ldq:(row+1)*ldq], d[row*nb:(row+1)*nb], x[row*ldq:(row+1)*ldq])
					}
					impls := []struct {
						name string
						tile func([]float32, int, []byte, int, int, []int8, []float32, int, int)
						pair func([]byte, []int8, []float32) float32
					}{{"fast", DotTileQ8_0Q8, DotQ8_0Q8}, {"generic", DotTileQ8_0Q8Generic, DotQ8_0Q8Generic}}
					if q4 {
						impls[0].tile, impls[0].pair = DotTileQ4_0Q8, DotQ4_0Q8
						impls[1].tile, impls[1].pair = DotTileQ4_0Q8Generic, DotQ4_0Q8Generic
					}
					for _, im := range impls {
						dst := make([]float32, (rows-1)*ldd+cols+1)
						for i := range dst {
							dst[i] = 42
						}
						im.tile(dst, ldd, w, ldw, cols, q, d, ldq, rows)
						require.Equal(t, float32(42), dst[len(dst)-1], "%s wrote past dst", im.name)
						for row := range rows {
							for c := range cols {
								want := im.pair(w[c*ldw:c*ldw+nb*bb], q[row*ldq:(row+1)*ldq], d[row*nb:(row+1)*nb])
								got := dst[row*ldd+c]
								require.True(t, same(want, got), "%s q4=%v nb=%d rows=%d cols=%d [%d][%d]: %v, pair gives %v",
									im.name, q4, nb, rows, cols, row, c, got, want)
							}
							for c := cols; c < ldd && row < rows-1; c++ {
								require.Equal(t, float32(42), dst[row*ldd+c], "%s wrote into the gap", im.name)
							}
						}
					}
				}
			}
		}
	}
}

// BenchmarkDotTileQ8_0Q8: 8 activation rows against 64 Q8_0 weight rows
// of 4096, tiled against pair by pair.
func BenchmarkDotTileQ8_0Q8(b *testing.B) {
	r := newRand(b)
	const rows, cols, n = 8, 64, 4096
	nb := n / QK
	w := randQ8_0Rows(r, cols, nb, nb*Q8_0BlockBytes)
	x := randF32(r, rows*n)
	q, d := make([]int8, rows*n), make([]float32, rows*nb)
	QuantizeQ8(q, d, x)
	dst := make([]float32, rows*cols)
	for _, im := range []struct {
		name string
		f    func()
	}{
		{"tile", func() { DotTileQ8_0Q8(dst, cols, w, nb*Q8_0BlockBytes, cols, q, d, n, rows) }},
		{"pairs", func() {
			for row := range rows {
				for c := range cols {
					dst[row*cols+c] = DotQ8_0Q8(w[c*nb*Q8_0BlockBytes:(c+1)*nb*Q8_0BlockBytes], q[row*n:(row+1)*n], d[row*nb:(row+1)*nb])
				}
			}
		}},
	} {
		b.Run(fmt.Sprintf("%s/rows=%d/cols=%d/k=%d", im.name, rows, cols, n), func(b *testing.B) {
			for b.Loop() {
				im.f()
			}
			b.ReportMetric(2*float64(rows*cols*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
