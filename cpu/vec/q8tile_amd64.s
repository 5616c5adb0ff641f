//go:build amd64 && !purego

#include "textflag.h"

// The bytes 0x80, 64 of them: XOR turns int8 activations into uint8 ones
// offset by 128, and VPDPBUSD of them with a weight gives 128·Σw.
DATA k80<>+0(SB)/8, $0x8080808080808080
DATA k80<>+8(SB)/8, $0x8080808080808080
DATA k80<>+16(SB)/8, $0x8080808080808080
DATA k80<>+24(SB)/8, $0x8080808080808080
DATA k80<>+32(SB)/8, $0x8080808080808080
DATA k80<>+40(SB)/8, $0x8080808080808080
DATA k80<>+48(SB)/8, $0x8080808080808080
DATA k80<>+56(SB)/8, $0x8080808080808080
GLOBL k80<>(SB), RODATA|NOPTR, $64

// WPREP(BASE, YW, ZW, ZNC, YDW, ZDW): the weight row's chunk at BASE: its
// two blocks' quants in ZW (block 2i low half, 2i+1 high), −128·Σw per
// 4-lane group in ZNC, the two f16 scales broadcast to their halves in
// ZDW; and a prefetch 4 KiB ahead, past the hardware prefetchers' page
// boundary, as the streaming one-row kernels do.
#define WPREP(BASE, YW, ZW, ZNC, YDW, ZDW) \
	PREFETCHT0    4096(BASE) \
	VMOVDQU32     2(BASE), YW \
	VINSERTI64X4  $1, 36(BASE), ZW, ZW \
	VPXORD        ZNC, ZNC, ZNC \
	VPDPBUSD      ZW, Z15, ZNC \
	VPXORD        Z26, Z26, Z26 \
	VPSUBD        ZNC, Z26, ZNC \
	MOVWLZX       (BASE), AX \
	VBROADCASTSS  (R8)(AX*4), YDW \
	MOVWLZX       34(BASE), AX \
	VBROADCASTSS  (R8)(AX*4), Y26 \
	VINSERTF32X8  $1, Y26, ZDW, ZDW

// The tail's single block: upper halves zero.
#define WPREP1(BASE, YW, ZW, ZNC, YDW) \
	VMOVDQU32     2(BASE), YW \
	VPXORD        ZNC, ZNC, ZNC \
	VPDPBUSD      ZW, Z15, ZNC \
	VPXORD        Z26, Z26, Z26 \
	VPSUBD        ZNC, Z26, ZNC \
	MOVWLZX       (BASE), AX \
	VBROADCASTSS  (R8)(AX*4), YDW

// PAIR(ZW, ZNC, ZDW, ACC): ACC += float(Σ x·w exactly) · (dw·dx), both
// blocks at once (Z22 = x+128 as uint8, Z23 = the x scales).
#define PAIR(ZW, ZNC, ZDW, ACC) \
	VMOVDQA32   ZNC, Z24 \
	VPDPBUSD    ZW, Z22, Z24 \
	VCVTDQ2PS   Z24, Z24 \
	VMULPS      Z23, ZDW, Z25 \
	VFMADD231PS Z25, Z24, ACC

// ROW(QADDR, DADDR, DADDR4, A0, A1, A2): one activation row (its chunk at
// QADDR, its two block scales at DADDR and DADDR4) against the three
// weight rows.
#define ROW(QADDR, DADDR, DADDR4, A0, A1, A2) \
	VPXORD        QADDR, Z15, Z22 \
	VBROADCASTSS  DADDR, Y23 \
	VBROADCASTSS  DADDR4, Y26 \
	VINSERTF32X8  $1, Y26, Z23, Z23 \
	PAIR(Z12, Z16, Z19, A0) \
	PAIR(Z13, Z17, Z20, A1) \
	PAIR(Z14, Z18, Z21, A2)

#define ROW1(QADDR, DADDR, A0, A1, A2) \
	VMOVDQU32     QADDR, Y22 \
	VPXORD        Z15, Z22, Z22 \
	VBROADCASTSS  DADDR, Y23 \
	PAIR(Z12, Z16, Z19, A0) \
	PAIR(Z13, Z17, Z20, A1) \
	PAIR(Z14, Z18, Z21, A2)

// STORE(ACC, YACC, XACC, DST): the canonical reduction of dotQ8_0Q8AVX2
// (even blocks + odd blocks, then HSUM_Y0's order) into the float at DST.
#define STORE(ACC, YACC, XACC, DST) \
	VEXTRACTF32X8 $1, ACC, Y26 \
	VADDPS        Y26, YACC, YACC \
	VEXTRACTF32X4 $1, YACC, X26 \
	VADDPS        X26, XACC, XACC \
	VPERMILPS     $0x0e, XACC, X26 \
	VADDPS        X26, XACC, XACC \
	VMOVSHDUP     XACC, X26 \
	VADDSS        X26, XACC, XACC \
	VMOVSS        XACC, DST

// func dotTileQ8_0Q8AVX512(dst *float32, ldd int, w *byte, ldw int, q *int8, ldq int, d *float32, ldx int, nb int)
//
// dst[r*ldd+c] = DotQ8_0Q8(w[c*ldw:], q[r*ldq:], d[r*ldx:r*ldx+nb]) for
// r < 4 and c < 3, bitwise: per pair the same int32 lanes (VPDPBUSD of
// x+128 with w, less 128·Σw, is Σ x·w exactly, four products a lane as
// VPMADDUBSW+VPMADDWD group them), the same scale product dw·dx, even
// blocks in the low half and odd in the high (dotQ8_0Q8AVX2's Y0 and Y1),
// and the same reduction. ldw is in bytes, ldq in int8s, ldx in floats.
TEXT ·dotTileQ8_0Q8AVX512(SB), NOSPLIT, $0-72
	MOVQ w+16(FP), SI
	MOVQ ldw+24(FP), R9
	LEAQ (SI)(R9*2), R14   // weight row 2
	ADDQ SI, R9            // weight row 1
	MOVQ q+32(FP), DI
	MOVQ ldq+40(FP), R10
	LEAQ (R10)(R10*2), R11
	MOVQ d+48(FP), DX
	MOVQ ldx+56(FP), R12
	SHLQ $2, R12
	LEAQ (R12)(R12*2), R13
	MOVQ nb+64(FP), CX
	MOVQ CX, BX
	ANDQ $1, BX
	SHRQ $1, CX
	LEAQ ·f16Table(SB), R8
	VMOVDQU32 k80<>(SB), Z15
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	TESTQ CX, CX
	JZ    tq8_tail

tq8_loop:
	WPREP(SI, Y12, Z12, Z16, Y19, Z19)
	WPREP(R9, Y13, Z13, Z17, Y20, Z20)
	WPREP(R14, Y14, Z14, Z18, Y21, Z21)
	ROW((DI), (DX), 4(DX), Z0, Z1, Z2)
	ROW((DI)(R10*1), (DX)(R12*1), 4(DX)(R12*1), Z3, Z4, Z5)
	ROW((DI)(R10*2), (DX)(R12*2), 4(DX)(R12*2), Z6, Z7, Z8)
	ROW((DI)(R11*1), (DX)(R13*1), 4(DX)(R13*1), Z9, Z10, Z11)
	ADDQ $68, SI
	ADDQ $68, R9
	ADDQ $68, R14
	ADDQ $64, DI
	ADDQ $8, DX
	DECQ CX
	JNZ  tq8_loop

tq8_tail:
	TESTQ BX, BX
	JZ    tq8_store
	WPREP1(SI, Y12, Z12, Z16, Y19)
	WPREP1(R9, Y13, Z13, Z17, Y20)
	WPREP1(R14, Y14, Z14, Z18, Y21)
	ROW1((DI), (DX), Z0, Z1, Z2)
	ROW1((DI)(R10*1), (DX)(R12*1), Z3, Z4, Z5)
	ROW1((DI)(R10*2), (DX)(R12*2), Z6, Z7, Z8)
	ROW1((DI)(R11*1), (DX)(R13*1), Z9, Z10, Z11)

tq8_store:
	MOVQ dst+0(FP), DI
	MOVQ ldd+8(FP), BX
	SHLQ $2, BX
	LEAQ (BX)(BX*2), CX
	STORE(Z0, Y0, X0, (DI))
	STORE(Z1, Y1, X1, 4(DI))
	STORE(Z2, Y2, X2, 8(DI))
	STORE(Z3, Y3, X3, (DI)(BX*1))
	STORE(Z4, Y4, X4, 4(DI)(BX*1))
	STORE(Z5, Y5, X5, 8(DI)(BX*1))
	STORE(Z6, Y6, X6, (DI)(BX*2))
	STORE(Z7, Y7, X7, 4(DI)(BX*2))
	STORE(Z8, Y8, X8, 8(DI)(BX*2))
	STORE(Z9, Y9, X9, (DI)(CX*1))
	STORE(Z10, Y10, X10, 4(DI)(CX*1))
	STORE(Z11, Y11, X11, 8(DI)(CX*1))
	VZEROUPPER
	RET
