//go:build amd64 && !purego

#include "textflag.h"

// The AVX-512 block of DotTile: four activation rows by eight weight rows,
// with every sum in the canonical order of kern_amd64.s (one 8-lane
// accumulator per pair over the 8-element chunks in order, the last chunk
// masked, lanes added as ((l0+l1)+(l2+l3))+((l4+l5)+(l6+l7))), so it gives
// bitwise what dotTile3x4AVX2 and dotRows8AVX2 give for the same pairs.
//
// A ZMM register holds two 8-lane accumulators: the lower half that of
// activation row 2p and the upper half that of row 2p+1, against the same
// weight row. Each 8-element chunk loads the rows pairwise (a YMM load and
// a 256-bit insert), broadcasts each weight chunk to both halves, and
// issues sixteen 512-bit FMAs: 256 multiply-adds for twelve loads, where
// the 3x4 AVX2 block does 96 for seven. The FMAs are lane-wise, so each
// half computes exactly what the 256-bit kernels compute.

// The mask of the last k%8 lanes: kmask16<>+32-4*(k%8) holds k%8 words of
// ones then zeros (the same table as kern_amd64.s's kmask).
DATA kmask16<>+0(SB)/8, $-1
DATA kmask16<>+8(SB)/8, $-1
DATA kmask16<>+16(SB)/8, $-1
DATA kmask16<>+24(SB)/8, $-1
DATA kmask16<>+32(SB)/8, $0
DATA kmask16<>+40(SB)/8, $0
DATA kmask16<>+48(SB)/8, $0
DATA kmask16<>+56(SB)/8, $0
GLOBL kmask16<>(SB), RODATA|NOPTR, $64

// REDUCE4 as in kern_amd64.s: X(A) = the four canonical sums of A, B, C,
// D. Clobbers B, C.
#define REDUCE4(YA, YB, YC, YD, XA, XB) \
	VHADDPS      YB, YA, YA \
	VHADDPS      YD, YC, YC \
	VHADDPS      YC, YA, YA \
	VEXTRACTF128 $1, YA, XB \
	VADDPS       XB, XA, XA

// STORE4(H, Z0, Z1, Z2, Z3, DST): the canonical sums of half H (0 lower,
// 1 upper) of four accumulators to DST (four floats).
#define STORE4(H, ZA, ZB, ZC, ZD, DST) \
	VEXTRACTF32X8 $H, ZA, Y0 \
	VEXTRACTF32X8 $H, ZB, Y1 \
	VEXTRACTF32X8 $H, ZC, Y2 \
	VEXTRACTF32X8 $H, ZD, Y3 \
	REDUCE4(Y0, Y1, Y2, Y3, X0, X1) \
	VMOVUPS X0, DST

// PAIRS(OFF): Z4 = rows 0|1 and Z5 = rows 2|3 of the chunk at byte OFF of
// the activation rows (AX base, DX = one row, R8 = three rows).
// FMA8(Wi...): one weight chunk broadcast into Z6, times both pairs.
#define FMAW(MEM, ACC0, ACC1) \
	VBROADCASTF32X8 MEM, Z6 \
	VFMADD231PS     Z6, Z4, ACC0 \
	VFMADD231PS     Z6, Z5, ACC1

// Tail version: the weight chunk loaded masked (Y15) into Y6, copied to
// the upper half.
#define FMAWM(MEM, ACC0, ACC1) \
	VMASKMOVPS      MEM, Y15, Y6 \
	VINSERTF32X8    $1, Y6, Z6, Z6 \
	VFMADD231PS     Z6, Z4, ACC0 \
	VFMADD231PS     Z6, Z5, ACC1

// func dotTile4x8AVX512(dst *float32, ldd int, x *float32, ldx int, w *float32, ldw int, k int)
//
// dst[r*ldd+c] = sum over i < k of x[r*ldx+i]*w[c*ldw+i] for r < 4 and
// c < 8. Accumulators: Z16..Z23 rows 0|1 against weight rows 0..7,
// Z24..Z31 rows 2|3.
TEXT ·dotTile4x8AVX512(SB), NOSPLIT, $0-56
	MOVQ x+16(FP), AX
	MOVQ ldx+24(FP), DX
	SHLQ $2, DX
	LEAQ (DX)(DX*2), R8
	MOVQ w+32(FP), BX
	MOVQ ldw+40(FP), R9
	SHLQ $2, R9
	LEAQ (R9)(R9*2), R10
	LEAQ (BX)(R9*4), R11
	MOVQ k+48(FP), CX
	MOVQ CX, R12
	SHRQ $3, CX            // whole chunks
	ANDQ $7, R12           // tail lanes
	VPXORD Z16, Z16, Z16
	VPXORD Z17, Z17, Z17
	VPXORD Z18, Z18, Z18
	VPXORD Z19, Z19, Z19
	VPXORD Z20, Z20, Z20
	VPXORD Z21, Z21, Z21
	VPXORD Z22, Z22, Z22
	VPXORD Z23, Z23, Z23
	VPXORD Z24, Z24, Z24
	VPXORD Z25, Z25, Z25
	VPXORD Z26, Z26, Z26
	VPXORD Z27, Z27, Z27
	VPXORD Z28, Z28, Z28
	VPXORD Z29, Z29, Z29
	VPXORD Z30, Z30, Z30
	VPXORD Z31, Z31, Z31
	TESTQ CX, CX
	JZ    t48_tail

t48_loop:
	VMOVUPS      (AX), Y4
	VINSERTF32X8 $1, (AX)(DX*1), Z4, Z4
	VMOVUPS      (AX)(DX*2), Y5
	VINSERTF32X8 $1, (AX)(R8*1), Z5, Z5
	FMAW((BX), Z16, Z24)
	FMAW((BX)(R9*1), Z17, Z25)
	FMAW((BX)(R9*2), Z18, Z26)
	FMAW((BX)(R10*1), Z19, Z27)
	FMAW((R11), Z20, Z28)
	FMAW((R11)(R9*1), Z21, Z29)
	FMAW((R11)(R9*2), Z22, Z30)
	FMAW((R11)(R10*1), Z23, Z31)
	ADDQ $32, AX
	ADDQ $32, BX
	ADDQ $32, R11
	DECQ CX
	JNZ  t48_loop

t48_tail:
	TESTQ R12, R12
	JZ    t48_reduce
	SHLQ $2, R12
	NEGQ R12
	LEAQ kmask16<>+32(SB), R13
	VMOVUPS      (R13)(R12*1), Y15
	VMASKMOVPS   (AX), Y15, Y4
	VMASKMOVPS   (AX)(DX*1), Y15, Y7
	VINSERTF32X8 $1, Y7, Z4, Z4
	VMASKMOVPS   (AX)(DX*2), Y15, Y5
	VMASKMOVPS   (AX)(R8*1), Y15, Y7
	VINSERTF32X8 $1, Y7, Z5, Z5
	FMAWM((BX), Z16, Z24)
	FMAWM((BX)(R9*1), Z17, Z25)
	FMAWM((BX)(R9*2), Z18, Z26)
	FMAWM((BX)(R10*1), Z19, Z27)
	FMAWM((R11), Z20, Z28)
	FMAWM((R11)(R9*1), Z21, Z29)
	FMAWM((R11)(R9*2), Z22, Z30)
	FMAWM((R11)(R10*1), Z23, Z31)

t48_reduce:
	MOVQ dst+0(FP), DI
	MOVQ ldd+8(FP), BX
	SHLQ $2, BX
	LEAQ (BX)(BX*2), R9
	STORE4(0, Z16, Z17, Z18, Z19, (DI))
	STORE4(0, Z20, Z21, Z22, Z23, 16(DI))
	STORE4(1, Z16, Z17, Z18, Z19, (DI)(BX*1))
	STORE4(1, Z20, Z21, Z22, Z23, 16(DI)(BX*1))
	STORE4(0, Z24, Z25, Z26, Z27, (DI)(BX*2))
	STORE4(0, Z28, Z29, Z30, Z31, 16(DI)(BX*2))
	STORE4(1, Z24, Z25, Z26, Z27, (DI)(R9*1))
	STORE4(1, Z28, Z29, Z30, Z31, 16(DI)(R9*1))
	VZEROUPPER
	RET
