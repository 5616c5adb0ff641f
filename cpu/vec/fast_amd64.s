//go:build amd64 && !purego

#include "textflag.h"

#define PFD 4096

// Reduce the eight lanes of Y0 into the low lane of X0. Clobbers X1.
#define HSUM_Y0 \
	VEXTRACTF128 $1, Y0, X1 \
	VADDPS       X1, X0, X0 \
	VPERMILPS    $0x0e, X0, X1 \
	VADDPS       X1, X0, X0 \
	VMOVSHDUP    X0, X1 \
	VADDSS       X1, X0, X0

// func dotAVX2(a, b *float32, n int) float32
TEXT ·dotAVX2(SB), NOSPLIT, $0-28
	MOVQ a+0(FP), SI
	MOVQ b+8(FP), DI
	MOVQ n+16(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	XORQ   AX, AX
	MOVQ   CX, DX
	ANDQ   $-32, DX
	JZ     dot_tail8

dot_loop32:
	PREFETCHT0  PFD(SI)(AX*4)
	PREFETCHT0  PFD+64(SI)(AX*4)
	PREFETCHT0  PFD(DI)(AX*4)
	PREFETCHT0  PFD+64(DI)(AX*4)
	VMOVUPS     (SI)(AX*4), Y4
	VMOVUPS     32(SI)(AX*4), Y5
	VMOVUPS     64(SI)(AX*4), Y6
	VMOVUPS     96(SI)(AX*4), Y7
	VFMADD231PS (DI)(AX*4), Y4, Y0
	VFMADD231PS 32(DI)(AX*4), Y5, Y1
	VFMADD231PS 64(DI)(AX*4), Y6, Y2
	VFMADD231PS 96(DI)(AX*4), Y7, Y3
	ADDQ        $32, AX
	CMPQ        AX, DX
	JB          dot_loop32

dot_tail8:
	MOVQ CX, DX
	ANDQ $-8, DX
	CMPQ AX, DX
	JAE  dot_reduce

dot_loop8:
	VMOVUPS     (SI)(AX*4), Y4
	VFMADD231PS (DI)(AX*4), Y4, Y0
	ADDQ        $8, AX
	CMPQ        AX, DX
	JB          dot_loop8

dot_reduce:
	VADDPS Y1, Y0, Y0
	VADDPS Y3, Y2, Y2
	VADDPS Y2, Y0, Y0
	HSUM_Y0
	CMPQ   AX, CX
	JAE    dot_done

dot_loop1:
	VMOVSS      (SI)(AX*4), X1
	VFMADD231SS (DI)(AX*4), X1, X0
	INCQ        AX
	CMPQ        AX, CX
	JB          dot_loop1

dot_done:
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

// func dotF16AVX2(w *byte, x *float32, n int) float32
TEXT ·dotF16AVX2(SB), NOSPLIT, $0-28
	MOVQ w+0(FP), SI
	MOVQ x+8(FP), DI
	MOVQ n+16(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	XORQ   AX, AX
	MOVQ   CX, DX
	ANDQ   $-32, DX
	JZ     f16_tail8

f16_loop32:
	PREFETCHT0  PFD(SI)(AX*2)
	VCVTPH2PS   (SI)(AX*2), Y4
	VCVTPH2PS   16(SI)(AX*2), Y5
	VCVTPH2PS   32(SI)(AX*2), Y6
	VCVTPH2PS   48(SI)(AX*2), Y7
	VFMADD231PS (DI)(AX*4), Y4, Y0
	VFMADD231PS 32(DI)(AX*4), Y5, Y1
	VFMADD231PS 64(DI)(AX*4), Y6, Y2
	VFMADD231PS 96(DI)(AX*4), Y7, Y3
	ADDQ        $32, AX
	CMPQ        AX, DX
	JB          f16_loop32

f16_tail8:
	MOVQ CX, DX
	ANDQ $-8, DX
	CMPQ AX, DX
	JAE  f16_reduce

f16_loop8:
	VCVTPH2PS   (SI)(AX*2), Y4
	VFMADD231PS (DI)(AX*4), Y4, Y0
	ADDQ        $8, AX
	CMPQ        AX, DX
	JB          f16_loop8

f16_reduce:
	VADDPS Y1, Y0, Y0
	VADDPS Y3, Y2, Y2
	VADDPS Y2, Y0, Y0
	HSUM_Y0
	CMPQ   AX, CX
	JAE    f16_done

f16_loop1:
	MOVWLZX     (SI)(AX*2), BX
	VMOVD       BX, X1
	VCVTPH2PS   X1, X1
	VFMADD231SS (DI)(AX*4), X1, X0
	INCQ        AX
	CMPQ        AX, CX
	JB          f16_loop1

f16_done:
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

// func dotBF16AVX2(w *byte, x *float32, n int) float32
TEXT ·dotBF16AVX2(SB), NOSPLIT, $0-28
	MOVQ w+0(FP), SI
	MOVQ x+8(FP), DI
	MOVQ n+16(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	XORQ   AX, AX
	MOVQ   CX, DX
	ANDQ   $-32, DX
	JZ     bf16_tail8

bf16_loop32:
	PREFETCHT0  PFD(SI)(AX*2)
	PREFETCHT0  PFD(SI)(AX*2)
	VPMOVZXWD   (SI)(AX*2), Y4
	VPMOVZXWD   16(SI)(AX*2), Y5
	VPMOVZXWD   32(SI)(AX*2), Y6
	VPMOVZXWD   48(SI)(AX*2), Y7
	VPSLLD      $16, Y4, Y4
	VPSLLD      $16, Y5, Y5
	VPSLLD      $16, Y6, Y6
	VPSLLD      $16, Y7, Y7
	VFMADD231PS (DI)(AX*4), Y4, Y0
	VFMADD231PS 32(DI)(AX*4), Y5, Y1
	VFMADD231PS 64(DI)(AX*4), Y6, Y2
	VFMADD231PS 96(DI)(AX*4), Y7, Y3
	ADDQ        $32, AX
	CMPQ        AX, DX
	JB          bf16_loop32

bf16_tail8:
	MOVQ CX, DX
	ANDQ $-8, DX
	CMPQ AX, DX
	JAE  bf16_reduce

bf16_loop8:
	VPMOVZXWD   (SI)(AX*2), Y4
	VPSLLD      $16, Y4, Y4
	VFMADD231PS (DI)(AX*4), Y4, Y0
	ADDQ        $8, AX
	CMPQ        AX, DX
	JB          bf16_loop8

bf16_reduce:
	VADDPS Y1, Y0, Y0
	VADDPS Y3, Y2, Y2
	VADDPS Y2, Y0, Y0
	HSUM_Y0
	CMPQ   AX, CX
	JAE    bf16_done

bf16_loop1:
	MOVWLZX     (SI)(AX*2), BX
	SHLL        $16, BX
	VMOVD       BX, X1
	VFMADD231SS (DI)(AX*4), X1, X0
	INCQ        AX
	CMPQ        AX, CX
	JB          bf16_loop1

bf16_done:
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

// Q8_0 block at (SI) times the 32 floats at (DI), scaled by the block's d,
// accumulated into ACC. Uses Y4-Y8.
#define Q8_0_BLOCK(ACC) \
	VPMOVSXBD   2(SI), Y4 \
	VPMOVSXBD   10(SI), Y5 \
	VPMOVSXBD   18(SI), Y6 \
	VPMOVSXBD   26(SI), Y7 \
	VCVTDQ2PS   Y4, Y4 \
	VCVTDQ2PS   Y5, Y5 \
	VCVTDQ2PS   Y6, Y6 \
	VCVTDQ2PS   Y7, Y7 \
	VMULPS      (DI), Y4, Y4 \
	VMULPS      32(DI), Y5, Y5 \
	VFMADD231PS 64(DI), Y6, Y4 \
	VFMADD231PS 96(DI), Y7, Y5 \
	VCVTPH2PS   (SI), X8 \
	VADDPS      Y5, Y4, Y4 \
	VBROADCASTSS X8, Y8 \
	VFMADD231PS Y8, Y4, ACC

// func dotQ8_0AVX2(w *byte, x *float32, nb int) float32
TEXT ·dotQ8_0AVX2(SB), NOSPLIT, $0-28
	MOVQ w+0(FP), SI
	MOVQ x+8(FP), DI
	MOVQ nb+16(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	CMPQ   CX, $2
	JB     q8_tail

q8_loop2:
	PREFETCHT0 4096(SI)
	Q8_0_BLOCK(Y0)
	ADDQ $34, SI
	ADDQ $128, DI
	Q8_0_BLOCK(Y1)
	ADDQ $34, SI
	ADDQ $128, DI
	SUBQ $2, CX
	CMPQ CX, $2
	JAE  q8_loop2

q8_tail:
	TESTQ CX, CX
	JZ    q8_reduce
	Q8_0_BLOCK(Y0)

q8_reduce:
	VADDPS Y1, Y0, Y0
	HSUM_Y0
	VZEROUPPER
	MOVSS  X0, ret+24(FP)
	RET

// Q4_0 block at (SI) times the 32 floats at (DI), scaled by the block's d,
// accumulated into ACC. Expects Y15 = 15 and Y14 = 8 in every int32 lane.
// Uses Y4-Y8.
#define Q4_0_BLOCK(ACC) \
	VPMOVZXBD   2(SI), Y4 \
	VPMOVZXBD   10(SI), Y5 \
	VPSRLD      $4, Y4, Y6 \
	VPSRLD      $4, Y5, Y7 \
	VPAND       Y15, Y4, Y4 \
	VPAND       Y15, Y5, Y5 \
	VPSUBD      Y14, Y4, Y4 \
	VPSUBD      Y14, Y5, Y5 \
	VPSUBD      Y14, Y6, Y6 \
	VPSUBD      Y14, Y7, Y7 \
	VCVTDQ2PS   Y4, Y4 \
	VCVTDQ2PS   Y5, Y5 \
	VCVTDQ2PS   Y6, Y6 \
	VCVTDQ2PS   Y7, Y7 \
	VMULPS      (DI), Y4, Y4 \
	VMULPS      32(DI), Y5, Y5 \
	VFMADD231PS 64(DI), Y6, Y4 \
	VFMADD231PS 96(DI), Y7, Y5 \
	VCVTPH2PS   (SI), X8 \
	VADDPS      Y5, Y4, Y4 \
	VBROADCASTSS X8, Y8 \
	VFMADD231PS Y8, Y4, ACC

// func dotQ4_0AVX2(w *byte, x *float32, nb int) float32
TEXT ·dotQ4_0AVX2(SB), NOSPLIT, $0-28
	MOVQ w+0(FP), SI
	MOVQ x+8(FP), DI
	MOVQ nb+16(FP), CX
	MOVL $15, AX
	VMOVD AX, X15
	VPBROADCASTD X15, Y15
	MOVL $8, AX
	VMOVD AX, X14
	VPBROADCASTD X14, Y14
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	CMPQ   CX, $2
	JB     q4_tail

q4_loop2:
	PREFETCHT0 4096(SI)
	Q4_0_BLOCK(Y0)
	ADDQ $18, SI
	ADDQ $128, DI
	Q4_0_BLOCK(Y1)
	ADDQ $18, SI
	ADDQ $128, DI
	SUBQ $2, CX
	CMPQ CX, $2
	JAE  q4_loop2

q4_tail:
	TESTQ CX, CX
	JZ    q4_reduce
	Q4_0_BLOCK(Y0)

q4_reduce:
	VADDPS Y1, Y0, Y0
	HSUM_Y0
	VZEROUPPER
	MOVSS  X0, ret+24(FP)
	RET

// func axpyAVX2(a float32, x, y *float32, n int)
TEXT ·axpyAVX2(SB), NOSPLIT, $0-32
	VBROADCASTSS a+0(FP), Y15
	MOVQ x+8(FP), SI
	MOVQ y+16(FP), DI
	MOVQ n+24(FP), CX
	XORQ AX, AX
	MOVQ CX, DX
	ANDQ $-32, DX
	JZ   axpy_tail8

axpy_loop32:
	VMOVUPS     (SI)(AX*4), Y0
	VMOVUPS     32(SI)(AX*4), Y1
	VMOVUPS     64(SI)(AX*4), Y2
	VMOVUPS     96(SI)(AX*4), Y3
	VFMADD213PS (DI)(AX*4), Y15, Y0
	VFMADD213PS 32(DI)(AX*4), Y15, Y1
	VFMADD213PS 64(DI)(AX*4), Y15, Y2
	VFMADD213PS 96(DI)(AX*4), Y15, Y3
	VMOVUPS     Y0, (DI)(AX*4)
	VMOVUPS     Y1, 32(DI)(AX*4)
	VMOVUPS     Y2, 64(DI)(AX*4)
	VMOVUPS     Y3, 96(DI)(AX*4)
	ADDQ        $32, AX
	CMPQ        AX, DX
	JB          axpy_loop32

axpy_tail8:
	MOVQ CX, DX
	ANDQ $-8, DX
	CMPQ AX, DX
	JAE  axpy_tail1

axpy_loop8:
	VMOVUPS     (SI)(AX*4), Y0
	VFMADD213PS (DI)(AX*4), Y15, Y0
	VMOVUPS     Y0, (DI)(AX*4)
	ADDQ        $8, AX
	CMPQ        AX, DX
	JB          axpy_loop8

axpy_tail1:
	CMPQ AX, CX
	JAE  axpy_done

axpy_loop1:
	VMOVSS      (SI)(AX*4), X0
	VFMADD213SS (DI)(AX*4), X15, X0
	VMOVSS      X0, (DI)(AX*4)
	INCQ        AX
	CMPQ        AX, CX
	JB          axpy_loop1

axpy_done:
	VZEROUPPER
	RET
