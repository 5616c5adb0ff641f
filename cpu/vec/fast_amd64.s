//go:build amd64 && !purego

#include "textflag.h"

#define PFD 4096

// Eight all-ones dwords then eight zero dwords: the 8 dwords starting at
// dword 8-k are a VMASKMOVPS mask selecting the first k lanes.
DATA tailmask<>+0(SB)/8, $-1
DATA tailmask<>+8(SB)/8, $-1
DATA tailmask<>+16(SB)/8, $-1
DATA tailmask<>+24(SB)/8, $-1
DATA tailmask<>+32(SB)/8, $0
DATA tailmask<>+40(SB)/8, $0
DATA tailmask<>+48(SB)/8, $0
DATA tailmask<>+56(SB)/8, $0
GLOBL tailmask<>(SB), RODATA|NOPTR, $64

// Reduce the eight lanes of Y0 into the low lane of X0. Clobbers X1.
#define HSUM_Y0 \
	VEXTRACTF128 $1, Y0, X1 \
	VADDPS       X1, X0, X0 \
	VPERMILPS    $0x0e, X0, X1 \
	VADDPS       X1, X0, X0 \
	VMOVSHDUP    X0, X1 \
	VADDSS       X1, X0, X0

// func dotAVX2(a, b *float32, n int) float32
//
// Eight accumulators of 8 lanes (64 elements per iteration) keep both FMA
// units busy despite their 4-cycle latency. One prefetch per 128 bytes of
// each operand, PFD bytes ahead; the L2 streamer and the adjacent-line
// prefetcher fetch the rest. A masked load handles the last n%8 elements.
TEXT ·dotAVX2(SB), NOSPLIT, $0-28
	MOVQ a+0(FP), SI
	MOVQ b+8(FP), DI
	MOVQ n+16(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	XORQ   AX, AX
	MOVQ   CX, DX
	ANDQ   $-64, DX
	JZ     dot_tail8

dot_loop64:
	PREFETCHT0  PFD(SI)(AX*4)
	PREFETCHT0  PFD+128(SI)(AX*4)
	PREFETCHT0  PFD(DI)(AX*4)
	PREFETCHT0  PFD+128(DI)(AX*4)
	VMOVUPS     (SI)(AX*4), Y8
	VMOVUPS     32(SI)(AX*4), Y9
	VMOVUPS     64(SI)(AX*4), Y10
	VMOVUPS     96(SI)(AX*4), Y11
	VFMADD231PS (DI)(AX*4), Y8, Y0
	VFMADD231PS 32(DI)(AX*4), Y9, Y1
	VFMADD231PS 64(DI)(AX*4), Y10, Y2
	VFMADD231PS 96(DI)(AX*4), Y11, Y3
	VMOVUPS     128(SI)(AX*4), Y8
	VMOVUPS     160(SI)(AX*4), Y9
	VMOVUPS     192(SI)(AX*4), Y10
	VMOVUPS     224(SI)(AX*4), Y11
	VFMADD231PS 128(DI)(AX*4), Y8, Y4
	VFMADD231PS 160(DI)(AX*4), Y9, Y5
	VFMADD231PS 192(DI)(AX*4), Y10, Y6
	VFMADD231PS 224(DI)(AX*4), Y11, Y7
	ADDQ        $64, AX
	CMPQ        AX, DX
	JB          dot_loop64

dot_tail8:
	MOVQ CX, DX
	ANDQ $-8, DX
	CMPQ AX, DX
	JAE  dot_tailmask

dot_loop8:
	VMOVUPS     (SI)(AX*4), Y8
	VFMADD231PS (DI)(AX*4), Y8, Y0
	ADDQ        $8, AX
	CMPQ        AX, DX
	JB          dot_loop8

dot_tailmask:
	SUBQ AX, CX                  // 0..7 elements left
	JZ   dot_reduce
	NEGQ CX
	LEAQ tailmask<>+32(SB), R8
	VMOVUPS    (R8)(CX*4), Y12
	VMASKMOVPS (SI)(AX*4), Y12, Y8
	VMASKMOVPS (DI)(AX*4), Y12, Y9
	VFMADD231PS Y9, Y8, Y1

dot_reduce:
	VADDPS Y4, Y0, Y0
	VADDPS Y5, Y1, Y1
	VADDPS Y6, Y2, Y2
	VADDPS Y7, Y3, Y3
	VADDPS Y1, Y0, Y0
	VADDPS Y3, Y2, Y2
	VADDPS Y2, Y0, Y0
	HSUM_Y0
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
	MOVWLZX     (SI), BX \
	VADDPS      Y5, Y4, Y4 \
	VBROADCASTSS (R8)(BX*4), Y8 \
	VFMADD231PS Y8, Y4, ACC

// func dotQ8_0AVX2(w *byte, x *float32, nb int) float32
TEXT ·dotQ8_0AVX2(SB), NOSPLIT, $0-28
	MOVQ w+0(FP), SI
	MOVQ x+8(FP), DI
	MOVQ nb+16(FP), CX
	LEAQ ·f16Table(SB), R8
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
	MOVWLZX     (SI), BX \
	VADDPS      Y5, Y4, Y4 \
	VBROADCASTSS (R8)(BX*4), Y8 \
	VFMADD231PS Y8, Y4, ACC

// func dotQ4_0AVX2(w *byte, x *float32, nb int) float32
TEXT ·dotQ4_0AVX2(SB), NOSPLIT, $0-28
	MOVQ w+0(FP), SI
	MOVQ x+8(FP), DI
	MOVQ nb+16(FP), CX
	LEAQ ·f16Table(SB), R8
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

// The integer path. Y15 holds 1 in every int16 lane (VPMADDWD then adds
// pairs of int16 into int32), R8 points at f16Table, SI at the weight
// block, DI at its 32 quantized activations, DX at their float32 scale.
//
// Q8Q8_DOT(W, OFFQ, OFFD, ACC): W holds 32 signed weights. The products
// w*q go through VPMADDUBSW, which multiplies unsigned by signed bytes, as
// |w| * (q with w's sign); each int16 pair sum is at most 2*128*127, so it
// cannot saturate. Eight int32 partial sums are converted to float32 (they
// are below 2^24: exact) and accumulated as ACC += (dw*dx) * partials.
// Clobbers W, Y5-Y7 and BX.
#define Q8Q8_DOT(W, OFFW, OFFQ, OFFD, ACC) \
	VMOVDQU      OFFQ(DI), Y5 \
	VPSIGNB      W, Y5, Y5 \
	VPABSB       W, W \
	VPMADDUBSW   Y5, W, Y6 \
	VPMADDWD     Y15, Y6, Y6 \
	VCVTDQ2PS    Y6, Y6 \
	MOVWLZX      OFFW(SI), BX \
	VMOVSS       (R8)(BX*4), X7 \
	VMULSS       OFFD(DX), X7, X7 \
	VBROADCASTSS X7, Y7 \
	VFMADD231PS  Y7, Y6, ACC

#define Q8_0Q8_BLOCK(OFFW, OFFQ, OFFD, ACC) \
	VMOVDQU OFFW+2(SI), Y4 \
	Q8Q8_DOT(Y4, OFFW, OFFQ, OFFD, ACC)

// Q4_0 weights: the 16 bytes go to both lanes of Y4, the second lane
// shifted right by 4, so after masking lane 0 holds elements 0-15 (low
// nibbles) and lane 1 elements 16-31 (high nibbles). Y13 holds 0x0f and
// Y12 holds 8 in every byte.
#define Q4_0Q8_BLOCK(OFFW, OFFQ, OFFD, ACC) \
	VMOVDQU     OFFW+2(SI), X4 \
	VPSRLW      $4, X4, X5 \
	VINSERTI128 $1, X5, Y4, Y4 \
	VPAND       Y13, Y4, Y4 \
	VPSUBB      Y12, Y4, Y4 \
	Q8Q8_DOT(Y4, OFFW, OFFQ, OFFD, ACC)

// func dotQ8_0Q8AVX2(w *byte, q *int8, d *float32, nb int) float32
TEXT ·dotQ8_0Q8AVX2(SB), NOSPLIT, $0-36
	MOVQ w+0(FP), SI
	MOVQ q+8(FP), DI
	MOVQ d+16(FP), DX
	MOVQ nb+24(FP), CX
	LEAQ ·f16Table(SB), R8
	MOVL $0x00010001, AX
	VMOVD AX, X15
	VPBROADCASTD X15, Y15
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	CMPQ   CX, $2
	JB     q8q8_tail

q8q8_loop2:
	PREFETCHT0 4096(SI)
	Q8_0Q8_BLOCK(0, 0, 0, Y0)
	Q8_0Q8_BLOCK(34, 32, 4, Y1)
	ADDQ $68, SI
	ADDQ $64, DI
	ADDQ $8, DX
	SUBQ $2, CX
	CMPQ CX, $2
	JAE  q8q8_loop2

q8q8_tail:
	TESTQ CX, CX
	JZ    q8q8_reduce
	Q8_0Q8_BLOCK(0, 0, 0, Y0)

q8q8_reduce:
	VADDPS Y1, Y0, Y0
	HSUM_Y0
	VZEROUPPER
	MOVSS  X0, ret+32(FP)
	RET

// func dotQ4_0Q8AVX2(w *byte, q *int8, d *float32, nb int) float32
TEXT ·dotQ4_0Q8AVX2(SB), NOSPLIT, $0-36
	MOVQ w+0(FP), SI
	MOVQ q+8(FP), DI
	MOVQ d+16(FP), DX
	MOVQ nb+24(FP), CX
	LEAQ ·f16Table(SB), R8
	MOVL $0x00010001, AX
	VMOVD AX, X15
	VPBROADCASTD X15, Y15
	MOVL $0x0f0f0f0f, AX
	VMOVD AX, X13
	VPBROADCASTD X13, Y13
	MOVL $0x08080808, AX
	VMOVD AX, X12
	VPBROADCASTD X12, Y12
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	CMPQ   CX, $2
	JB     q4q8_tail

q4q8_loop2:
	PREFETCHT0 4096(SI)
	Q4_0Q8_BLOCK(0, 0, 0, Y0)
	Q4_0Q8_BLOCK(18, 32, 4, Y1)
	ADDQ $36, SI
	ADDQ $64, DI
	ADDQ $8, DX
	SUBQ $2, CX
	CMPQ CX, $2
	JAE  q4q8_loop2

q4q8_tail:
	TESTQ CX, CX
	JZ    q4q8_reduce
	Q4_0Q8_BLOCK(0, 0, 0, Y0)

q4q8_reduce:
	VADDPS Y1, Y0, Y0
	HSUM_Y0
	VZEROUPPER
	MOVSS  X0, ret+32(FP)
	RET

// Dword order that undoes the lane interleaving of VPACKSSDW+VPACKSSWB.
DATA q8perm<>+0(SB)/4, $0
DATA q8perm<>+4(SB)/4, $4
DATA q8perm<>+8(SB)/4, $1
DATA q8perm<>+12(SB)/4, $5
DATA q8perm<>+16(SB)/4, $2
DATA q8perm<>+20(SB)/4, $6
DATA q8perm<>+24(SB)/4, $3
DATA q8perm<>+28(SB)/4, $7
GLOBL q8perm<>(SB), RODATA|NOPTR, $32

// func quantizeQ8AVX2(q *int8, d *float32, x *float32, nb int)
//
// Per block: amax is the integer maximum of the absolute values' bit
// patterns (for non-negative floats the same order as the float values,
// with NaN above +Inf), so one comparison finds non-finite blocks. Then
// d = amax/127, id = 127/amax and q = VCVTPS2DQ(x*id), which rounds to
// nearest even under Go's MXCSR: bit-identical to QuantizeQ8Generic.
TEXT ·quantizeQ8AVX2(SB), NOSPLIT, $0-32
	MOVQ q+0(FP), DI
	MOVQ d+8(FP), DX
	MOVQ x+16(FP), SI
	MOVQ nb+24(FP), CX
	MOVL $0x7fffffff, AX
	VMOVD AX, X15
	VPBROADCASTD X15, Y15        // abs mask
	VMOVDQU q8perm<>(SB), Y14
	MOVL $0x42fe0000, AX         // 127.0
	VMOVD AX, X13
	TESTQ CX, CX
	JZ    quant_done

quant_loop:
	VMOVUPS  (SI), Y0
	VMOVUPS  32(SI), Y1
	VMOVUPS  64(SI), Y2
	VMOVUPS  96(SI), Y3
	VPAND    Y15, Y0, Y4
	VPAND    Y15, Y1, Y5
	VPAND    Y15, Y2, Y6
	VPAND    Y15, Y3, Y7
	VPMAXSD  Y5, Y4, Y4
	VPMAXSD  Y7, Y6, Y6
	VPMAXSD  Y6, Y4, Y4
	VEXTRACTI128 $1, Y4, X5
	VPMAXSD  X5, X4, X4
	VPSHUFD  $0x4e, X4, X5
	VPMAXSD  X5, X4, X4
	VPSHUFD  $0xb1, X4, X5
	VPMAXSD  X5, X4, X4          // amax in every lane of X4
	VMOVD    X4, AX
	CMPL     AX, $0x7f800000
	JAE      quant_nonfinite
	CMPL     AX, $0x03800000
	JB       quant_zero          // amax < 2^-120: 127/amax would overflow
	VDIVSS   X13, X4, X5         // d = amax / 127
	VMOVSS   X5, (DX)
	VDIVSS   X4, X13, X6         // id = 127 / amax
	VBROADCASTSS X6, Y6
	VMULPS    Y6, Y0, Y0
	VMULPS    Y6, Y1, Y1
	VMULPS    Y6, Y2, Y2
	VMULPS    Y6, Y3, Y3
	VCVTPS2DQ Y0, Y0
	VCVTPS2DQ Y1, Y1
	VCVTPS2DQ Y2, Y2
	VCVTPS2DQ Y3, Y3
	VPACKSSDW Y1, Y0, Y0
	VPACKSSDW Y3, Y2, Y2
	VPACKSSWB Y2, Y0, Y0
	VPERMD    Y0, Y14, Y0
	VMOVDQU   Y0, (DI)

quant_next:
	ADDQ $128, SI
	ADDQ $32, DI
	ADDQ $4, DX
	DECQ CX
	JNZ  quant_loop

quant_done:
	VZEROUPPER
	RET

quant_nonfinite:
	MOVL    $0x7fc00000, (DX)    // NaN scale, zero integers
	VPXOR   Y0, Y0, Y0
	VMOVDQU Y0, (DI)
	JMP     quant_next

quant_zero:
	MOVL    $0, (DX)             // zero scale, zero integers
	VPXOR   Y0, Y0, Y0
	VMOVDQU Y0, (DI)
	JMP     quant_next


// func dot4AVX2(dst *float32, w *float32, stride int, x *float32, n int)
//
// dst[r] = sum over i < n of w[r*stride+i]*x[i], for r = 0..3. Each x load
// feeds four FMAs, one per row: 10 loads per 8 FMAs where Dot needs 16.
TEXT ·dot4AVX2(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DX
	MOVQ w+8(FP), R8
	MOVQ stride+16(FP), BX
	MOVQ x+24(FP), DI
	MOVQ n+32(FP), CX
	SHLQ $2, BX
	LEAQ (R8)(BX*1), R9
	LEAQ (R9)(BX*1), R10
	LEAQ (R10)(BX*1), R11
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	XORQ   AX, AX
	MOVQ   CX, SI
	ANDQ   $-32, SI
	JZ     dot4_tail16

dot4_loop32:
	PREFETCHT0  PFD(R8)(AX*4)
	PREFETCHT0  PFD(R9)(AX*4)
	PREFETCHT0  PFD(R10)(AX*4)
	PREFETCHT0  PFD(R11)(AX*4)
	VMOVUPS     (DI)(AX*4), Y8
	VMOVUPS     32(DI)(AX*4), Y9
	VMOVUPS     64(DI)(AX*4), Y10
	VMOVUPS     96(DI)(AX*4), Y11
	VFMADD231PS (R8)(AX*4), Y8, Y0
	VFMADD231PS 32(R8)(AX*4), Y9, Y1
	VFMADD231PS (R9)(AX*4), Y8, Y2
	VFMADD231PS 32(R9)(AX*4), Y9, Y3
	VFMADD231PS (R10)(AX*4), Y8, Y4
	VFMADD231PS 32(R10)(AX*4), Y9, Y5
	VFMADD231PS (R11)(AX*4), Y8, Y6
	VFMADD231PS 32(R11)(AX*4), Y9, Y7
	VFMADD231PS 64(R8)(AX*4), Y10, Y0
	VFMADD231PS 96(R8)(AX*4), Y11, Y1
	VFMADD231PS 64(R9)(AX*4), Y10, Y2
	VFMADD231PS 96(R9)(AX*4), Y11, Y3
	VFMADD231PS 64(R10)(AX*4), Y10, Y4
	VFMADD231PS 96(R10)(AX*4), Y11, Y5
	VFMADD231PS 64(R11)(AX*4), Y10, Y6
	VFMADD231PS 96(R11)(AX*4), Y11, Y7
	ADDQ        $32, AX
	CMPQ        AX, SI
	JB          dot4_loop32

dot4_tail16:
	MOVQ CX, SI
	SUBQ AX, SI
	CMPQ SI, $16
	JB   dot4_tail8
	VMOVUPS     (DI)(AX*4), Y12
	VMOVUPS     32(DI)(AX*4), Y13
	VFMADD231PS (R8)(AX*4), Y12, Y0
	VFMADD231PS 32(R8)(AX*4), Y13, Y1
	VFMADD231PS (R9)(AX*4), Y12, Y2
	VFMADD231PS 32(R9)(AX*4), Y13, Y3
	VFMADD231PS (R10)(AX*4), Y12, Y4
	VFMADD231PS 32(R10)(AX*4), Y13, Y5
	VFMADD231PS (R11)(AX*4), Y12, Y6
	VFMADD231PS 32(R11)(AX*4), Y13, Y7
	ADDQ        $16, AX

dot4_tail8:
	MOVQ CX, SI
	SUBQ AX, SI
	CMPQ SI, $8
	JB   dot4_tailmask
	VMOVUPS     (DI)(AX*4), Y12
	VFMADD231PS (R8)(AX*4), Y12, Y0
	VFMADD231PS (R9)(AX*4), Y12, Y2
	VFMADD231PS (R10)(AX*4), Y12, Y4
	VFMADD231PS (R11)(AX*4), Y12, Y6
	ADDQ        $8, AX
	SUBQ        $8, SI

dot4_tailmask:
	TESTQ SI, SI
	JZ    dot4_reduce
	NEGQ  SI
	LEAQ  tailmask<>+32(SB), R12
	VMOVUPS (R12)(SI*4), Y14       // first n-AX lanes set
	VMASKMOVPS (DI)(AX*4), Y14, Y12
	VMASKMOVPS (R8)(AX*4), Y14, Y13
	VFMADD231PS Y13, Y12, Y1
	VMASKMOVPS (R9)(AX*4), Y14, Y13
	VFMADD231PS Y13, Y12, Y3
	VMASKMOVPS (R10)(AX*4), Y14, Y13
	VFMADD231PS Y13, Y12, Y5
	VMASKMOVPS (R11)(AX*4), Y14, Y13
	VFMADD231PS Y13, Y12, Y7

dot4_reduce:
	VADDPS   Y1, Y0, Y0
	VADDPS   Y3, Y2, Y2
	VADDPS   Y5, Y4, Y4
	VADDPS   Y7, Y6, Y6
	VHADDPS  Y2, Y0, Y0
	VHADDPS  Y6, Y4, Y4
	VHADDPS  Y4, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS   X1, X0, X0
	VMOVUPS  X0, (DX)
	VZEROUPPER
	RET

// func widenF16AVX2(dst *float32, src *byte, n int)
TEXT ·widenF16AVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	XORQ AX, AX
	MOVQ CX, DX
	ANDQ $-32, DX
	JZ   wf16_tail8

wf16_loop32:
	VCVTPH2PS (SI)(AX*2), Y0
	VCVTPH2PS 16(SI)(AX*2), Y1
	VCVTPH2PS 32(SI)(AX*2), Y2
	VCVTPH2PS 48(SI)(AX*2), Y3
	VMOVUPS   Y0, (DI)(AX*4)
	VMOVUPS   Y1, 32(DI)(AX*4)
	VMOVUPS   Y2, 64(DI)(AX*4)
	VMOVUPS   Y3, 96(DI)(AX*4)
	ADDQ      $32, AX
	CMPQ      AX, DX
	JB        wf16_loop32

wf16_tail8:
	MOVQ CX, DX
	ANDQ $-8, DX
	CMPQ AX, DX
	JAE  wf16_tail1

wf16_loop8:
	VCVTPH2PS (SI)(AX*2), Y0
	VMOVUPS   Y0, (DI)(AX*4)
	ADDQ      $8, AX
	CMPQ      AX, DX
	JB        wf16_loop8

wf16_tail1:
	CMPQ AX, CX
	JAE  wf16_done

wf16_loop1:
	MOVWLZX   (SI)(AX*2), BX
	VMOVD     BX, X0
	VCVTPH2PS X0, X0
	VMOVSS    X0, (DI)(AX*4)
	INCQ      AX
	CMPQ      AX, CX
	JB        wf16_loop1

wf16_done:
	VZEROUPPER
	RET

// func widenBF16AVX2(dst *float32, src *byte, n int)
TEXT ·widenBF16AVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	XORQ AX, AX
	MOVQ CX, DX
	ANDQ $-32, DX
	JZ   wbf16_tail8

wbf16_loop32:
	VPMOVZXWD (SI)(AX*2), Y0
	VPMOVZXWD 16(SI)(AX*2), Y1
	VPMOVZXWD 32(SI)(AX*2), Y2
	VPMOVZXWD 48(SI)(AX*2), Y3
	VPSLLD    $16, Y0, Y0
	VPSLLD    $16, Y1, Y1
	VPSLLD    $16, Y2, Y2
	VPSLLD    $16, Y3, Y3
	VMOVUPS   Y0, (DI)(AX*4)
	VMOVUPS   Y1, 32(DI)(AX*4)
	VMOVUPS   Y2, 64(DI)(AX*4)
	VMOVUPS   Y3, 96(DI)(AX*4)
	ADDQ      $32, AX
	CMPQ      AX, DX
	JB        wbf16_loop32

wbf16_tail8:
	MOVQ CX, DX
	ANDQ $-8, DX
	CMPQ AX, DX
	JAE  wbf16_tail1

wbf16_loop8:
	VPMOVZXWD (SI)(AX*2), Y0
	VPSLLD    $16, Y0, Y0
	VMOVUPS   Y0, (DI)(AX*4)
	ADDQ      $8, AX
	CMPQ      AX, DX
	JB        wbf16_loop8

wbf16_tail1:
	CMPQ AX, CX
	JAE  wbf16_done

wbf16_loop1:
	MOVWLZX (SI)(AX*2), BX
	SHLL    $16, BX
	MOVL    BX, (DI)(AX*4)
	INCQ    AX
	CMPQ    AX, CX
	JB      wbf16_loop1

wbf16_done:
	VZEROUPPER
	RET

// func widenQ8_0AVX2(dst *float32, src *byte, nb int)
TEXT ·widenQ8_0AVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ nb+16(FP), CX
	LEAQ ·f16Table(SB), R8
	TESTQ CX, CX
	JZ    wq8_done

wq8_loop:
	MOVWLZX      (SI), BX
	VBROADCASTSS (R8)(BX*4), Y8
	VPMOVSXBD    2(SI), Y0
	VPMOVSXBD    10(SI), Y1
	VPMOVSXBD    18(SI), Y2
	VPMOVSXBD    26(SI), Y3
	VCVTDQ2PS    Y0, Y0
	VCVTDQ2PS    Y1, Y1
	VCVTDQ2PS    Y2, Y2
	VCVTDQ2PS    Y3, Y3
	VMULPS       Y8, Y0, Y0
	VMULPS       Y8, Y1, Y1
	VMULPS       Y8, Y2, Y2
	VMULPS       Y8, Y3, Y3
	VMOVUPS      Y0, (DI)
	VMOVUPS      Y1, 32(DI)
	VMOVUPS      Y2, 64(DI)
	VMOVUPS      Y3, 96(DI)
	ADDQ         $34, SI
	ADDQ         $128, DI
	DECQ         CX
	JNZ          wq8_loop

wq8_done:
	VZEROUPPER
	RET

// func widenQ4_0AVX2(dst *float32, src *byte, nb int)
TEXT ·widenQ4_0AVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ nb+16(FP), CX
	LEAQ ·f16Table(SB), R8
	MOVL $15, AX
	VMOVD AX, X15
	VPBROADCASTD X15, Y15
	MOVL $8, AX
	VMOVD AX, X14
	VPBROADCASTD X14, Y14
	TESTQ CX, CX
	JZ    wq4_done

wq4_loop:
	MOVWLZX      (SI), BX
	VBROADCASTSS (R8)(BX*4), Y8
	VPMOVZXBD    2(SI), Y0
	VPMOVZXBD    10(SI), Y1
	VPSRLD       $4, Y0, Y2
	VPSRLD       $4, Y1, Y3
	VPAND        Y15, Y0, Y0
	VPAND        Y15, Y1, Y1
	VPSUBD       Y14, Y0, Y0
	VPSUBD       Y14, Y1, Y1
	VPSUBD       Y14, Y2, Y2
	VPSUBD       Y14, Y3, Y3
	VCVTDQ2PS    Y0, Y0
	VCVTDQ2PS    Y1, Y1
	VCVTDQ2PS    Y2, Y2
	VCVTDQ2PS    Y3, Y3
	VMULPS       Y8, Y0, Y0
	VMULPS       Y8, Y1, Y1
	VMULPS       Y8, Y2, Y2
	VMULPS       Y8, Y3, Y3
	VMOVUPS      Y0, (DI)
	VMOVUPS      Y1, 32(DI)
	VMOVUPS      Y2, 64(DI)
	VMOVUPS      Y3, 96(DI)
	ADDQ         $18, SI
	ADDQ         $128, DI
	DECQ         CX
	JNZ          wq4_loop

wq4_done:
	VZEROUPPER
	RET
