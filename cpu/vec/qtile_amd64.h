// qtile_amd64.h: the body shared by the AVX512-VNNI quantized tiles of
// qtile_amd64.s. Before each #include: TILE_NAME (the function), TILE_BLOCK
// (bytes per 32-weight block) and WPREP/WPREP1 (a two-block chunk, and the
// tail's single block, of one weight row: quants as int8 in ZW, −128·Σw in
// ZNC, scales in ZDW). Every pair's arithmetic is the rest, the same for
// every weight type.

TEXT TILE_NAME(SB), NOSPLIT, $0-72
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
	WPREP(SI, X12, Y12, Z12, Z16, Y19, Z19)
	WPREP(R9, X13, Y13, Z13, Z17, Y20, Z20)
	WPREP(R14, X14, Y14, Z14, Z18, Y21, Z21)
	ROW((DI), (DX), 4(DX), Z0, Z1, Z2)
	ROW((DI)(R10*1), (DX)(R12*1), 4(DX)(R12*1), Z3, Z4, Z5)
	ROW((DI)(R10*2), (DX)(R12*2), 4(DX)(R12*2), Z6, Z7, Z8)
	ROW((DI)(R11*1), (DX)(R13*1), 4(DX)(R13*1), Z9, Z10, Z11)
	ADDQ $(2*TILE_BLOCK), SI
	ADDQ $(2*TILE_BLOCK), R9
	ADDQ $(2*TILE_BLOCK), R14
	ADDQ $64, DI
	ADDQ $8, DX
	DECQ CX
	JNZ  tq8_loop

tq8_tail:
	TESTQ BX, BX
	JZ    tq8_store
	WPREP1(SI, X12, Y12, Z12, Z16, Y19)
	WPREP1(R9, X13, Y13, Z13, Z17, Y20)
	WPREP1(R14, X14, Y14, Z14, Z18, Y21)
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
