// kquant_amd64.h: the parts the Q4_K and Q5_K integer dots share (both
// types keep d, dmin and the same twelve bytes of 6-bit scales and mins at
// the start of a block).

// KSCALES: for the block at SI and the activations' eight sub-block scales
// at DX, Y6 = d·sc[j]·dx[j] and Y7 = dmin·m[j]·dx[j] (j = 0..7), each
// d·sc and dmin·m rounded first, as the reference rounds them. The scales
// and mins are unpacked four at a time in general registers: sub-blocks
// 0-3 take the low 6 bits of bytes 4-7 and 8-11, sub-blocks 4-7 a nibble
// of bytes 12-15 under the top 2 bits of bytes 4-11. Uses R8 =
// ·f16Table; clobbers AX, BX, R9-R12, Y4, Y5, Y8.
#define KSCALES \
	MOVL 4(SI), AX \
	MOVL 8(SI), BX \
	MOVL 12(SI), R9 \
	MOVL AX, R10 \
	ANDL $0x3f3f3f3f, R10 \
	MOVL BX, R11 \
	ANDL $0x3f3f3f3f, R11 \
	MOVL R9, R12 \
	ANDL $0x0f0f0f0f, R12 \
	SHRL $6, AX \
	ANDL $0x03030303, AX \
	SHLL $4, AX \
	ORL  AX, R12 \
	SHRL $4, R9 \
	ANDL $0x0f0f0f0f, R9 \
	SHRL $6, BX \
	ANDL $0x03030303, BX \
	SHLL $4, BX \
	ORL  BX, R9 \
	SHLQ $32, R12 \
	ORQ  R12, R10 \
	SHLQ $32, R9 \
	ORQ  R9, R11 \
	VMOVQ R10, X6 \
	VPMOVZXBD X6, Y6 \
	VCVTDQ2PS Y6, Y6 \
	VMOVQ R11, X7 \
	VPMOVZXBD X7, Y7 \
	VCVTDQ2PS Y7, Y7 \
	MOVWLZX (SI), AX \
	VBROADCASTSS (R8)(AX*4), Y4 \
	MOVWLZX 2(SI), AX \
	VBROADCASTSS (R8)(AX*4), Y5 \
	VMULPS Y4, Y6, Y6 \
	VMULPS Y5, Y7, Y7 \
	VMOVUPS (DX), Y8 \
	VMULPS Y8, Y6, Y6 \
	VMULPS Y8, Y7, Y7

// KRESULT_X0: X0's low lane = hsum(X0, all four lanes); clobbers X1.
#define KRESULT_X0 \
	VPERMILPS    $0x0e, X0, X1 \
	VADDPS       X1, X0, X0 \
	VMOVSHDUP    X0, X1 \
	VADDSS       X1, X0, X0

// KRESULT_Y: the dot's value, (Y0+Y1) − (Y2+Y3) summed over lanes, into
// X0's low lane; clobbers Y1-Y3.
#define KRESULT_Y \
	VADDPS Y1, Y0, Y0 \
	VADDPS Y3, Y2, Y2 \
	VSUBPS Y2, Y0, Y0 \
	VEXTRACTF128 $1, Y0, X1 \
	VADDPS       X1, X0, X0 \
	KRESULT_X0

// KRESULT_Z: as KRESULT_Y for the ZMM accumulators Z0-Z3.
#define KRESULT_Z \
	VADDPS Z1, Z0, Z0 \
	VADDPS Z3, Z2, Z2 \
	VSUBPS Z2, Z0, Z0 \
	VEXTRACTF32X8 $1, Z0, Y1 \
	VADDPS Y1, Y0, Y0 \
	VEXTRACTF128 $1, Y0, X1 \
	VADDPS       X1, X0, X0 \
	KRESULT_X0

// KSUB: one 32-element sub-block of the AVX2 dots: QV holds its 32 weight
// quants as uint8 (0..15 or 0..31), XOFF(DI) its activations as int8.
// ACC += s1·Σ q_w·q, the sum exact in int32 lanes (VPMADDUBSW pairs, then
// VPMADDWD with Y14 = int16 ones) and s1 broadcast from the stack.
// Clobbers Y4, Y11, Y12.
#define KSUB(QV, XOFF, S1OFF, ACC) \
	VMOVDQU      XOFF(DI), Y11 \
	VPMADDUBSW   Y11, QV, Y12 \
	VPMADDWD     Y14, Y12, Y12 \
	VCVTDQ2PS    Y12, Y12 \
	VBROADCASTSS S1OFF(SP), Y4 \
	VFMADD231PS  Y4, Y12, ACC

// KMINS: the mins' part of a block, Σ_j dmin·m[j]·dx[j]·Σq[j], into Y2 in
// one multiply-add, with R13 at the block's eight activation sums
// (SumsQ8) and Y7 from KSCALES; then R13 moves to the next block's. A
// VEX-encoded operation, so it also clears Z2's upper half, which the
// VNNI dots leave zero.
#define KMINS \
	VFMADD231PS (R13), Y7, Y2 \
	ADDQ $32, R13
