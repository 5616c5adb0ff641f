package gpu

import "github.com/loomllm/loom/runtime/backend"

// Block-quantized weights are stored on the device split in two regions
// (kernels/ABI.md §1), so the kernels make aligned 16-byte loads: first
// the quants of every block (qs), then every block's F16 scale (d):
//
//	qs region: rows × qsRow bytes   (the blocks' bytes after the scale)
//	d region:  rows × dRow bytes    (the blocks' 2-byte scales)
//
// For Q8_0 qsRow = cols and for Q4_0 qsRow = cols/2; dRow = cols/32·2.
// The tensor takes the same number of bytes as in GGUF's layout.

// splitLayout reports whether dt is stored split, and the bytes per row of
// each region for rows of cols elements.
func splitLayout(dt backend.DType, cols int) (qsRow, dRow int, ok bool) {
	if dt != backend.Q8_0 && dt != backend.Q4_0 {
		return 0, 0, false
	}
	blocks := cols / dt.BlockElems()
	return blocks * (dt.BlockBytes() - 2), blocks * 2, true
}

// splitBlocks splits GGUF blocks of type dt (raw) into qs and d, which
// must have room for them (see splitLayout).
func splitBlocks(dt backend.DType, qs, d, raw []byte) {
	bb := dt.BlockBytes()
	qb := bb - 2
	for b := 0; b < len(raw)/bb; b++ {
		blk := raw[b*bb : (b+1)*bb]
		copy(d[2*b:2*b+2], blk[:2])
		copy(qs[b*qb:(b+1)*qb], blk[2:])
	}
}

// joinBlocks is the inverse of splitBlocks: it writes GGUF blocks into raw.
func joinBlocks(dt backend.DType, raw, qs, d []byte) {
	bb := dt.BlockBytes()
	qb := bb - 2
	for b := 0; b < len(raw)/bb; b++ {
		blk := raw[b*bb : (b+1)*bb]
		copy(blk[:2], d[2*b:2*b+2])
		copy(blk[2:], qs[b*qb:(b+1)*qb])
	}
}
