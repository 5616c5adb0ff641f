//go:build amd64 && !purego

#include "textflag.h"

// Constants of dotQ6_KQ8AVX2: byte masks and the VPERMPS indices that put
// a 32-element sub-block's two 16-element group scales in its two halves.
DATA q6k0f<>+0(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA q6k0f<>+8(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA q6k0f<>+16(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA q6k0f<>+24(SB)/8, $0x0f0f0f0f0f0f0f0f
GLOBL q6k0f<>(SB), RODATA|NOPTR, $32
DATA q6k30<>+0(SB)/8, $0x3030303030303030
DATA q6k30<>+8(SB)/8, $0x3030303030303030
DATA q6k30<>+16(SB)/8, $0x3030303030303030
DATA q6k30<>+24(SB)/8, $0x3030303030303030
GLOBL q6k30<>(SB), RODATA|NOPTR, $32
DATA q6kidx<>+0(SB)/8, $0x0000000000000000
DATA q6kidx<>+8(SB)/8, $0x0000000000000000
DATA q6kidx<>+16(SB)/8, $0x0000000100000001
DATA q6kidx<>+24(SB)/8, $0x0000000100000001
DATA q6kidx<>+32(SB)/8, $0x0000000200000002
DATA q6kidx<>+40(SB)/8, $0x0000000200000002
DATA q6kidx<>+48(SB)/8, $0x0000000300000003
DATA q6kidx<>+56(SB)/8, $0x0000000300000003
DATA q6kidx<>+64(SB)/8, $0x0000000400000004
DATA q6kidx<>+72(SB)/8, $0x0000000400000004
DATA q6kidx<>+80(SB)/8, $0x0000000500000005
DATA q6kidx<>+88(SB)/8, $0x0000000500000005
DATA q6kidx<>+96(SB)/8, $0x0000000600000006
DATA q6kidx<>+104(SB)/8, $0x0000000600000006
DATA q6kidx<>+112(SB)/8, $0x0000000700000007
DATA q6kidx<>+120(SB)/8, $0x0000000700000007
GLOBL q6kidx<>(SB), RODATA|NOPTR, $128
// Indices that spread the 8 sub-block factors d·dx[j] over the 16 groups
// (two per sub-block): groups 0-7, then 8-15.
DATA q6kdx<>+0(SB)/8, $0x0000000000000000
DATA q6kdx<>+8(SB)/8, $0x0000000100000001
DATA q6kdx<>+16(SB)/8, $0x0000000200000002
DATA q6kdx<>+24(SB)/8, $0x0000000300000003
DATA q6kdx<>+32(SB)/8, $0x0000000400000004
DATA q6kdx<>+40(SB)/8, $0x0000000500000005
DATA q6kdx<>+48(SB)/8, $0x0000000600000006
DATA q6kdx<>+56(SB)/8, $0x0000000700000007
GLOBL q6kdx<>(SB), RODATA|NOPTR, $64

// K16SETUP: what the dots on 16-element groups (Q2_K, Q3_K, Q6_K) keep in
// registers: R8 = ·f16Table, Y14 = int16 ones, Y15 = 0x0f bytes, and the
// accumulators Y0, Y1 (products) and Y2 (offsets or mins) zeroed.
#define K16SETUP \
	LEAQ ·f16Table(SB), R8 \
	MOVL $0x00010001, AX \
	VMOVD AX, X14 \
	VPBROADCASTD X14, Y14 \
	VMOVDQU q6k0f<>(SB), Y15 \
	VXORPS Y0, Y0, Y0 \
	VXORPS Y1, Y1, Y1 \
	VXORPS Y2, Y2, Y2

// K16MASK2: Y8 = 0x03 in every byte (the 2-bit quants of Q2_K and Q3_K).
#define K16MASK2 \
	MOVL $0x03030303, AX \
	VMOVD AX, X8 \
	VPBROADCASTD X8, Y8

// K16HSUM: X0's low lane = hsum(Y0) (the caller has folded Y1 and Y2
// into Y0).
#define K16HSUM \
	VEXTRACTF128 $1, Y0, X1 \
	VADDPS       X1, X0, X0 \
	VPERMILPS    $0x0e, X0, X1 \
	VADDPS       X1, X0, X0 \
	VMOVSHDUP    X0, X1 \
	VADDSS       X1, X0, X0

// func dotQ6_KQ8AVX2(w *byte, q *int8, d *float32, s *float32, nb int) float32
//
// DotQ6_KQ8 for nb ≥ 1 blocks. Per block: the 16 int8 group scales as
// floats times d·dx[j] of their sub-block (Y4: groups 0-7, Y5: 8-15), and
// the offset's part, Σ_g Y4/Y5[g]·s[g] (s: the activations' sums per 16,
// SumsQ8By16) in Y2, one multiply-add per half. Per 32-element sub-block:
// the 6-bit quants rebuilt from ql's nibble and qh's two bits, then
// through VPMADDUBSW and VPMADDWD the int32 lanes of Σ q·x (four elements
// a lane, exact), and acc += factor·that, lanes 0-3 taking group 2j's
// factor and 4-7 group 2j+1's (VPERMPS), even and odd sub-blocks in
// separate accumulators. The result is hsum(acc) − 32·hsum(Y2).
TEXT ·dotQ6_KQ8AVX2(SB), NOSPLIT, $0-44
	MOVQ w+0(FP), SI
	MOVQ q+8(FP), DI
	MOVQ d+16(FP), DX
	MOVQ s+24(FP), R9
	MOVQ nb+32(FP), CX
	K16SETUP

// Q6SUB(QV, XOFF, IDX, FAC, ACC): acc += FAC[lanes by IDX] · Σ QV·x.
#define Q6SUB(QV, XOFF, IDX, FAC, ACC) \
	VMOVDQU     XOFF(DI), Y10 \
	VPMADDUBSW  Y10, QV, Y11 \
	VPMADDWD    Y14, Y11, Y11 \
	VCVTDQ2PS   Y11, Y11 \
	VMOVDQU     IDX, Y12 \
	VPERMPS     FAC, Y12, Y12 \
	VFMADD231PS Y12, Y11, ACC

// Q6HALF(QLO, QHI, QH, XOFF, FAC): the four sub-blocks of one half:
// ql's 64 bytes at QLO and QHI (32 each), qh's 32 at QH.
#define Q6HALF(QLO, QHI, QH, XOFF, FAC) \
	VMOVDQU QH(SI), Y6 \
	VMOVDQU QLO(SI), Y7 \
	VMOVDQU QHI(SI), Y8 \
	VPAND   Y15, Y7, Y9 \
	VPSLLW  $4, Y6, Y11 \
	VPAND   q6k30<>(SB), Y11, Y11 \
	VPOR    Y11, Y9, Y9 \
	Q6SUB(Y9, XOFF+0, q6kidx<>+0(SB), FAC, Y0) \
	VPAND   Y15, Y8, Y9 \
	VPSLLW  $2, Y6, Y11 \
	VPAND   q6k30<>(SB), Y11, Y11 \
	VPOR    Y11, Y9, Y9 \
	Q6SUB(Y9, XOFF+32, q6kidx<>+32(SB), FAC, Y1) \
	VPSRLW  $4, Y7, Y9 \
	VPAND   Y15, Y9, Y9 \
	VPAND   q6k30<>(SB), Y6, Y11 \
	VPOR    Y11, Y9, Y9 \
	Q6SUB(Y9, XOFF+64, q6kidx<>+64(SB), FAC, Y0) \
	VPSRLW  $4, Y8, Y9 \
	VPAND   Y15, Y9, Y9 \
	VPSRLW  $2, Y6, Y11 \
	VPAND   q6k30<>(SB), Y11, Y11 \
	VPOR    Y11, Y9, Y9 \
	Q6SUB(Y9, XOFF+96, q6kidx<>+96(SB), FAC, Y1)

q6k_block:
	PREFETCHT0 4096(SI)
	PREFETCHT0 4160(SI)
	PREFETCHT0 4224(SI)
	PREFETCHT0 4288(SI)
	MOVWLZX 208(SI), AX
	VBROADCASTSS (R8)(AX*4), Y3
	VMULPS (DX), Y3, Y3   // d·dx[j]
	VPMOVSXBD 192(SI), Y4
	VCVTDQ2PS Y4, Y4
	VPMOVSXBD 200(SI), Y5
	VCVTDQ2PS Y5, Y5
	VMOVDQU q6kdx<>+0(SB), Y12
	VPERMPS Y3, Y12, Y12
	VMULPS  Y12, Y4, Y4   // sc[g]·d·dx[g/2], groups 0-7
	VMOVDQU q6kdx<>+32(SB), Y12
	VPERMPS Y3, Y12, Y12
	VMULPS  Y12, Y5, Y5   // groups 8-15
	VFMADD231PS (R9), Y4, Y2
	VFMADD231PS 32(R9), Y5, Y2

	Q6HALF(0, 32, 128, 0, Y4)
	Q6HALF(64, 96, 160, 128, Y5)

	ADDQ $210, SI
	ADDQ $256, DI
	ADDQ $32, DX
	ADDQ $64, R9
	DECQ CX
	JNZ  q6k_block

	VADDPS       Y1, Y0, Y0
	MOVL $0x42000000, AX // 32.0
	VMOVD AX, X3
	VBROADCASTSS X3, Y3
	VFNMADD231PS Y3, Y2, Y0 // acc − 32·offsets
	K16HSUM
	VZEROUPPER
	MOVSS X0, ret+40(FP)
	RET

// Q2QUAD(QS, XOFF, FAC): the four sub-blocks of one half of a Q2_K block:
// its 32 quant bytes at QS(SI) hold sub-block k's 2-bit quants at bits
// 2k, in element order; activations from XOFF(DI); group factors in FAC.
#define Q2QUAD(QS, XOFF, FAC) \
	VMOVDQU QS(SI), Y7 \
	VPAND   Y8, Y7, Y9 \
	Q6SUB(Y9, XOFF+0, q6kidx<>+0(SB), FAC, Y0) \
	VPSRLW  $2, Y7, Y9 \
	VPAND   Y8, Y9, Y9 \
	Q6SUB(Y9, XOFF+32, q6kidx<>+32(SB), FAC, Y1) \
	VPSRLW  $4, Y7, Y9 \
	VPAND   Y8, Y9, Y9 \
	Q6SUB(Y9, XOFF+64, q6kidx<>+64(SB), FAC, Y0) \
	VPSRLW  $6, Y7, Y9 \
	VPAND   Y8, Y9, Y9 \
	Q6SUB(Y9, XOFF+96, q6kidx<>+96(SB), FAC, Y1)

// Q2GROUPS(SC, DX, FAC, SOFF): from the 8 scale bytes at SC(SI), the
// factors d·sc·dx of 8 groups into FAC and their mins' part,
// dmin·m·dx·s (s the activation sums per 16 at SOFF(R9)), added to Y2.
// Expects Y3 = d, Y13 = dmin, DX the groups' dx; clobbers Y6.
#define Q2GROUPS(SC, DX, FAC, SOFF) \
	VPMOVZXBD   SC(SI), FAC \
	VPSRLD      $4, FAC, Y6 \
	VPAND       Y15, FAC, FAC \
	VCVTDQ2PS   FAC, FAC \
	VCVTDQ2PS   Y6, Y6 \
	VMULPS      Y3, FAC, FAC \
	VMULPS      DX, FAC, FAC \
	VMULPS      Y13, Y6, Y6 \
	VMULPS      DX, Y6, Y6 \
	VFMADD231PS SOFF(R9), Y6, Y2

// func dotQ2_KQ8AVX2(w *byte, q *int8, d *float32, s *float32, nb int) float32
//
// DotQ2_KQ8 for nb ≥ 1 blocks: Q6_K's scheme with Q2_K's unsigned 2-bit
// quants. Per block the 16 group factors d·sc[g]·dx[g/2] (Y4, Y5) and the
// mins' part Σ dmin·m[g]·dx[g/2]·s[g] (into Y2); per 32-element sub-block
// Q6SUB on the quants shifted out of their byte. The result is
// hsum(acc) − hsum(Y2).
TEXT ·dotQ2_KQ8AVX2(SB), NOSPLIT, $0-44
	MOVQ w+0(FP), SI
	MOVQ q+8(FP), DI
	MOVQ d+16(FP), DX
	MOVQ s+24(FP), R9
	MOVQ nb+32(FP), CX
	K16SETUP
	K16MASK2

q2k_block:
	PREFETCHT0 4096(SI)
	PREFETCHT0 4160(SI)
	VMOVUPS (DX), Y7
	VMOVDQU q6kdx<>+0(SB), Y12
	VPERMPS Y7, Y12, Y9   // dx by group, 0-7
	VMOVDQU q6kdx<>+32(SB), Y12
	VPERMPS Y7, Y12, Y7   // 8-15
	MOVWLZX 80(SI), AX
	VBROADCASTSS (R8)(AX*4), Y3
	MOVWLZX 82(SI), AX
	VBROADCASTSS (R8)(AX*4), Y13
	Q2GROUPS(0, Y9, Y4, 0)
	Q2GROUPS(8, Y7, Y5, 32)

	Q2QUAD(16, 0, Y4)
	Q2QUAD(48, 128, Y5)

	ADDQ $84, SI
	ADDQ $256, DI
	ADDQ $32, DX
	ADDQ $64, R9
	DECQ CX
	JNZ  q2k_block

	VADDPS       Y1, Y0, Y0
	VSUBPS       Y2, Y0, Y0
	K16HSUM
	VZEROUPPER
	MOVSS X0, ret+40(FP)
	RET

// Constants of dotQ3_KQ8AVX2: the shifts that bring the top two bits of
// the scales of groups 4k..4k+3 down (k = 0..3, one dword each), bytes of
// 1 (a high bit), bytes of 32 (the scales' offset).
DATA q3kshift<>+0(SB)/8, $0x0000000200000000
DATA q3kshift<>+8(SB)/8, $0x0000000600000004
GLOBL q3kshift<>(SB), RODATA|NOPTR, $16
DATA q3k01<>+0(SB)/8, $0x0101010101010101
DATA q3k01<>+8(SB)/8, $0x0101010101010101
DATA q3k01<>+16(SB)/8, $0x0101010101010101
DATA q3k01<>+24(SB)/8, $0x0101010101010101
GLOBL q3k01<>(SB), RODATA|NOPTR, $32
DATA q3k32<>+0(SB)/8, $0x2020202020202020
DATA q3k32<>+8(SB)/8, $0x2020202020202020
GLOBL q3k32<>(SB), RODATA|NOPTR, $16

// Q3SUB(J, SHIFT, XOFF, IDX, FAC, ACC): sub-block J of a Q3_K block: its
// low two bits at SHIFT in the quad's 32 bytes (Y7), its high bits bit J
// of hmask (Y13), made q+4 = low | high<<2 (0..7), then Q6SUB.
#define Q3SUB(J, SHIFT, XOFF, IDX, FAC, ACC) \
	VPSRLW $SHIFT, Y7, Y9 \
	VPAND  Y8, Y9, Y9 \
	VPSRLW $J, Y13, Y6 \
	VPAND  q3k01<>(SB), Y6, Y6 \
	VPSLLW $2, Y6, Y6 \
	VPOR   Y6, Y9, Y9 \
	Q6SUB(Y9, XOFF, IDX, FAC, ACC)

// func dotQ3_KQ8AVX2(w *byte, q *int8, d *float32, s *float32, nb int) float32
//
// DotQ3_KQ8 for nb ≥ 1 blocks: Q6_K's scheme on q+4 (0..7), the offset
// −4·Σ x taken against the activation sums per 16. Per block the 16
// signed 6-bit scales unpacked in one XMM register (low nibbles of bytes
// 0-7, then their high nibbles; top bits from bytes 8-11 by VPSRLVD),
// the group factors d·(s−32)·dx (Y4, Y5) and the offsets' part
// Σ factor·s (into Y2). The result is hsum(acc) − 4·hsum(Y2).
TEXT ·dotQ3_KQ8AVX2(SB), NOSPLIT, $0-44
	MOVQ w+0(FP), SI
	MOVQ q+8(FP), DI
	MOVQ d+16(FP), DX
	MOVQ s+24(FP), R9
	MOVQ nb+32(FP), CX
	K16SETUP
	K16MASK2

q3k_block:
	PREFETCHT0 4096(SI)
	PREFETCHT0 4160(SI)
	MOVWLZX 108(SI), AX
	VBROADCASTSS (R8)(AX*4), Y3
	VMOVQ   96(SI), X4
	VPAND   X15, X4, X5
	VPSRLW  $4, X4, X6
	VPAND   X15, X6, X6
	VPUNPCKLQDQ X6, X5, X5       // the scales' low 4 bits, groups 0-15
	VPBROADCASTD 104(SI), X6
	VPSRLVD q3kshift<>(SB), X6, X6
	VPAND   X8, X6, X6
	VPSLLW  $4, X6, X6
	VPOR    X6, X5, X5           // the 6-bit scales
	VPSUBB  q3k32<>(SB), X5, X5  // s − 32
	VPMOVSXBD X5, Y4
	VPSRLDQ $8, X5, X5
	VPMOVSXBD X5, Y5
	VCVTDQ2PS Y4, Y4
	VCVTDQ2PS Y5, Y5
	VMULPS  Y3, Y4, Y4           // d·(s−32), as the reference rounds it
	VMULPS  Y3, Y5, Y5
	VMOVUPS (DX), Y7
	VMOVDQU q6kdx<>+0(SB), Y12
	VPERMPS Y7, Y12, Y9
	VMULPS  Y9, Y4, Y4           // factors, groups 0-7
	VMOVDQU q6kdx<>+32(SB), Y12
	VPERMPS Y7, Y12, Y9
	VMULPS  Y9, Y5, Y5           // groups 8-15
	VFMADD231PS (R9), Y4, Y2
	VFMADD231PS 32(R9), Y5, Y2
	VMOVDQU (SI), Y13            // hmask

	VMOVDQU 32(SI), Y7
	Q3SUB(0, 0, 0, q6kidx<>+0(SB), Y4, Y0)
	Q3SUB(1, 2, 32, q6kidx<>+32(SB), Y4, Y1)
	Q3SUB(2, 4, 64, q6kidx<>+64(SB), Y4, Y0)
	Q3SUB(3, 6, 96, q6kidx<>+96(SB), Y4, Y1)
	VMOVDQU 64(SI), Y7
	Q3SUB(4, 0, 128, q6kidx<>+0(SB), Y5, Y0)
	Q3SUB(5, 2, 160, q6kidx<>+32(SB), Y5, Y1)
	Q3SUB(6, 4, 192, q6kidx<>+64(SB), Y5, Y0)
	Q3SUB(7, 6, 224, q6kidx<>+96(SB), Y5, Y1)

	ADDQ $110, SI
	ADDQ $256, DI
	ADDQ $32, DX
	ADDQ $64, R9
	DECQ CX
	JNZ  q3k_block

	VADDPS       Y1, Y0, Y0
	MOVL $0x40800000, AX // 4.0
	VMOVD AX, X3
	VBROADCASTSS X3, Y3
	VFNMADD231PS Y3, Y2, Y0 // acc − 4·offsets
	K16HSUM
	VZEROUPPER
	MOVSS X0, ret+40(FP)
	RET
