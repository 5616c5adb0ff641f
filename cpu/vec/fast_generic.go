//go:build !amd64 || purego

package vec

var features = "generic"

// useAVX512 and useVNNI are never set here (see fast_amd64.go).
var useAVX512, useVNNI = false, false

func dot(a, b []float32) float32            { return DotGeneric(a, b) }
func dotF16(w []byte, x []float32) float32  { return DotF16Generic(w, x) }
func dotBF16(w []byte, x []float32) float32 { return DotBF16Generic(w, x) }
func dotQ8_0(w []byte, x []float32) float32 { return DotQ8_0Generic(w, x) }
func dotQ4_0(w []byte, x []float32) float32 { return DotQ4_0Generic(w, x) }
func axpy(a float32, x, y []float32)        { AxpyGeneric(a, x, y) }

func dotQ8_0Q8(w []byte, q []int8, d []float32) float32 { return DotQ8_0Q8Generic(w, q, d) }
func dotQ4_0Q8(w []byte, q []int8, d []float32) float32 { return DotQ4_0Q8Generic(w, q, d) }
func quantizeQ8(q []int8, d []float32, x []float32)     { QuantizeQ8Generic(q, d, x) }
func dotRows(dst, w []float32, stride int, x []float32) { DotRowsGeneric(dst, w, stride, x) }
func widenF16(dst []float32, src []byte)                { WidenF16Generic(dst, src) }
func widenBF16(dst []float32, src []byte)               { WidenBF16Generic(dst, src) }
func widenQ8_0(dst []float32, src []byte)               { WidenQ8_0Generic(dst, src) }
func widenQ4_0(dst []float32, src []byte)               { WidenQ4_0Generic(dst, src) }

func dotQ4_KQ8(w []byte, q []int8, d, s []float32) float32 { return DotQ4_KQ8Generic(w, q, d, s) }

func dotTileQ8_0Q8(dst []float32, ldd int, w []byte, ldw, cols int, q []int8, d []float32, ldq, rows int) {
	DotTileQ8_0Q8Generic(dst, ldd, w, ldw, cols, q, d, ldq, rows)
}

func dotQ6_KQ8(w []byte, q []int8, d, s []float32) float32 { return DotQ6_KQ8Generic(w, q, d, s) }

func dotTileQ4_0Q8(dst []float32, ldd int, w []byte, ldw, cols int, q []int8, d []float32, ldq, rows int) {
	DotTileQ4_0Q8Generic(dst, ldd, w, ldw, cols, q, d, ldq, rows)
}
func dotQ5_KQ8(w []byte, q []int8, d, s []float32) float32 { return DotQ5_KQ8Generic(w, q, d, s) }

func dotIQ4_NLQ8(w []byte, q []int8, d []float32) float32  { return DotIQ4_NLQ8Generic(w, q, d) }
func dotIQ4_XSQ8(w []byte, q []int8, d []float32) float32  { return DotIQ4_XSQ8Generic(w, q, d) }
func dotQ2_KQ8(w []byte, q []int8, d, s []float32) float32 { return DotQ2_KQ8Generic(w, q, d, s) }
func dotQ3_KQ8(w []byte, q []int8, d, s []float32) float32 { return DotQ3_KQ8Generic(w, q, d, s) }
