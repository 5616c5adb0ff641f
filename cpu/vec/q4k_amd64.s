//go:build amd64 && !purego

#include "textflag.h"

// func dotQ4_KQ8AVX2(w *byte, q *int8, d *float32, nb int) float32
//
// DotQ4_KQ8 for nb ≥ 1 blocks. Per block: d and dmin through ·f16Table;
// the eight 6-bit scales and mins unpacked four at a time in general
// registers; s1[j] = d·sc[j]·dx[j] and s2[j] = dmin·m[j]·dx[j] as two
// vectors parked on the stack. Per 32-element sub-block: the nibbles and
// the activations' int8 through VPMADDUBSW and VPMADDWD (8 int32 lanes of
// Σ q_w·q, exact: |sum of two products| ≤ 2·15·127), and the same with
// ones for Σ q; then acc += s1[j]·Σq_w·q and acc' += s2[j]·Σq, even and
// odd sub-blocks in separate accumulators. The result is
// hsum(acc) − hsum(acc').
TEXT ·dotQ4_KQ8AVX2(SB), NOSPLIT, $64-36
	MOVQ w+0(FP), SI
	MOVQ q+8(FP), DI
	MOVQ d+16(FP), DX
	MOVQ nb+24(FP), CX
	LEAQ ·f16Table(SB), R8
	MOVL $0x0f0f0f0f, AX
	VMOVD AX, X15
	VPBROADCASTD X15, Y15 // low-nibble mask
	MOVL $0x00010001, AX
	VMOVD AX, X14
	VPBROADCASTD X14, Y14 // int16 ones
	MOVL $0x01010101, AX
	VMOVD AX, X13
	VPBROADCASTD X13, Y13 // uint8 ones
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3

q4k_block:
	PREFETCHT0 4096(SI)
	PREFETCHT0 4160(SI)
	// Scales: A = bytes 4..7, B = 8..11, C = 12..15 of the block.
	MOVL 4(SI), AX
	MOVL 8(SI), BX
	MOVL 12(SI), R9
	MOVL AX, R10
	ANDL $0x3f3f3f3f, R10 // sc[0..3]
	MOVL BX, R11
	ANDL $0x3f3f3f3f, R11 // m[0..3]
	MOVL R9, R12
	ANDL $0x0f0f0f0f, R12
	SHRL $6, AX
	ANDL $0x03030303, AX
	SHLL $4, AX
	ORL  AX, R12          // sc[4..7]
	SHRL $4, R9
	ANDL $0x0f0f0f0f, R9
	SHRL $6, BX
	ANDL $0x03030303, BX
	SHLL $4, BX
	ORL  BX, R9           // m[4..7]
	SHLQ $32, R12
	ORQ  R12, R10         // sc[0..7]
	SHLQ $32, R9
	ORQ  R9, R11          // m[0..7]
	VMOVQ R10, X6
	VPMOVZXBD X6, Y6
	VCVTDQ2PS Y6, Y6
	VMOVQ R11, X7
	VPMOVZXBD X7, Y7
	VCVTDQ2PS Y7, Y7
	MOVWLZX (SI), AX
	VBROADCASTSS (R8)(AX*4), Y4
	MOVWLZX 2(SI), AX
	VBROADCASTSS (R8)(AX*4), Y5
	VMULPS Y4, Y6, Y6     // d·sc[j], rounded as the reference rounds it
	VMULPS Y5, Y7, Y7     // dmin·m[j]
	VMOVUPS (DX), Y8      // the activations' scales of the 8 sub-blocks
	VMULPS Y8, Y6, Y6
	VMULPS Y8, Y7, Y7
	VMOVUPS Y6, s1-64(SP)
	VMOVUPS Y7, s2-32(SP)

#define SUB(QV, XOFF, S1OFF, S2OFF, ACC, ACCM) \
	VMOVDQU      XOFF(DI), Y11 \
	VPMADDUBSW   Y11, QV, Y12 \
	VPMADDWD     Y14, Y12, Y12 \
	VCVTDQ2PS    Y12, Y12 \
	VBROADCASTSS S1OFF(SP), Y4 \
	VFMADD231PS  Y4, Y12, ACC \
	VPMADDUBSW   Y11, Y13, Y12 \
	VPMADDWD     Y14, Y12, Y12 \
	VCVTDQ2PS    Y12, Y12 \
	VBROADCASTSS S2OFF(SP), Y5 \
	VFMADD231PS  Y5, Y12, ACCM

#define CHUNK(C, QOFF, XOFF0, XOFF1, S1A, S2A, S1B, S2B) \
	VMOVDQU QOFF(SI), Y9 \
	VPAND   Y15, Y9, Y10 \
	VPSRLW  $4, Y9, Y9 \
	VPAND   Y15, Y9, Y9 \
	SUB(Y10, XOFF0, S1A, S2A, Y0, Y2) \
	SUB(Y9, XOFF1, S1B, S2B, Y1, Y3)

	CHUNK(0, 16, 0, 32, s1-64, s2-32, s1-60, s2-28)
	CHUNK(1, 48, 64, 96, s1-56, s2-24, s1-52, s2-20)
	CHUNK(2, 80, 128, 160, s1-48, s2-16, s1-44, s2-12)
	CHUNK(3, 112, 192, 224, s1-40, s2-8, s1-36, s2-4)

	ADDQ $144, SI
	ADDQ $256, DI
	ADDQ $32, DX
	DECQ CX
	JNZ  q4k_block

	VADDPS Y1, Y0, Y0
	VADDPS Y3, Y2, Y2
	VSUBPS Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS       X1, X0, X0
	VPERMILPS    $0x0e, X0, X1
	VADDPS       X1, X0, X0
	VMOVSHDUP    X0, X1
	VADDSS       X1, X0, X0
	VZEROUPPER
	MOVSS X0, ret+32(FP)
	RET
