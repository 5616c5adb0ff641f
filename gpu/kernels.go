package gpu

// kernelID names one kernel of the fatbin.
type kernelID int

// The kernels, in the order of kernelSpecs. Families are contiguous so a
// variant is found by offset (see the launchers).
const (
	kAdd kernelID = iota
	kSwiGLU
	kGELU
	kCopy
	kRMSNorm
	kLayerNorm
	kRoPE
	kArgMax
	kCopyKVBlock
	kEmbedF32 // Embed family, in DType order: F32, F16, BF16, Q8_0, Q4_0
	kEmbedF16
	kEmbedBF16
	kEmbedQ8_0
	kEmbedQ4_0
	kGemvF32 // GEMV family: DType order F32, F16, BF16, Q8_0, Q4_0 × rows {1, 2..4, 5..8}
	kGemvF32x4
	kGemvF32x8
	kGemvF16
	kGemvF16x4
	kGemvF16x8
	kGemvBF16
	kGemvBF16x4
	kGemvBF16x8
	kGemvQ8_0
	kGemvQ8_0x4
	kGemvQ8_0x8
	kGemvQ4_0
	kGemvQ4_0x4
	kGemvQ4_0x8
	kSgemm
	kGemmBF16Large // tensor-core GEMM: {bf16, f16} × {128x256, 64x64}
	kGemmBF16Small
	kGemmF16Large
	kGemmF16Small
	kSplitKReduce
	kMMXBF16
	kMMXF16
	kMMWHalf
	kKVStoreF32 // KV store family, in DType order: F32, F16, BF16
	kKVStoreF16
	kKVStoreBF16
	kDecodeF32G1 // flash-decoding family: cache type {f32, f16, bf16} × GT {1, 2, 4, 8}
	kDecodeF32G2
	kDecodeF32G4
	kDecodeF32G8
	kDecodeF16G1
	kDecodeF16G2
	kDecodeF16G4
	kDecodeF16G8
	kDecodeBF16G1
	kDecodeBF16G2
	kDecodeBF16G4
	kDecodeBF16G8
	kAttnCombine
	kPrefillF16D64 // causal prefill family: cache type {f16, bf16} × head size {64, 128}
	kPrefillF16D128
	kPrefillBF16D64
	kPrefillBF16D128
	numKernels
)

// maxArgs is the most parameters a kernel may take (the size of the C
// argument block in driver.go).
const maxArgs = 24

// kernelSpecs gives each kernel's extern "C" name (kernels/*.cu), its
// number of 8-byte parameters, which every launch is checked against, and
// the dynamic shared memory it is launched with (loadModule raises the
// kernel's limit when that is over 48 KiB). The matrix and attention
// kernels are specified in kernels/ABI.md; gpu/abi_test.go checks this
// table against the compiled PTX.
var kernelSpecs = [numKernels]struct {
	name string
	args int
	smem int
}{
	kAdd:         {"loom_add_f32", 8, 0},
	kSwiGLU:      {"loom_swiglu_f32", 8, 0},
	kGELU:        {"loom_gelu_f32", 6, 0},
	kCopy:        {"loom_copy_f32", 6, 0},
	kRMSNorm:     {"loom_rmsnorm_f32", 7, 0},
	kLayerNorm:   {"loom_layernorm_f32", 8, 0},
	kRoPE:        {"loom_rope_f32", 12, 0},
	kArgMax:      {"loom_argmax_f32", 5, 0},
	kCopyKVBlock: {"loom_copy_kv_block", 6, 0},
	kEmbedF32:    {"loom_embed_f32", 9, 0},
	kEmbedF16:    {"loom_embed_f16", 9, 0},
	kEmbedBF16:   {"loom_embed_bf16", 9, 0},
	kEmbedQ8_0:   {"loom_embed_q8_0", 9, 0},
	kEmbedQ4_0:   {"loom_embed_q4_0", 9, 0},

	kGemvF32:         {"loom_gemv_f32_1", 8, 0},
	kGemvF32x4:       {"loom_gemv_f32_4", 8, 0},
	kGemvF32x8:       {"loom_gemv_f32_8", 8, 0},
	kGemvF16:         {"loom_gemv_f16_1", 8, 0},
	kGemvF16x4:       {"loom_gemv_f16_4", 8, 0},
	kGemvF16x8:       {"loom_gemv_f16_8", 8, 0},
	kGemvBF16:        {"loom_gemv_bf16_1", 8, 0},
	kGemvBF16x4:      {"loom_gemv_bf16_4", 8, 0},
	kGemvBF16x8:      {"loom_gemv_bf16_8", 8, 0},
	kGemvQ8_0:        {"loom_gemv_q8_0_1", 8, 0},
	kGemvQ8_0x4:      {"loom_gemv_q8_0_4", 8, 0},
	kGemvQ8_0x8:      {"loom_gemv_q8_0_8", 8, 0},
	kGemvQ4_0:        {"loom_gemv_q4_0_1", 8, 0},
	kGemvQ4_0x4:      {"loom_gemv_q4_0_4", 8, 0},
	kGemvQ4_0x8:      {"loom_gemv_q4_0_8", 8, 0},
	kSgemm:           {"loom_sgemm_f32", 8, 0},
	kGemmBF16Large:   {"loom_gemm_bf16_128x256", 10, 147456},
	kGemmBF16Small:   {"loom_gemm_bf16_64x64", 10, 65536},
	kGemmF16Large:    {"loom_gemm_f16_128x256", 10, 147456},
	kGemmF16Small:    {"loom_gemm_f16_64x64", 10, 65536},
	kSplitKReduce:    {"loom_gemm_splitk_reduce", 6, 0},
	kMMXBF16:         {"loom_mm_x_bf16", 7, 0},
	kMMXF16:          {"loom_mm_x_f16", 7, 0},
	kMMWHalf:         {"loom_mm_w_half", 9, 0},
	kKVStoreF32:      {"loom_kv_store_f32", 19, 0},
	kKVStoreF16:      {"loom_kv_store_f16", 19, 0},
	kKVStoreBF16:     {"loom_kv_store_bf16", 19, 0},
	kDecodeF32G1:     {"loom_attn_decode_f32_g1", 23, 0},
	kDecodeF32G2:     {"loom_attn_decode_f32_g2", 23, 0},
	kDecodeF32G4:     {"loom_attn_decode_f32_g4", 23, 0},
	kDecodeF32G8:     {"loom_attn_decode_f32_g8", 23, 0},
	kDecodeF16G1:     {"loom_attn_decode_f16_g1", 23, 0},
	kDecodeF16G2:     {"loom_attn_decode_f16_g2", 23, 0},
	kDecodeF16G4:     {"loom_attn_decode_f16_g4", 23, 0},
	kDecodeF16G8:     {"loom_attn_decode_f16_g8", 23, 0},
	kDecodeBF16G1:    {"loom_attn_decode_bf16_g1", 23, 0},
	kDecodeBF16G2:    {"loom_attn_decode_bf16_g2", 23, 0},
	kDecodeBF16G4:    {"loom_attn_decode_bf16_g4", 23, 0},
	kDecodeBF16G8:    {"loom_attn_decode_bf16_g8", 23, 0},
	kAttnCombine:     {"loom_attn_combine", 10, 0},
	kPrefillF16D64:   {"loom_attn_prefill_f16_d64", 20, 40960},
	kPrefillF16D128:  {"loom_attn_prefill_f16_d128", 20, 81920},
	kPrefillBF16D64:  {"loom_attn_prefill_bf16_d64", 20, 40960},
	kPrefillBF16D128: {"loom_attn_prefill_bf16_d128", 20, 81920},
}

// dim3 is a CUDA grid or block size.
type dim3 struct{ x, y, z int }

// Launch limits of every CUDA GPU since compute capability 3.0.
const (
	maxGridX  = 1<<31 - 1
	maxGridYZ = 65535
)

// Block sizes the kernels are written for (see each kernel's comment and
// kernels/ABI.md).
const (
	ewBlock      = 256 // element-wise, Embed, RoPE, CopyKVBlock
	normBlock    = 256 // RMSNorm, LayerNorm: one block per row
	argMaxBlock  = 512 // LOOM_ARGMAX_THREADS in argmax.cu
	gemvBlock    = 256
	sgemmBlock   = 256
	gemmLBlock   = 256 // 128x256 tiles
	gemmSBlock   = 128 // 64x64 tiles
	reduceBlock  = 256
	convBlock    = 256 // loom_mm_x_*, loom_mm_w_half: 4 columns per thread
	kvStoreBlock = 256
	decodeBlock  = 128
	prefillBlock = 128
)

// rowGrid is the grid of the row-parallel kernels: x covers cols work items
// per row in blocks of block threads, y walks the rows (capped at the
// hardware limit; the kernels loop over the rest).
func rowGrid(rows, cols, block int) dim3 {
	return dim3{ceilDiv(cols, block), min(rows, maxGridYZ), 1}
}

// ceilDiv is ⌈a/b⌉ for positive b.
func ceilDiv(a, b int) int { return (a + b - 1) / b }

// decodeSplits is the number of splits of each row's KV positions for
// flash-decoding (ABI.md §4.2): enough blocks to fill the GPU twice over,
// at least 64 positions per split of the block table's capacity. It
// depends on shapes only, so a recorded graph stays valid as sequences
// grow.
func decodeSplits(sms, rows, blocksPerRow, capacity int) int {
	s := ceilDiv(2*sms, rows*blocksPerRow)
	return max(1, min(s, max(1, capacity/64)))
}
