package quant

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loomllm/loom/runtime/backend"
)

// q4kRef evaluates element i of a Q4_K block straight from the format's
// description, by index rather than by walking pointers.
func q4kRef(blk []byte, i int) float32 {
	d := F16ToF32(binary.LittleEndian.Uint16(blk))
	dmin := F16ToF32(binary.LittleEndian.Uint16(blk[2:]))
	s := blk[4:16]
	j := i / 32 // sub-block
	var sc, m int
	if j < 4 {
		sc, m = int(s[j]&63), int(s[j+4]&63)
	} else {
		sc = int(s[j+4]&15) + int(s[j-4]>>6)*16
		m = int(s[j+4]>>4) + int(s[j]>>6)*16
	}
	byteIdx := 32*(i/64) + i%32
	q := int(blk[16+byteIdx] & 15)
	if i%64 >= 32 {
		q = int(blk[16+byteIdx] >> 4)
	}
	return float32(d*float32(sc)*float32(q)) - dmin*float32(m)
}

// q6kRef evaluates element i of a Q6_K block from the format's description.
func q6kRef(blk []byte, i int) float32 {
	h, e := i/128, i%128
	l, quarter := e%32, e/32 // quarter 0..3 picks the nibble and the qh bit pair
	lowByte := blk[64*h+l+32*(quarter%2)]
	low := int(lowByte & 15)
	if quarter >= 2 {
		low = int(lowByte >> 4)
	}
	high := int(blk[128+32*h+l]>>(2*quarter)) & 3
	q := low + 16*high - 32
	sc := int8(blk[192+i/16])
	d := F16ToF32(binary.LittleEndian.Uint16(blk[208:]))
	return float32(d*float32(sc)) * float32(q)
}

func randomBlocks(r *rand.Rand, n, size int) []byte {
	b := make([]byte, n*size)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestDequantizeKAgainstDescription(t *testing.T) {
	r := rand.New(rand.NewPCG(rand.Uint64(), 3))
	const n = 4
	q4 := randomBlocks(r, n, blockQ4_K)
	q6 := randomBlocks(r, n, blockQ6_K)
	for b := 0; b < n; b++ {
		binary.LittleEndian.PutUint16(q4[b*blockQ4_K:], F32ToF16(r.Float32()))
		binary.LittleEndian.PutUint16(q4[b*blockQ4_K+2:], F32ToF16(r.Float32()))
		binary.LittleEndian.PutUint16(q6[b*blockQ6_K+208:], F32ToF16(r.Float32()/100))
	}
	y4 := make([]float32, n*QK_K)
	y6 := make([]float32, n*QK_K)
	DequantizeQ4_K(y4, q4)
	DequantizeQ6_K(y6, q6)
	for i := range y4 {
		b := i / QK_K
		require.Equal(t, q4kRef(q4[b*blockQ4_K:], i%QK_K), y4[i], "q4_k element %d", i)
		require.Equal(t, q6kRef(q6[b*blockQ6_K:], i%QK_K), y6[i], "q6_k element %d", i)
	}
}

// TestKnownBlock decodes hand-built blocks with values worked out by hand.
func TestKnownBlock(t *testing.T) {
	q4 := make([]byte, blockQ4_K)
	binary.LittleEndian.PutUint16(q4, F32ToF16(0.5))   // d
	binary.LittleEndian.PutUint16(q4[2:], F32ToF16(2)) // dmin
	q4[4+0] = 3                                        // sub-block 0: scale 3
	q4[4+4] = 1                                        // sub-block 0: min 1
	q4[4+8+1] = 0x2 | 0x1<<4                           // sub-block 5: scale low nibble 2, min low nibble 1
	q4[4+1] = 1 << 6                                   // sub-block 5: scale high bits 1 → scale 18
	q4[16+0] = 7 | 9<<4                                // element 0 (q 7), element 32 (q 9)
	q4[16+32+5] = 4 << 4                               // element 64+32+5 = 101 (sub-block 3): q 4, scale 0 min 0
	q4[16+64+3] = 11 << 4                              // element 128+32+3 = 163 (sub-block 5): q 11
	y := make([]float32, QK_K)
	DequantizeQ4_K(y, q4)
	require.Equal(t, float32(0.5*3*7-2*1), y[0])
	require.Equal(t, float32(0), y[32])  // sub-block 1: scale 0, min 0
	require.Equal(t, float32(0), y[101]) // scale 0
	require.Equal(t, float32(0.5*18*11-2*1), y[163])

	q6 := make([]byte, blockQ6_K)
	binary.LittleEndian.PutUint16(q6[208:], F32ToF16(0.25))
	q6[192+0] = 2            // scale of elements 0..15
	q6[192+9] = byte(0xFD)   // -3: elements 144..159
	q6[0] = 0x5              // element 0: low 5
	q6[128] = 0x2            // element 0: high 2 → q = 5+32-32 = 5
	q6[64+17+32] = 0xF0      // second half, element 128+17+96 = 241: low 15
	q6[128+32+17] = 0x3 << 6 // high 3 → q = 15+48-32 = 31
	q6[64+16] = 0x0          // element 128+16 = 144: q = 0-32
	DequantizeQ6_K(y, q6)
	require.Equal(t, float32(0.25*2*5), y[0])
	require.Equal(t, float32(0.25*-3*-32), y[144])
	require.Equal(t, float32(0), y[241]) // its scale (sub-block 15) is 0
	q6[192+15] = 1
	DequantizeQ6_K(y, q6)
	require.Equal(t, float32(0.25*31), y[241])
}

func rmsRelErr(a, b []float32) float64 {
	var d, n float64
	for i := range a {
		d += float64(a[i]-b[i]) * float64(a[i]-b[i])
		n += float64(a[i]) * float64(a[i])
	}
	return math.Sqrt(d / n)
}

func TestQuantizeKRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(rand.Uint64(), 4))
	x := make([]float32, 8*QK_K)
	for i := range x {
		x[i] = float32(r.NormFloat64()) * 0.02
	}
	x[5] = 0.3 // an outlier
	for _, c := range []struct {
		dt     backend.DType
		maxErr float64
	}{{backend.Q4_K, 0.12}, {backend.Q6_K, 0.04}} {
		q := make([]byte, len(x)/QK_K*c.dt.BlockBytes())
		if c.dt == backend.Q4_K {
			QuantizeQ4_K(q, x)
		} else {
			QuantizeQ6_K(q, x)
		}
		y := make([]float32, len(x))
		require.NoError(t, Dequantize(c.dt, y, q))
		e := rmsRelErr(x, y)
		require.Less(t, e, c.maxErr, "%v", c.dt)
		require.Greater(t, e, 0.0)

		q8, err := RequantizeQ8_0(c.dt, 2, len(x)/2, q)
		require.NoError(t, err)
		want := make([]byte, len(x)/32*34)
		QuantizeQ8_0(want, y)
		require.Equal(t, want, q8)
	}
	// Zero input quantizes to zero without NaN.
	z := make([]float32, QK_K)
	q := make([]byte, blockQ4_K)
	QuantizeQ4_K(q, z)
	y := make([]float32, QK_K)
	DequantizeQ4_K(y, q)
	require.Equal(t, z, y)
	q6 := make([]byte, blockQ6_K)
	QuantizeQ6_K(q6, z)
	DequantizeQ6_K(y, q6)
	require.Equal(t, z, y)
}

func TestRequantizeErrors(t *testing.T) {
	_, err := RequantizeQ8_0(backend.Q4_K, 1, 100, make([]byte, 1000))
	require.ErrorIs(t, err, backend.ErrShape)
	_, err = RequantizeQ8_0(backend.Q6_K, 2, 256, make([]byte, 300))
	require.Error(t, err)
	require.Error(t, Dequantize(backend.Q4_K, make([]float32, 256), make([]byte, 10)))
	out, err := RequantizeQ8_0(backend.F16, 1, 32, make([]byte, 64))
	require.NoError(t, err)
	require.Len(t, out, 34)
}

func BenchmarkDequantizeK(b *testing.B) {
	for _, dt := range []backend.DType{backend.Q4_K, backend.Q6_K} {
		b.Run(dt.String(), func(b *testing.B) {
			const n = 1 << 16
			src := make([]byte, n/QK_K*dt.BlockBytes())
			dst := make([]float32, n)
			b.SetBytes(int64(len(src)))
			for i := 0; i < b.N; i++ {
				Dequantize(dt, dst, src)
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "Gelem/s")
		})
	}
}
