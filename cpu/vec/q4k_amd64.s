//go:build amd64 && !purego

#include "textflag.h"
#include "kquant_amd64.h"

// func dotQ4_KQ8AVX2(w *byte, q *int8, d *float32, s *float32, nb int) float32
//
// DotQ4_KQ8 for nb ≥ 1 blocks. Per block: d and dmin through ·f16Table;
// the eight 6-bit scales and mins unpacked four at a time in general
// registers; s1[j] = d·sc[j]·dx[j] (parked on the stack) and s2[j] =
// dmin·m[j]·dx[j] (KSCALES). The mins' part, Σ_j s2[j]·Σq[j], is one
// multiply-add with the activations' block sums (KMINS). Per 32-element
// sub-block: the nibbles and the activations' int8 through VPMADDUBSW and
// VPMADDWD (8 int32 lanes of Σ q_w·q, exact: |sum of two products| ≤
// 2·15·127), then acc += s1[j]·Σq_w·q, even and odd sub-blocks in separate
// accumulators. The result is hsum(acc) − hsum(mins).
TEXT ·dotQ4_KQ8AVX2(SB), NOSPLIT, $32-44
	MOVQ w+0(FP), SI
	MOVQ q+8(FP), DI
	MOVQ d+16(FP), DX
	MOVQ s+24(FP), R13
	MOVQ nb+32(FP), CX
	LEAQ ·f16Table(SB), R8
	MOVL $0x0f0f0f0f, AX
	VMOVD AX, X15
	VPBROADCASTD X15, Y15 // low-nibble mask
	MOVL $0x00010001, AX
	VMOVD AX, X14
	VPBROADCASTD X14, Y14 // int16 ones
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3

q4k_block:
	PREFETCHT0 4096(SI)
	PREFETCHT0 4160(SI)
	// Y6 = s1[j] = d·sc[j]·dx[j], Y7 = s2[j] = dmin·m[j]·dx[j] (kquant_amd64.h).
	KSCALES
	VMOVUPS Y6, s1-32(SP)
	KMINS


#define CHUNK(QOFF, XOFF0, XOFF1, S1A, S1B) \
	VMOVDQU QOFF(SI), Y9 \
	VPAND   Y15, Y9, Y10 \
	VPSRLW  $4, Y9, Y9 \
	VPAND   Y15, Y9, Y9 \
	KSUB(Y10, XOFF0, S1A, Y0) \
	KSUB(Y9, XOFF1, S1B, Y1)

	CHUNK(16, 0, 32, s1-32, s1-28)
	CHUNK(48, 64, 96, s1-24, s1-20)
	CHUNK(80, 128, 160, s1-16, s1-12)
	CHUNK(112, 192, 224, s1-8, s1-4)

	ADDQ $144, SI
	ADDQ $256, DI
	ADDQ $32, DX
	DECQ CX
	JNZ  q4k_block

	KRESULT_Y
	VZEROUPPER
	MOVSS X0, ret+40(FP)
	RET

// Permutation indices for dotQ4_KQ8AVX512: chunk c takes the scales of
// sub-blocks 2c (lanes 0-7) and 2c+1 (lanes 8-15).
DATA ·q4kperm+0(SB)/8, $0x0000000000000000
DATA ·q4kperm+8(SB)/8, $0x0000000000000000
DATA ·q4kperm+16(SB)/8, $0x0000000000000000
DATA ·q4kperm+24(SB)/8, $0x0000000000000000
DATA ·q4kperm+32(SB)/8, $0x0000000100000001
DATA ·q4kperm+40(SB)/8, $0x0000000100000001
DATA ·q4kperm+48(SB)/8, $0x0000000100000001
DATA ·q4kperm+56(SB)/8, $0x0000000100000001
DATA ·q4kperm+64(SB)/8, $0x0000000200000002
DATA ·q4kperm+72(SB)/8, $0x0000000200000002
DATA ·q4kperm+80(SB)/8, $0x0000000200000002
DATA ·q4kperm+88(SB)/8, $0x0000000200000002
DATA ·q4kperm+96(SB)/8, $0x0000000300000003
DATA ·q4kperm+104(SB)/8, $0x0000000300000003
DATA ·q4kperm+112(SB)/8, $0x0000000300000003
DATA ·q4kperm+120(SB)/8, $0x0000000300000003
DATA ·q4kperm+128(SB)/8, $0x0000000400000004
DATA ·q4kperm+136(SB)/8, $0x0000000400000004
DATA ·q4kperm+144(SB)/8, $0x0000000400000004
DATA ·q4kperm+152(SB)/8, $0x0000000400000004
DATA ·q4kperm+160(SB)/8, $0x0000000500000005
DATA ·q4kperm+168(SB)/8, $0x0000000500000005
DATA ·q4kperm+176(SB)/8, $0x0000000500000005
DATA ·q4kperm+184(SB)/8, $0x0000000500000005
DATA ·q4kperm+192(SB)/8, $0x0000000600000006
DATA ·q4kperm+200(SB)/8, $0x0000000600000006
DATA ·q4kperm+208(SB)/8, $0x0000000600000006
DATA ·q4kperm+216(SB)/8, $0x0000000600000006
DATA ·q4kperm+224(SB)/8, $0x0000000700000007
DATA ·q4kperm+232(SB)/8, $0x0000000700000007
DATA ·q4kperm+240(SB)/8, $0x0000000700000007
DATA ·q4kperm+248(SB)/8, $0x0000000700000007
GLOBL ·q4kperm(SB), RODATA|NOPTR, $256

// func dotQ4_KQ8AVX512(w *byte, q *int8, d *float32, s *float32, nb int) float32
//
// dotQ4_KQ8AVX2 with AVX512-VNNI: a chunk's two sub-blocks (64 quants,
// low nibbles then high) in one ZMM register, and VPDPBUSD (uint8 quants
// times int8 activations, four products per int32 lane, exact) for Σ
// q_w·q; each sub-block's scale broadcast to its half by VPERMPS. The mins
// as in dotQ4_KQ8AVX2.
TEXT ·dotQ4_KQ8AVX512(SB), NOSPLIT, $0-44
	MOVQ w+0(FP), SI
	MOVQ q+8(FP), DI
	MOVQ d+16(FP), DX
	MOVQ s+24(FP), R13
	MOVQ nb+32(FP), CX
	LEAQ ·f16Table(SB), R8
	MOVL $0x0f0f0f0f, AX
	VMOVD AX, X15
	VPBROADCASTD X15, Y15 // low-nibble mask
	VMOVDQU32 ·q4kperm+0(SB), Z26
	VMOVDQU32 ·q4kperm+64(SB), Z27
	VMOVDQU32 ·q4kperm+128(SB), Z28
	VMOVDQU32 ·q4kperm+192(SB), Z29
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3

q4kz_block:
	PREFETCHT0 4096(SI)
	PREFETCHT0 4160(SI)
	KSCALES
	KMINS

#define ZCHUNK(QOFF, XOFF, IDX, ACC) \
	VMOVDQU      QOFF(SI), Y9 \
	VPAND        Y15, Y9, Y10 \
	VPSRLW       $4, Y9, Y9 \
	VPAND        Y15, Y9, Y9 \
	VINSERTI64X4 $1, Y9, Z10, Z10 \
	VPXORD       Z12, Z12, Z12 \
	VPDPBUSD     XOFF(DI), Z10, Z12 \
	VCVTDQ2PS    Z12, Z12 \
	VPERMPS      Z6, IDX, Z16 \
	VFMADD231PS  Z16, Z12, ACC

	ZCHUNK(16, 0, Z26, Z0)
	ZCHUNK(48, 64, Z27, Z1)
	ZCHUNK(80, 128, Z28, Z0)
	ZCHUNK(112, 192, Z29, Z1)

	ADDQ $144, SI
	ADDQ $256, DI
	ADDQ $32, DX
	DECQ CX
	JNZ  q4kz_block

	KRESULT_Z
	VZEROUPPER
	MOVSS X0, ret+40(FP)
	RET
