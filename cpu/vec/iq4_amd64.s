//go:build amd64 && !purego

#include "textflag.h"

// The IQ4 code book (iq4Levels) as bytes, for VPSHUFB.
DATA iq4tab<>+0(SB)/8, $0xF6EADDCFBFAD9881
DATA iq4tab<>+8(SB)/8, $0x7159453526190D01
GLOBL iq4tab<>(SB), RODATA|NOPTR, $16

// IQ4SUB(QS, XS, SCALE, ACC): one 32-element sub-block: QS its 16 index
// bytes, XS its 32 int8 activations, SCALE (a register) the factor of its
// exact integer sum in every lane. The nibbles become [low | high] in Y9
// (elements 0-15, then 16-31, the activations' order), the levels come
// from the table in Y13 (VPSHUFB), and Σ level·x goes through
// VPMADDUBSW on |level| and x·sign(level) (|pair sums| ≤ 2·127·127 <
// 2^15), then VPMADDWD against the int16 ones in Y14. Clobbers Y9-Y12.
#define IQ4SUB(QS, XS, SCALE, ACC) \
	VMOVDQU     QS, X9 \
	VPSRLW      $4, X9, X10 \
	VINSERTI128 $1, X10, Y9, Y9 \
	VPAND       Y15, Y9, Y9 \
	VPSHUFB     Y9, Y13, Y9 \
	VMOVDQU     XS, Y10 \
	VPSIGNB     Y9, Y9, Y11 \
	VPSIGNB     Y9, Y10, Y12 \
	VPMADDUBSW  Y12, Y11, Y12 \
	VPMADDWD    Y14, Y12, Y12 \
	VCVTDQ2PS   Y12, Y12 \
	VFMADD231PS SCALE, Y12, ACC

// IQ4SETUP: the constants IQ4SUB uses, and zeroed accumulators Y0, Y1.
#define IQ4SETUP \
	LEAQ ·f16Table(SB), R8 \
	MOVL $0x0f0f0f0f, AX \
	VMOVD AX, X15 \
	VPBROADCASTD X15, Y15 \
	MOVL $0x00010001, AX \
	VMOVD AX, X14 \
	VPBROADCASTD X14, Y14 \
	VBROADCASTI128 iq4tab<>(SB), Y13 \
	VXORPS Y0, Y0, Y0 \
	VXORPS Y1, Y1, Y1

// IQ4RESULT: hsum(Y0 + Y1) into X0's low lane.
#define IQ4RESULT \
	VADDPS       Y1, Y0, Y0 \
	VEXTRACTF128 $1, Y0, X1 \
	VADDPS       X1, X0, X0 \
	VPERMILPS    $0x0e, X0, X1 \
	VADDPS       X1, X0, X0 \
	VMOVSHDUP    X0, X1 \
	VADDSS       X1, X0, X0

// func dotIQ4_NLQ8AVX2(w *byte, q *int8, d *float32, nb int) float32
//
// DotIQ4_NLQ8 for nb ≥ 1 blocks: per block the factor d_w·dx (d_w through
// ·f16Table) and one IQ4SUB, blocks alternating between two accumulators.
TEXT ·dotIQ4_NLQ8AVX2(SB), NOSPLIT, $0-36
	MOVQ w+0(FP), SI
	MOVQ q+8(FP), DI
	MOVQ d+16(FP), DX
	MOVQ nb+24(FP), CX
	IQ4SETUP

iq4nl_pair:
	CMPQ CX, $2
	JB   iq4nl_one
	MOVWLZX (SI), AX
	VMOVSS  (R8)(AX*4), X4
	VMULSS  (DX), X4, X4
	VBROADCASTSS X4, Y4
	MOVWLZX 18(SI), AX
	VMOVSS  (R8)(AX*4), X5
	VMULSS  4(DX), X5, X5
	VBROADCASTSS X5, Y5
	IQ4SUB(2(SI), (DI), Y4, Y0)
	IQ4SUB(20(SI), 32(DI), Y5, Y1)
	ADDQ $36, SI
	ADDQ $64, DI
	ADDQ $8, DX
	SUBQ $2, CX
	JMP  iq4nl_pair

iq4nl_one:
	TESTQ CX, CX
	JZ    iq4nl_done
	MOVWLZX (SI), AX
	VMOVSS  (R8)(AX*4), X4
	VMULSS  (DX), X4, X4
	VBROADCASTSS X4, Y4
	IQ4SUB(2(SI), (DI), Y4, Y0)

iq4nl_done:
	IQ4RESULT
	VZEROUPPER
	MOVSS X0, ret+32(FP)
	RET

// Per-lane shifts for the IQ4_XS scales of sub-blocks 0-7: their low
// nibbles at 4i in scales_l (as one little-endian dword), their top two
// bits at 2i in scales_h.
DATA iq4xsl<>+0(SB)/8, $0x0000000400000000
DATA iq4xsl<>+8(SB)/8, $0x0000000C00000008
DATA iq4xsl<>+16(SB)/8, $0x0000001400000010
DATA iq4xsl<>+24(SB)/8, $0x0000001C00000018
GLOBL iq4xsl<>(SB), RODATA|NOPTR, $32
DATA iq4xsh<>+0(SB)/8, $0x0000000200000000
DATA iq4xsh<>+8(SB)/8, $0x0000000600000004
DATA iq4xsh<>+16(SB)/8, $0x0000000A00000008
DATA iq4xsh<>+24(SB)/8, $0x0000000E0000000C
GLOBL iq4xsh<>(SB), RODATA|NOPTR, $32

// func dotIQ4_XSQ8AVX2(w *byte, q *int8, d *float32, nb int) float32
//
// DotIQ4_XSQ8 for nb ≥ 1 blocks. Per block the eight sub-block factors
// dd·(ls−32)·dx[i] in one vector (the 6-bit scales unpacked with
// VPSRLVD), parked on the stack; per sub-block one IQ4SUB with its factor
// broadcast from there, sub-blocks alternating between two accumulators.
TEXT ·dotIQ4_XSQ8AVX2(SB), NOSPLIT, $32-36
	MOVQ w+0(FP), SI
	MOVQ q+8(FP), DI
	MOVQ d+16(FP), DX
	MOVQ nb+24(FP), CX
	IQ4SETUP
	VMOVDQU iq4xsl<>(SB), Y6
	VMOVDQU iq4xsh<>(SB), Y7
	MOVL $3, AX
	VMOVD AX, X2
	VPBROADCASTD X2, Y2 // 3 in every dword
	MOVL $32, AX
	VMOVD AX, X3
	VPBROADCASTD X3, Y3 // 32 in every dword
	MOVL $15, AX
	VMOVD AX, X8
	VPBROADCASTD X8, Y8 // 15 in every dword

iq4xs_block:
	PREFETCHT0 4096(SI)
	PREFETCHT0 4160(SI)
	PREFETCHT0 4224(SI)
	VPBROADCASTD 4(SI), Y4
	VPSRLVD      Y6, Y4, Y4
	VPAND        Y8, Y4, Y4    // the lane's low 4 bits
	MOVWLZX      2(SI), AX
	VMOVD        AX, X5
	VPBROADCASTD X5, Y5
	VPSRLVD      Y7, Y5, Y5
	VPAND        Y2, Y5, Y5
	VPSLLD       $4, Y5, Y5
	VPOR         Y5, Y4, Y4
	VPSUBD       Y3, Y4, Y4    // ls − 32
	VCVTDQ2PS    Y4, Y4
	MOVWLZX      (SI), AX
	VBROADCASTSS (R8)(AX*4), Y5
	VMULPS       Y5, Y4, Y4    // dd·(ls−32), as ggml rounds it
	VMULPS       (DX), Y4, Y4  // times dx[i]
	VMOVUPS      Y4, f-32(SP)
	VBROADCASTSS f-32(SP), Y4
	VBROADCASTSS f-28(SP), Y5
	IQ4SUB(8(SI), (DI), Y4, Y0)
	IQ4SUB(24(SI), 32(DI), Y5, Y1)
	VBROADCASTSS f-24(SP), Y4
	VBROADCASTSS f-20(SP), Y5
	IQ4SUB(40(SI), 64(DI), Y4, Y0)
	IQ4SUB(56(SI), 96(DI), Y5, Y1)
	VBROADCASTSS f-16(SP), Y4
	VBROADCASTSS f-12(SP), Y5
	IQ4SUB(72(SI), 128(DI), Y4, Y0)
	IQ4SUB(88(SI), 160(DI), Y5, Y1)
	VBROADCASTSS f-8(SP), Y4
	VBROADCASTSS f-4(SP), Y5
	IQ4SUB(104(SI), 192(DI), Y4, Y0)
	IQ4SUB(120(SI), 224(DI), Y5, Y1)
	ADDQ $136, SI
	ADDQ $256, DI
	ADDQ $32, DX
	DECQ CX
	JNZ  iq4xs_block

	IQ4RESULT
	VZEROUPPER
	MOVSS X0, ret+32(FP)
	RET
