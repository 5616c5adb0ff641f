//go:build !amd64 || purego

package vec

func dotTile(dst []float32, ldd int, x []float32, ldx, rows int, w []float32, ldw, cols, k int) {
	DotTileGeneric(dst, ldd, x, ldx, rows, w, ldw, cols, k)
}
func axpyRows(acc, v []float32, stride int, p []float32) { AxpyRowsGeneric(acc, v, stride, p) }
func expSum(x []float32, scale float32) (m, sum float32) { return ExpSumGeneric(x, scale) }
func swiglu(dst, g, u []float32)                         { SwiGLUGeneric(dst, g, u) }
func gelu(dst, x []float32)                              { GELUGeneric(dst, x) }

func attnBlocks(acc, m, l, q []float32, d int, ks, vs [][]float32, scale float32, sbuf []float32) {
	AttnBlocksGeneric(acc, m, l, q, d, ks, vs, scale, sbuf)
}

func argMax(x []float32) (int, float32) { return ArgMaxGeneric(x) }

func dotRowsH(dst []float32, w []byte, stride int, x []float32, bf16 bool) {
	if bf16 {
		DotRowsBF16Generic(dst, w, stride, x)
	} else {
		DotRowsF16Generic(dst, w, stride, x)
	}
}
