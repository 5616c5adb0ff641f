//go:build amd64 && !purego

#include "textflag.h"

// The kernels of kern.go: canonical-order multi-row dots (dotRows8AVX2,
// dotTile3x4AVX2), the attention value sum (axpyRowsAVX2), and the
// vectorised exponential (EXP8) behind expSumAVX2, swigluAVX2 and
// geluAVX2.

#define PFD 4096

// Constants, each in eight lanes (memory operands of 256-bit operations).
#define K_LOG2E kc<>+0(SB)
#define K_ROUND kc<>+32(SB)
#define K_BIAS kc<>+64(SB)
#define K_LN2HI kc<>+96(SB)
#define K_LN2LO kc<>+128(SB)
#define K_P0 kc<>+160(SB)
#define K_P1 kc<>+192(SB)
#define K_P2 kc<>+224(SB)
#define K_P3 kc<>+256(SB)
#define K_P4 kc<>+288(SB)
#define K_P5 kc<>+320(SB)
#define K_ONE kc<>+352(SB)
#define K_I127 kc<>+384(SB)
#define K_INF kc<>+416(SB)
#define K_HI kc<>+448(SB)
#define K_LO kc<>+480(SB)
#define K_NINF kc<>+512(SB)
#define K_SIGN kc<>+544(SB)
#define K_GELUA kc<>+576(SB)
#define K_GELUC kc<>+608(SB)
DATA kc<>+0(SB)/8, $0x3fb8aa3b3fb8aa3b
DATA kc<>+8(SB)/8, $0x3fb8aa3b3fb8aa3b
DATA kc<>+16(SB)/8, $0x3fb8aa3b3fb8aa3b
DATA kc<>+24(SB)/8, $0x3fb8aa3b3fb8aa3b
DATA kc<>+32(SB)/8, $0x4b4000004b400000
DATA kc<>+40(SB)/8, $0x4b4000004b400000
DATA kc<>+48(SB)/8, $0x4b4000004b400000
DATA kc<>+56(SB)/8, $0x4b4000004b400000
DATA kc<>+64(SB)/8, $0x4b4000004b400000
DATA kc<>+72(SB)/8, $0x4b4000004b400000
DATA kc<>+80(SB)/8, $0x4b4000004b400000
DATA kc<>+88(SB)/8, $0x4b4000004b400000
DATA kc<>+96(SB)/8, $0x3f3180003f318000
DATA kc<>+104(SB)/8, $0x3f3180003f318000
DATA kc<>+112(SB)/8, $0x3f3180003f318000
DATA kc<>+120(SB)/8, $0x3f3180003f318000
DATA kc<>+128(SB)/8, $0xb95e8083b95e8083
DATA kc<>+136(SB)/8, $0xb95e8083b95e8083
DATA kc<>+144(SB)/8, $0xb95e8083b95e8083
DATA kc<>+152(SB)/8, $0xb95e8083b95e8083
DATA kc<>+160(SB)/8, $0x3950696739506967
DATA kc<>+168(SB)/8, $0x3950696739506967
DATA kc<>+176(SB)/8, $0x3950696739506967
DATA kc<>+184(SB)/8, $0x3950696739506967
DATA kc<>+192(SB)/8, $0x3ab743ce3ab743ce
DATA kc<>+200(SB)/8, $0x3ab743ce3ab743ce
DATA kc<>+208(SB)/8, $0x3ab743ce3ab743ce
DATA kc<>+216(SB)/8, $0x3ab743ce3ab743ce
DATA kc<>+224(SB)/8, $0x3c0889083c088908
DATA kc<>+232(SB)/8, $0x3c0889083c088908
DATA kc<>+240(SB)/8, $0x3c0889083c088908
DATA kc<>+248(SB)/8, $0x3c0889083c088908
DATA kc<>+256(SB)/8, $0x3d2aa9c13d2aa9c1
DATA kc<>+264(SB)/8, $0x3d2aa9c13d2aa9c1
DATA kc<>+272(SB)/8, $0x3d2aa9c13d2aa9c1
DATA kc<>+280(SB)/8, $0x3d2aa9c13d2aa9c1
DATA kc<>+288(SB)/8, $0x3e2aaaaa3e2aaaaa
DATA kc<>+296(SB)/8, $0x3e2aaaaa3e2aaaaa
DATA kc<>+304(SB)/8, $0x3e2aaaaa3e2aaaaa
DATA kc<>+312(SB)/8, $0x3e2aaaaa3e2aaaaa
DATA kc<>+320(SB)/8, $0x3f0000003f000000
DATA kc<>+328(SB)/8, $0x3f0000003f000000
DATA kc<>+336(SB)/8, $0x3f0000003f000000
DATA kc<>+344(SB)/8, $0x3f0000003f000000
DATA kc<>+352(SB)/8, $0x3f8000003f800000
DATA kc<>+360(SB)/8, $0x3f8000003f800000
DATA kc<>+368(SB)/8, $0x3f8000003f800000
DATA kc<>+376(SB)/8, $0x3f8000003f800000
DATA kc<>+384(SB)/8, $0x0000007f0000007f
DATA kc<>+392(SB)/8, $0x0000007f0000007f
DATA kc<>+400(SB)/8, $0x0000007f0000007f
DATA kc<>+408(SB)/8, $0x0000007f0000007f
DATA kc<>+416(SB)/8, $0x7f8000007f800000
DATA kc<>+424(SB)/8, $0x7f8000007f800000
DATA kc<>+432(SB)/8, $0x7f8000007f800000
DATA kc<>+440(SB)/8, $0x7f8000007f800000
DATA kc<>+448(SB)/8, $0x42b1721742b17217
DATA kc<>+456(SB)/8, $0x42b1721742b17217
DATA kc<>+464(SB)/8, $0x42b1721742b17217
DATA kc<>+472(SB)/8, $0x42b1721742b17217
DATA kc<>+480(SB)/8, $0xc2aeac4fc2aeac4f
DATA kc<>+488(SB)/8, $0xc2aeac4fc2aeac4f
DATA kc<>+496(SB)/8, $0xc2aeac4fc2aeac4f
DATA kc<>+504(SB)/8, $0xc2aeac4fc2aeac4f
DATA kc<>+512(SB)/8, $0xff800000ff800000
DATA kc<>+520(SB)/8, $0xff800000ff800000
DATA kc<>+528(SB)/8, $0xff800000ff800000
DATA kc<>+536(SB)/8, $0xff800000ff800000
DATA kc<>+544(SB)/8, $0x8000000080000000
DATA kc<>+552(SB)/8, $0x8000000080000000
DATA kc<>+560(SB)/8, $0x8000000080000000
DATA kc<>+568(SB)/8, $0x8000000080000000
DATA kc<>+576(SB)/8, $0x3d3727133d372713
DATA kc<>+584(SB)/8, $0x3d3727133d372713
DATA kc<>+592(SB)/8, $0x3d3727133d372713
DATA kc<>+600(SB)/8, $0x3d3727133d372713
DATA kc<>+608(SB)/8, $0x3fcc422a3fcc422a
DATA kc<>+616(SB)/8, $0x3fcc422a3fcc422a
DATA kc<>+624(SB)/8, $0x3fcc422a3fcc422a
DATA kc<>+632(SB)/8, $0x3fcc422a3fcc422a
GLOBL kc<>(SB), RODATA|NOPTR, $640

// Eight all-ones dwords then eight zero dwords: the 8 dwords starting at
// byte 32-4k are a VMASKMOVPS mask selecting the first k lanes.
DATA kmask<>+0(SB)/8, $-1
DATA kmask<>+8(SB)/8, $-1
DATA kmask<>+16(SB)/8, $-1
DATA kmask<>+24(SB)/8, $-1
DATA kmask<>+32(SB)/8, $0
DATA kmask<>+40(SB)/8, $0
DATA kmask<>+48(SB)/8, $0
DATA kmask<>+56(SB)/8, $0
GLOBL kmask<>(SB), RODATA|NOPTR, $64

// EXP8(X, A, B, C, D, E) sets X = e**X in each of the 8 lanes, the
// algorithm of ExpGeneric (Cody-Waite reduction, Cephes' degree-7
// polynomial) with fused multiply-adds: within 2 ulp for normal results,
// 0 at or below -87.33654 (where results would be subnormal), +Inf above
// 88.72283, NaN for NaN. Expects Y13 = K_HI and Y14 = K_LO; clobbers A-E.
// The clamp keeps X's NaN (MINPS/MAXPS return their second source when
// either is NaN, and X is that source); 2**k is applied as 2**min(k,127)
// times 2**(k-min(k,127)) so that k = 128 (results up to MaxFloat32)
// does not overflow the exponent field.
#define EXP8(X, A, B, C, D, E) \
	VMINPS       X, Y13, A \
	VMAXPS       A, Y14, A \
	VMOVUPS      K_LOG2E, B \
	VFMADD213PS  K_ROUND, A, B \
	VSUBPS       K_ROUND, B, C \
	VPSUBD       K_BIAS, B, B \
	VMOVAPS      A, D \
	VFNMADD231PS K_LN2HI, C, D \
	VFNMADD231PS K_LN2LO, C, D \
	VMOVUPS      K_P0, C \
	VFMADD213PS  K_P1, D, C \
	VFMADD213PS  K_P2, D, C \
	VFMADD213PS  K_P3, D, C \
	VFMADD213PS  K_P4, D, C \
	VFMADD213PS  K_P5, D, C \
	VMULPS       D, D, E \
	VFMADD213PS  D, E, C \
	VADDPS       K_ONE, C, C \
	VPMINSD      K_I127, B, E \
	VPSUBD       E, B, B \
	VPADDD       K_I127, E, E \
	VPSLLD       $23, E, E \
	VMULPS       E, C, C \
	VPADDD       K_I127, B, B \
	VPSLLD       $23, B, B \
	VMULPS       B, C, C \
	VCMPPS       $0x12, Y14, X, E \
	VANDNPS      C, E, C \
	VCMPPS       $0x1e, Y13, X, E \
	VBLENDVPS    E, K_INF, C, X

// func dotRows8AVX2(dst *float32, w *float32, stride int, x *float32, n int, rows int)
//
// dst[r] = sum over i < n of w[r*stride+i]*x[i] for r < rows (1 to 8),
// each sum in one 8-lane accumulator over the 8-element chunks of i in
// order (the last chunk masked), then the lanes added as
// ((l0+l1)+(l2+l3))+((l4+l5)+(l6+l7)): the canonical order that
// dotTile3x4AVX2 follows too. Rows at or beyond rows repeat row 0 (their
// sums are computed and dropped). Each x load feeds eight FMAs; one
// prefetch per row per 128 bytes (the adjacent-line prefetcher brings the
// other line), for rows streamed from memory: PFD bytes ahead in rows of
// at least 2·PFD bytes, else the same place in the next eight rows (which
// a matrix-vector product reads next).
TEXT ·dotRows8AVX2(SB), NOSPLIT, $0-48
	MOVQ w+8(FP), R8
	MOVQ stride+16(FP), BX
	SHLQ $2, BX
	MOVQ rows+40(FP), CX
	LEAQ (BX)(BX*2), DX
	LEAQ (R8)(BX*1), R9
	LEAQ (R8)(BX*2), R10
	LEAQ (R8)(DX*1), R11
	LEAQ (R8)(BX*4), R12
	LEAQ (R12)(BX*1), R13
	LEAQ (R12)(BX*2), SI
	LEAQ (R12)(DX*1), DI
	CMPQ CX, $1
	CMOVQLE R8, R9
	CMPQ CX, $2
	CMOVQLE R8, R10
	CMPQ CX, $3
	CMOVQLE R8, R11
	CMPQ CX, $4
	CMOVQLE R8, R12
	CMPQ CX, $5
	CMOVQLE R8, R13
	CMPQ CX, $6
	CMOVQLE R8, SI
	CMPQ CX, $7
	CMOVQLE R8, DI
	// Prefetch distance, kept in stride's argument slot: PFD bytes ahead
	// in a row of at least 2·PFD bytes, else the same column of the next
	// eight rows (short rows end before PFD, inside this group).
	MOVQ stride+16(FP), CX
	SHLQ $5, CX
	CMPQ CX, $(2*PFD*8)
	JB   d8_pfnext
	MOVQ $PFD, CX
	JMP  d8_pfset

d8_pfnext:
	// CX = 8 rows of bytes already.

d8_pfset:
	MOVQ CX, stride+16(FP)
	MOVQ x+24(FP), DX
	MOVQ n+32(FP), BX
	SHLQ $2, BX
	XORQ AX, AX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	MOVQ BX, CX
	ANDQ $-128, CX
	JZ   d8_tail16

d8_loop32:
	MOVQ stride+16(FP), BX
	ADDQ AX, BX
	PREFETCHT0  (R8)(BX*1)
	PREFETCHT0  (R9)(BX*1)
	PREFETCHT0  (R10)(BX*1)
	PREFETCHT0  (R11)(BX*1)
	PREFETCHT0  (R12)(BX*1)
	PREFETCHT0  (R13)(BX*1)
	PREFETCHT0  (SI)(BX*1)
	PREFETCHT0  (DI)(BX*1)
	VMOVUPS     (DX)(AX*1), Y8
	VMOVUPS     32(DX)(AX*1), Y9
	VMOVUPS     64(DX)(AX*1), Y10
	VMOVUPS     96(DX)(AX*1), Y11
	VFMADD231PS (R8)(AX*1), Y8, Y0
	VFMADD231PS (R9)(AX*1), Y8, Y1
	VFMADD231PS (R10)(AX*1), Y8, Y2
	VFMADD231PS (R11)(AX*1), Y8, Y3
	VFMADD231PS (R12)(AX*1), Y8, Y4
	VFMADD231PS (R13)(AX*1), Y8, Y5
	VFMADD231PS (SI)(AX*1), Y8, Y6
	VFMADD231PS (DI)(AX*1), Y8, Y7
	VFMADD231PS 32(R8)(AX*1), Y9, Y0
	VFMADD231PS 32(R9)(AX*1), Y9, Y1
	VFMADD231PS 32(R10)(AX*1), Y9, Y2
	VFMADD231PS 32(R11)(AX*1), Y9, Y3
	VFMADD231PS 32(R12)(AX*1), Y9, Y4
	VFMADD231PS 32(R13)(AX*1), Y9, Y5
	VFMADD231PS 32(SI)(AX*1), Y9, Y6
	VFMADD231PS 32(DI)(AX*1), Y9, Y7
	VFMADD231PS 64(R8)(AX*1), Y10, Y0
	VFMADD231PS 64(R9)(AX*1), Y10, Y1
	VFMADD231PS 64(R10)(AX*1), Y10, Y2
	VFMADD231PS 64(R11)(AX*1), Y10, Y3
	VFMADD231PS 64(R12)(AX*1), Y10, Y4
	VFMADD231PS 64(R13)(AX*1), Y10, Y5
	VFMADD231PS 64(SI)(AX*1), Y10, Y6
	VFMADD231PS 64(DI)(AX*1), Y10, Y7
	VFMADD231PS 96(R8)(AX*1), Y11, Y0
	VFMADD231PS 96(R9)(AX*1), Y11, Y1
	VFMADD231PS 96(R10)(AX*1), Y11, Y2
	VFMADD231PS 96(R11)(AX*1), Y11, Y3
	VFMADD231PS 96(R12)(AX*1), Y11, Y4
	VFMADD231PS 96(R13)(AX*1), Y11, Y5
	VFMADD231PS 96(SI)(AX*1), Y11, Y6
	VFMADD231PS 96(DI)(AX*1), Y11, Y7
	ADDQ        $128, AX
	CMPQ        AX, CX
	JB          d8_loop32
	MOVQ n+32(FP), BX
	SHLQ $2, BX

d8_tail16:
	MOVQ BX, CX
	ANDQ $-64, CX
	CMPQ AX, CX
	JAE  d8_tail8
	VMOVUPS     (DX)(AX*1), Y8
	VMOVUPS     32(DX)(AX*1), Y9
	VFMADD231PS (R8)(AX*1), Y8, Y0
	VFMADD231PS (R9)(AX*1), Y8, Y1
	VFMADD231PS (R10)(AX*1), Y8, Y2
	VFMADD231PS (R11)(AX*1), Y8, Y3
	VFMADD231PS (R12)(AX*1), Y8, Y4
	VFMADD231PS (R13)(AX*1), Y8, Y5
	VFMADD231PS (SI)(AX*1), Y8, Y6
	VFMADD231PS (DI)(AX*1), Y8, Y7
	VFMADD231PS 32(R8)(AX*1), Y9, Y0
	VFMADD231PS 32(R9)(AX*1), Y9, Y1
	VFMADD231PS 32(R10)(AX*1), Y9, Y2
	VFMADD231PS 32(R11)(AX*1), Y9, Y3
	VFMADD231PS 32(R12)(AX*1), Y9, Y4
	VFMADD231PS 32(R13)(AX*1), Y9, Y5
	VFMADD231PS 32(SI)(AX*1), Y9, Y6
	VFMADD231PS 32(DI)(AX*1), Y9, Y7
	ADDQ        $64, AX

d8_tail8:
	MOVQ BX, CX
	ANDQ $-32, CX
	CMPQ AX, CX
	JAE  d8_tailmask
	VMOVUPS     (DX)(AX*1), Y8
	VFMADD231PS (R8)(AX*1), Y8, Y0
	VFMADD231PS (R9)(AX*1), Y8, Y1
	VFMADD231PS (R10)(AX*1), Y8, Y2
	VFMADD231PS (R11)(AX*1), Y8, Y3
	VFMADD231PS (R12)(AX*1), Y8, Y4
	VFMADD231PS (R13)(AX*1), Y8, Y5
	VFMADD231PS (SI)(AX*1), Y8, Y6
	VFMADD231PS (DI)(AX*1), Y8, Y7
	ADDQ        $32, AX

d8_tailmask:
	CMPQ AX, BX
	JAE  d8_reduce
	MOVQ AX, CX
	SUBQ BX, CX
	LEAQ kmask<>+32(SB), BX
	VMOVUPS    (BX)(CX*1), Y15
	VMASKMOVPS (DX)(AX*1), Y15, Y8
	VMASKMOVPS (R8)(AX*1), Y15, Y9
	VFMADD231PS Y9, Y8, Y0
	VMASKMOVPS (R9)(AX*1), Y15, Y9
	VFMADD231PS Y9, Y8, Y1
	VMASKMOVPS (R10)(AX*1), Y15, Y9
	VFMADD231PS Y9, Y8, Y2
	VMASKMOVPS (R11)(AX*1), Y15, Y9
	VFMADD231PS Y9, Y8, Y3
	VMASKMOVPS (R12)(AX*1), Y15, Y9
	VFMADD231PS Y9, Y8, Y4
	VMASKMOVPS (R13)(AX*1), Y15, Y9
	VFMADD231PS Y9, Y8, Y5
	VMASKMOVPS (SI)(AX*1), Y15, Y9
	VFMADD231PS Y9, Y8, Y6
	VMASKMOVPS (DI)(AX*1), Y15, Y9
	VFMADD231PS Y9, Y8, Y7

d8_reduce:
	VHADDPS    Y1, Y0, Y0
	VHADDPS    Y3, Y2, Y2
	VHADDPS    Y2, Y0, Y0
	VHADDPS    Y5, Y4, Y4
	VHADDPS    Y7, Y6, Y6
	VHADDPS    Y6, Y4, Y4
	VPERM2F128 $0x20, Y4, Y0, Y1
	VPERM2F128 $0x31, Y4, Y0, Y2
	VADDPS     Y2, Y1, Y0
	MOVQ dst+0(FP), DI
	MOVQ rows+40(FP), CX
	CMPQ CX, $8
	JB   d8_storemask
	VMOVUPS Y0, (DI)
	VZEROUPPER
	RET

d8_storemask:
	SHLQ $2, CX
	NEGQ CX
	LEAQ kmask<>+32(SB), BX
	VMOVUPS    (BX)(CX*1), Y15
	VMASKMOVPS Y0, Y15, (DI)
	VZEROUPPER
	RET

// Reduce the eight lanes of Y0 into the low lane of X0. Clobbers X1.
#define HSUM_Y0 \
	VEXTRACTF128 $1, Y0, X1 \
	VADDPS       X1, X0, X0 \
	VPERMILPS    $0x0e, X0, X1 \
	VADDPS       X1, X0, X0 \
	VMOVSHDUP    X0, X1 \
	VADDSS       X1, X0, X0

// REDUCE4(A, B, C, D): X(A) = the four canonical sums of A, B, C, D (see
// dotRows8AVX2). Clobbers B, C.
#define REDUCE4(YA, YB, YC, YD, XA, XB) \
	VHADDPS      YB, YA, YA \
	VHADDPS      YD, YC, YC \
	VHADDPS      YC, YA, YA \
	VEXTRACTF128 $1, YA, XB \
	VADDPS       XB, XA, XA

// func dotTile3x4AVX2(dst *float32, ldd int, x *float32, ldx int, nx int, w *float32, ldw int, nw int, k int)
//
// dst[r*ldd+c] = sum over i < k of x[r*ldx+i]*w[c*ldw+i] for r < nx (1 to
// 3) and c < nw (1 to 4), each sum in the canonical order of
// dotRows8AVX2. Twelve accumulators; per 8-element chunk three x loads and
// four w loads feed twelve FMAs. Rows beyond nx or nw repeat row 0.
TEXT ·dotTile3x4AVX2(SB), NOSPLIT, $32-72
	MOVQ x+16(FP), SI
	MOVQ ldx+24(FP), BX
	SHLQ $2, BX
	MOVQ nx+32(FP), CX
	LEAQ (SI)(BX*1), DI
	LEAQ (SI)(BX*2), R8
	CMPQ CX, $1
	CMOVQLE SI, DI
	CMPQ CX, $2
	CMOVQLE SI, R8
	MOVQ w+40(FP), R9
	MOVQ ldw+48(FP), BX
	SHLQ $2, BX
	MOVQ nw+56(FP), CX
	LEAQ (BX)(BX*2), DX
	LEAQ (R9)(BX*1), R10
	LEAQ (R9)(BX*2), R11
	LEAQ (R9)(DX*1), R12
	CMPQ CX, $1
	CMOVQLE R9, R10
	CMPQ CX, $2
	CMOVQLE R9, R11
	CMPQ CX, $3
	CMOVQLE R9, R12
	MOVQ k+64(FP), BX
	SHLQ $2, BX
	XORQ AX, AX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	MOVQ BX, CX
	ANDQ $-32, CX
	JZ   t34_tail

t34_loop:
	VMOVUPS     (SI)(AX*1), Y12
	VMOVUPS     (DI)(AX*1), Y13
	VMOVUPS     (R8)(AX*1), Y14
	VMOVUPS     (R9)(AX*1), Y15
	VFMADD231PS Y15, Y12, Y0
	VFMADD231PS Y15, Y13, Y4
	VFMADD231PS Y15, Y14, Y8
	VMOVUPS     (R10)(AX*1), Y15
	VFMADD231PS Y15, Y12, Y1
	VFMADD231PS Y15, Y13, Y5
	VFMADD231PS Y15, Y14, Y9
	VMOVUPS     (R11)(AX*1), Y15
	VFMADD231PS Y15, Y12, Y2
	VFMADD231PS Y15, Y13, Y6
	VFMADD231PS Y15, Y14, Y10
	VMOVUPS     (R12)(AX*1), Y15
	VFMADD231PS Y15, Y12, Y3
	VFMADD231PS Y15, Y13, Y7
	VFMADD231PS Y15, Y14, Y11
	ADDQ        $32, AX
	CMPQ        AX, CX
	JB          t34_loop

t34_tail:
	CMPQ AX, BX
	JAE  t34_reduce
	// The last k%8 elements, masked: Y11's accumulator is parked on the
	// stack to free a register for the mask.
	VMOVUPS Y11, spill-32(SP)
	MOVQ AX, CX
	SUBQ BX, CX
	LEAQ kmask<>+32(SB), DX
	VMOVUPS    (DX)(CX*1), Y11
	VMASKMOVPS (SI)(AX*1), Y11, Y12
	VMASKMOVPS (DI)(AX*1), Y11, Y13
	VMASKMOVPS (R8)(AX*1), Y11, Y14
	VMASKMOVPS (R9)(AX*1), Y11, Y15
	VFMADD231PS Y15, Y12, Y0
	VFMADD231PS Y15, Y13, Y4
	VFMADD231PS Y15, Y14, Y8
	VMASKMOVPS (R10)(AX*1), Y11, Y15
	VFMADD231PS Y15, Y12, Y1
	VFMADD231PS Y15, Y13, Y5
	VFMADD231PS Y15, Y14, Y9
	VMASKMOVPS (R11)(AX*1), Y11, Y15
	VFMADD231PS Y15, Y12, Y2
	VFMADD231PS Y15, Y13, Y6
	VFMADD231PS Y15, Y14, Y10
	VMASKMOVPS (R12)(AX*1), Y11, Y15
	VFMADD231PS Y15, Y12, Y3
	VFMADD231PS Y15, Y13, Y7
	VMOVUPS     spill-32(SP), Y11
	VFMADD231PS Y15, Y14, Y11

t34_reduce:
	MOVQ nw+56(FP), CX
	SHLQ $2, CX
	NEGQ CX
	LEAQ kmask<>+32(SB), DX
	VMOVUPS (DX)(CX*1), X15
	MOVQ dst+0(FP), DI
	MOVQ ldd+8(FP), BX
	SHLQ $2, BX
	MOVQ nx+32(FP), CX
	REDUCE4(Y0, Y1, Y2, Y3, X0, X1)
	VMASKMOVPS X0, X15, (DI)
	CMPQ CX, $2
	JB   t34_done
	REDUCE4(Y4, Y5, Y6, Y7, X4, X5)
	VMASKMOVPS X4, X15, (DI)(BX*1)
	CMPQ CX, $3
	JB   t34_done
	REDUCE4(Y8, Y9, Y10, Y11, X8, X9)
	VMASKMOVPS X8, X15, (DI)(BX*2)

t34_done:
	VZEROUPPER
	RET

// func axpyRowsAVX2(acc *float32, v *float32, stride int, p *float32, m int, n int)
//
// acc[i] += sum over t < m of p[t]*v[t*stride+i], for i < n. Columns go in
// blocks of 32 (four registers, two sets alternating over t: eight FMA
// chains), then of 8 (four sets over t), then a masked block of n%8.
TEXT ·axpyRowsAVX2(SB), NOSPLIT, $0-48
	MOVQ acc+0(FP), DI
	MOVQ v+8(FP), SI
	MOVQ stride+16(FP), BX
	SHLQ $2, BX
	MOVQ p+24(FP), DX
	MOVQ m+32(FP), CX
	MOVQ n+40(FP), R8
	XORQ R9, R9          // column

ar_block32:
	MOVQ R8, R13
	SUBQ R9, R13
	CMPQ R13, $32
	JB   ar_block8
	VMOVUPS (DI)(R9*4), Y0
	VMOVUPS 32(DI)(R9*4), Y1
	VMOVUPS 64(DI)(R9*4), Y2
	VMOVUPS 96(DI)(R9*4), Y3
	VXORPS  Y4, Y4, Y4
	VXORPS  Y5, Y5, Y5
	VXORPS  Y6, Y6, Y6
	VXORPS  Y7, Y7, Y7
	LEAQ (SI)(R9*4), R11
	XORQ R10, R10
	MOVQ CX, R12
	ANDQ $-2, R12
	JZ   ar32_odd

ar32_loop:
	VBROADCASTSS (DX)(R10*4), Y8
	VBROADCASTSS 4(DX)(R10*4), Y9
	VFMADD231PS  (R11), Y8, Y0
	VFMADD231PS  32(R11), Y8, Y1
	VFMADD231PS  64(R11), Y8, Y2
	VFMADD231PS  96(R11), Y8, Y3
	VFMADD231PS  (R11)(BX*1), Y9, Y4
	VFMADD231PS  32(R11)(BX*1), Y9, Y5
	VFMADD231PS  64(R11)(BX*1), Y9, Y6
	VFMADD231PS  96(R11)(BX*1), Y9, Y7
	LEAQ (R11)(BX*2), R11
	ADDQ $2, R10
	CMPQ R10, R12
	JB   ar32_loop

ar32_odd:
	CMPQ R10, CX
	JAE  ar32_store
	VBROADCASTSS (DX)(R10*4), Y8
	VFMADD231PS  (R11), Y8, Y0
	VFMADD231PS  32(R11), Y8, Y1
	VFMADD231PS  64(R11), Y8, Y2
	VFMADD231PS  96(R11), Y8, Y3

ar32_store:
	VADDPS  Y4, Y0, Y0
	VADDPS  Y5, Y1, Y1
	VADDPS  Y6, Y2, Y2
	VADDPS  Y7, Y3, Y3
	VMOVUPS Y0, (DI)(R9*4)
	VMOVUPS Y1, 32(DI)(R9*4)
	VMOVUPS Y2, 64(DI)(R9*4)
	VMOVUPS Y3, 96(DI)(R9*4)
	ADDQ $32, R9
	JMP  ar_block32

ar_block8:
	CMPQ R13, $8
	JB   ar_mask
	VMOVUPS (DI)(R9*4), Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	LEAQ (SI)(R9*4), R11
	XORQ R10, R10
	MOVQ CX, R12
	ANDQ $-4, R12
	JZ   ar8_rest

ar8_loop:
	VBROADCASTSS (DX)(R10*4), Y8
	VBROADCASTSS 4(DX)(R10*4), Y9
	VBROADCASTSS 8(DX)(R10*4), Y10
	VBROADCASTSS 12(DX)(R10*4), Y11
	VFMADD231PS (R11), Y8, Y0
	VFMADD231PS (R11)(BX*1), Y9, Y1
	LEAQ (R11)(BX*2), R11
	VFMADD231PS (R11), Y10, Y2
	VFMADD231PS (R11)(BX*1), Y11, Y3
	LEAQ (R11)(BX*2), R11
	ADDQ $4, R10
	CMPQ R10, R12
	JB   ar8_loop

ar8_rest:
	CMPQ R10, CX
	JAE  ar8_store
	VBROADCASTSS (DX)(R10*4), Y8
	VFMADD231PS (R11), Y8, Y0
	ADDQ BX, R11
	INCQ R10
	JMP  ar8_rest

ar8_store:
	VADDPS Y1, Y0, Y0
	VADDPS Y3, Y2, Y2
	VADDPS Y2, Y0, Y0
	VMOVUPS Y0, (DI)(R9*4)
	ADDQ $8, R9
	MOVQ R8, R13
	SUBQ R9, R13
	JMP  ar_block8

ar_mask:
	TESTQ R13, R13
	JZ    ar_done
	SHLQ $2, R13
	NEGQ R13
	LEAQ kmask<>+32(SB), R12
	VMOVUPS    (R12)(R13*1), Y15
	VMASKMOVPS (DI)(R9*4), Y15, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	LEAQ (SI)(R9*4), R11
	XORQ R10, R10
	MOVQ CX, R12
	ANDQ $-4, R12
	JZ   arm_rest

arm_loop:
	VBROADCASTSS (DX)(R10*4), Y8
	VBROADCASTSS 4(DX)(R10*4), Y9
	VBROADCASTSS 8(DX)(R10*4), Y10
	VBROADCASTSS 12(DX)(R10*4), Y11
	VMASKMOVPS  (R11), Y15, Y12
	VFMADD231PS Y12, Y8, Y0
	VMASKMOVPS  (R11)(BX*1), Y15, Y12
	VFMADD231PS Y12, Y9, Y1
	LEAQ (R11)(BX*2), R11
	VMASKMOVPS  (R11), Y15, Y12
	VFMADD231PS Y12, Y10, Y2
	VMASKMOVPS  (R11)(BX*1), Y15, Y12
	VFMADD231PS Y12, Y11, Y3
	LEAQ (R11)(BX*2), R11
	ADDQ $4, R10
	CMPQ R10, R12
	JB   arm_loop

arm_rest:
	CMPQ R10, CX
	JAE  arm_store
	VBROADCASTSS (DX)(R10*4), Y8
	VMASKMOVPS  (R11), Y15, Y12
	VFMADD231PS Y12, Y8, Y0
	ADDQ BX, R11
	INCQ R10
	JMP  arm_rest

arm_store:
	VADDPS Y1, Y0, Y0
	VADDPS Y3, Y2, Y2
	VADDPS Y2, Y0, Y0
	VMASKMOVPS Y0, Y15, (DI)(R9*4)

ar_done:
	VZEROUPPER
	RET

// func expSumAVX2(x *float32, n int, scale float32) (m, sum float32)
//
// First x[i] *= scale, keeping the running maximum m in eight lanes; then
// x[i] = e**(x[i]-m) (EXP8), summed in eight lanes over the chunks in
// order, the lanes added as in the canonical dot. A masked chunk handles
// n%8.
TEXT ·expSumAVX2(SB), NOSPLIT, $0-32
	MOVQ x+0(FP), DI
	MOVQ n+8(FP), CX
	VBROADCASTSS scale+16(FP), Y6
	VMOVUPS K_NINF, Y7
	VMOVUPS K_HI, Y13
	VMOVUPS K_LO, Y14
	MOVQ CX, DX
	ANDQ $-8, DX
	MOVQ CX, BX
	SUBQ DX, BX
	SHLQ $2, BX
	NEGQ BX
	LEAQ kmask<>+32(SB), R8
	VMOVUPS (R8)(BX*1), Y15 // mask of the n%8 tail lanes
	XORQ AX, AX

es_max:
	CMPQ AX, DX
	JAE  es_maxtail
	VMULPS  (DI)(AX*4), Y6, Y0
	VMOVUPS Y0, (DI)(AX*4)
	VMAXPS  Y0, Y7, Y7
	ADDQ $8, AX
	JMP  es_max

es_maxtail:
	CMPQ AX, CX
	JAE  es_bcast
	VMASKMOVPS (DI)(AX*4), Y15, Y0
	VMULPS     Y6, Y0, Y0
	VMASKMOVPS Y0, Y15, (DI)(AX*4)
	VBLENDVPS  Y15, Y0, Y7, Y1
	VMAXPS     Y1, Y7, Y7

es_bcast:
	VPERM2F128 $0x01, Y7, Y7, Y1
	VMAXPS     Y1, Y7, Y7
	VPERMILPS  $0x4e, Y7, Y1
	VMAXPS     Y1, Y7, Y7
	VPERMILPS  $0xb1, Y7, Y1
	VMAXPS     Y1, Y7, Y7
	VMOVSS     X7, m+24(FP)
	VXORPS     Y5, Y5, Y5
	XORQ AX, AX

es_exp:
	CMPQ AX, DX
	JAE  es_exptail
	VMOVUPS (DI)(AX*4), Y0
	VSUBPS  Y7, Y0, Y0
	EXP8(Y0, Y1, Y2, Y3, Y4, Y8)
	VMOVUPS Y0, (DI)(AX*4)
	VADDPS  Y0, Y5, Y5
	ADDQ $8, AX
	JMP  es_exp

es_exptail:
	CMPQ AX, CX
	JAE  es_sum
	VMASKMOVPS (DI)(AX*4), Y15, Y0
	VSUBPS  Y7, Y0, Y0
	EXP8(Y0, Y1, Y2, Y3, Y4, Y8)
	VANDPS     Y15, Y0, Y0
	VMASKMOVPS Y0, Y15, (DI)(AX*4)
	VADDPS     Y0, Y5, Y5

es_sum:
	VHADDPS      Y5, Y5, Y5
	VHADDPS      Y5, Y5, Y5
	VEXTRACTF128 $1, Y5, X1
	VADDSS       X1, X5, X5
	VMOVSS       X5, sum+28(FP)
	VZEROUPPER
	RET

// SIGMOID8(Y, A, B, C, D, E, F): Y = 1/(1+e**-Y). Expects Y12 = 1, Y13 =
// K_HI, Y14 = K_LO.
#define SIGMOID8(Y, A, B, C, D, E, F) \
	VXORPS K_SIGN, Y, F \
	EXP8(F, A, B, C, D, E) \
	VADDPS Y12, F, F \
	VDIVPS F, Y12, Y

// func swigluAVX2(dst, gate, up *float32, n int)
//
// dst[i] = g[i] * (1/(1+e**-g[i])) * u[i], the multiplications in that
// order, as SwiGLUGeneric.
TEXT ·swigluAVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ gate+8(FP), SI
	MOVQ up+16(FP), R8
	MOVQ n+24(FP), CX
	VMOVUPS K_ONE, Y12
	VMOVUPS K_HI, Y13
	VMOVUPS K_LO, Y14
	MOVQ CX, DX
	ANDQ $-8, DX
	XORQ AX, AX

sw_loop:
	CMPQ AX, DX
	JAE  sw_tail
	VMOVUPS (SI)(AX*4), Y0
	VMOVAPS Y0, Y9
	SIGMOID8(Y9, Y1, Y2, Y3, Y4, Y5, Y6)
	VMULPS  Y9, Y0, Y0
	VMULPS  (R8)(AX*4), Y0, Y0
	VMOVUPS Y0, (DI)(AX*4)
	ADDQ $8, AX
	JMP  sw_loop

sw_tail:
	CMPQ AX, CX
	JAE  sw_done
	MOVQ AX, BX
	SUBQ CX, BX
	SHLQ $2, BX
	LEAQ kmask<>+32(SB), R9
	VMOVUPS (R9)(BX*1), Y15
	VMASKMOVPS (SI)(AX*4), Y15, Y0
	VMASKMOVPS (R8)(AX*4), Y15, Y10
	VMOVAPS Y0, Y9
	SIGMOID8(Y9, Y1, Y2, Y3, Y4, Y5, Y6)
	VMULPS  Y9, Y0, Y0
	VMULPS  Y10, Y0, Y0
	VMASKMOVPS Y0, Y15, (DI)(AX*4)

sw_done:
	VZEROUPPER
	RET

// func geluAVX2(dst, x *float32, n int)
//
// dst[i] = x * (1/(1+e**-(c*(x+0.044715*x*x*x)))) with c = 2·sqrt(2/π),
// the operations in GELUGeneric's order.
TEXT ·geluAVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	VMOVUPS K_ONE, Y12
	VMOVUPS K_HI, Y13
	VMOVUPS K_LO, Y14
	MOVQ CX, DX
	ANDQ $-8, DX
	XORQ AX, AX

ge_loop:
	CMPQ AX, DX
	JAE  ge_tail
	VMOVUPS (SI)(AX*4), Y0
	VMULPS  K_GELUA, Y0, Y9
	VMULPS  Y0, Y9, Y9
	VMULPS  Y0, Y9, Y9
	VADDPS  Y9, Y0, Y9
	VMULPS  K_GELUC, Y9, Y9
	SIGMOID8(Y9, Y1, Y2, Y3, Y4, Y5, Y6)
	VMULPS  Y9, Y0, Y0
	VMOVUPS Y0, (DI)(AX*4)
	ADDQ $8, AX
	JMP  ge_loop

ge_tail:
	CMPQ AX, CX
	JAE  ge_done
	MOVQ AX, BX
	SUBQ CX, BX
	SHLQ $2, BX
	LEAQ kmask<>+32(SB), R9
	VMOVUPS (R9)(BX*1), Y15
	VMASKMOVPS (SI)(AX*4), Y15, Y0
	VMULPS  K_GELUA, Y0, Y9
	VMULPS  Y0, Y9, Y9
	VMULPS  Y0, Y9, Y9
	VADDPS  Y9, Y0, Y9
	VMULPS  K_GELUC, Y9, Y9
	SIGMOID8(Y9, Y1, Y2, Y3, Y4, Y5, Y6)
	VMULPS  Y9, Y0, Y0
	VMASKMOVPS Y0, Y15, (DI)(AX*4)

ge_done:
	VZEROUPPER
	RET

// func attnBlocksAVX2(acc *float32, m *float32, l *float32, q *float32, nh int, d int, ks [][]float32, vs [][]float32, n int, scale float32, sbuf *float32)
//
// AttnBlocks for d a multiple of 8, in three phases, each for every head
// before the next, so that the heads' dependency chains overlap:
//  1. the n scores of head h into sbuf[h*N:] (N = n rounded up to 8), eight
//     keys at a time (dot products reduced as in dotRows8AVX2), then single
//     keys at the end of a block; their maximum gives the new m[h], and
//     c = e**(m_old-m_new) goes to sbuf[nh*N+h];
//  2. the numerators e**(s-m) (EXP8) over whole vectors of sbuf (lanes
//     past n are zeroed) and l = l·c + their sum;
//  3. acc = acc·c + Σ p_t·v_t, eight columns at a time, four FMA chains
//     over t.
// Constant registers: R11 d·4, R13 3·d·4, Y13/Y14 EXP8's limits, Y15
// scale.
TEXT ·attnBlocksAVX2(SB), NOSPLIT, $0-120
	MOVQ d+40(FP), R11
	SHLQ $2, R11
	LEAQ (R11)(R11*2), R13
	VMOVUPS K_HI, Y13
	VMOVUPS K_LO, Y14
	VBROADCASTSS scale+104(FP), Y15
	MOVQ q+24(FP), SI
	MOVQ sbuf+112(FP), R12
	XORQ DI, DI

ab1_head:
	VMOVUPS K_NINF, Y9
	MOVQ ks_base+48(FP), R8
	MOVQ ks_len+56(FP), R9
	XORQ AX, AX

ab1_block:
	TESTQ R9, R9
	JZ    ab1_max
	MOVQ (R8), BX
	MOVQ 8(R8), R10
	SHLQ $2, R10
	ADDQ BX, R10

ab1_s8:
	LEAQ (BX)(R11*8), DX
	CMPQ DX, R10
	JA   ab1_s1
	LEAQ (BX)(R11*4), DX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	XORQ CX, CX

ab1_s8chunk:
	VMOVUPS     (SI)(CX*1), Y8
	VFMADD231PS (BX), Y8, Y0
	VFMADD231PS (BX)(R11*1), Y8, Y1
	VFMADD231PS (BX)(R11*2), Y8, Y2
	VFMADD231PS (BX)(R13*1), Y8, Y3
	VFMADD231PS (DX), Y8, Y4
	VFMADD231PS (DX)(R11*1), Y8, Y5
	VFMADD231PS (DX)(R11*2), Y8, Y6
	VFMADD231PS (DX)(R13*1), Y8, Y7
	ADDQ $32, BX
	ADDQ $32, DX
	ADDQ $32, CX
	CMPQ CX, R11
	JB   ab1_s8chunk
	VHADDPS    Y1, Y0, Y0
	VHADDPS    Y3, Y2, Y2
	VHADDPS    Y2, Y0, Y0
	VHADDPS    Y5, Y4, Y4
	VHADDPS    Y7, Y6, Y6
	VHADDPS    Y6, Y4, Y4
	VPERM2F128 $0x20, Y4, Y0, Y1
	VPERM2F128 $0x31, Y4, Y0, Y2
	VADDPS     Y2, Y1, Y0
	VMULPS     Y15, Y0, Y0
	VMOVUPS    Y0, (R12)(AX*4)
	VMAXPS     Y0, Y9, Y9
	LEAQ (BX)(R13*2), BX // BX moved one row in the chunk loop: 7 more
	ADDQ R11, BX
	ADDQ $8, AX
	JMP  ab1_s8

ab1_s1:
	CMPQ BX, R10
	JAE  ab1_next
	VXORPS Y0, Y0, Y0
	XORQ CX, CX

ab1_s1chunk:
	VMOVUPS     (SI)(CX*1), Y8
	VFMADD231PS (BX)(CX*1), Y8, Y0
	ADDQ $32, CX
	CMPQ CX, R11
	JB   ab1_s1chunk
	HSUM_Y0
	VMULSS       X15, X0, X0
	VMOVSS       X0, (R12)(AX*4)
	VBROADCASTSS X0, Y0
	VMAXPS       Y0, Y9, Y9
	ADDQ R11, BX
	INCQ AX
	JMP  ab1_s1

ab1_next:
	ADDQ $24, R8
	DECQ R9
	JMP  ab1_block

ab1_max:
	VPERM2F128   $0x01, Y9, Y9, Y1
	VMAXPS       Y1, Y9, Y9
	VPERMILPS    $0x4e, Y9, Y1
	VMAXPS       Y1, Y9, Y9
	VPERMILPS    $0xb1, Y9, Y1
	VMAXPS       Y1, Y9, Y9
	MOVQ         m+8(FP), BX
	VBROADCASTSS (BX)(DI*4), Y1
	VMAXPS       Y9, Y1, Y9
	VMOVSS       X9, (BX)(DI*4)
	VSUBPS       Y9, Y1, Y1
	EXP8(Y1, Y2, Y3, Y4, Y5, Y6)
	MOVQ n+96(FP), CX
	ADDQ $7, CX
	ANDQ $-8, CX          // N
	MOVQ nh+32(FP), DX
	IMULQ CX, DX
	MOVQ sbuf+112(FP), BX
	LEAQ (BX)(DX*4), BX   // c values
	VMOVSS X1, (BX)(DI*4)
	LEAQ (R12)(CX*4), R12
	ADDQ R11, SI
	INCQ DI
	CMPQ DI, nh+32(FP)
	JB   ab1_head

	// Phase 2: numerators, l.
	MOVQ sbuf+112(FP), R12
	MOVQ n+96(FP), R10
	MOVQ R10, R9
	ANDQ $-8, R9
	MOVQ R9, CX
	SUBQ R10, CX
	LEAQ kmask<>+32(SB), DX
	VMOVUPS (DX)(CX*4), Y7 // lanes of the last vector that hold scores
	XORQ DI, DI

ab2_head:
	MOVQ         m+8(FP), BX
	VBROADCASTSS (BX)(DI*4), Y9
	VXORPS       Y10, Y10, Y10
	XORQ AX, AX

ab2_e8:
	CMPQ AX, R9
	JAE  ab2_tail
	VMOVUPS (R12)(AX*4), Y0
	VSUBPS  Y9, Y0, Y0
	EXP8(Y0, Y2, Y3, Y4, Y5, Y6)
	VMOVUPS Y0, (R12)(AX*4)
	VADDPS  Y0, Y10, Y10
	ADDQ $8, AX
	JMP  ab2_e8

ab2_tail:
	CMPQ AX, R10
	JAE  ab2_sum
	VMOVUPS (R12)(AX*4), Y0 // within the row's padding to N
	VSUBPS  Y9, Y0, Y0
	EXP8(Y0, Y2, Y3, Y4, Y5, Y6)
	VANDPS  Y7, Y0, Y0
	VMOVUPS Y0, (R12)(AX*4)
	VADDPS  Y0, Y10, Y10

ab2_sum:
	VHADDPS      Y10, Y10, Y10
	VHADDPS      Y10, Y10, Y10
	VEXTRACTF128 $1, Y10, X0
	VADDSS       X0, X10, X10
	MOVQ n+96(FP), CX
	ADDQ $7, CX
	ANDQ $-8, CX
	MOVQ nh+32(FP), DX
	IMULQ CX, DX
	MOVQ sbuf+112(FP), BX
	LEAQ (BX)(DX*4), BX
	VMOVSS (BX)(DI*4), X1
	MOVQ   l+16(FP), DX
	VMOVSS (DX)(DI*4), X0
	VMULSS X1, X0, X0
	VADDSS X10, X0, X0
	VMOVSS X0, (DX)(DI*4)
	LEAQ (R12)(CX*4), R12
	INCQ DI
	CMPQ DI, nh+32(FP)
	JB   ab2_head

	// Phase 3: acc = acc·c + Σ p_t·v_t.
	MOVQ sbuf+112(FP), R12
	MOVQ acc+0(FP), DI
	XORQ SI, SI

ab3_head:
	MOVQ n+96(FP), CX
	ADDQ $7, CX
	ANDQ $-8, CX
	MOVQ nh+32(FP), DX
	IMULQ CX, DX
	MOVQ sbuf+112(FP), BX
	LEAQ (BX)(DX*4), BX
	VBROADCASTSS (BX)(SI*4), Y1
	XORQ CX, CX

ab3_chunk:
	VMULPS (DI)(CX*1), Y1, Y0
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	MOVQ vs_base+72(FP), R8
	MOVQ vs_len+80(FP), R9
	XORQ AX, AX

ab3_block:
	TESTQ R9, R9
	JZ    ab3_store
	MOVQ (R8), BX
	MOVQ 8(R8), R10
	SHLQ $2, R10
	ADDQ BX, R10
	ADDQ CX, BX
	ADDQ CX, R10

ab3_a4:
	LEAQ (BX)(R11*4), DX
	CMPQ DX, R10
	JA   ab3_a1
	VBROADCASTSS (R12)(AX*4), Y5
	VBROADCASTSS 4(R12)(AX*4), Y6
	VBROADCASTSS 8(R12)(AX*4), Y7
	VBROADCASTSS 12(R12)(AX*4), Y8
	VFMADD231PS  (BX), Y5, Y0
	VFMADD231PS  (BX)(R11*1), Y6, Y2
	VFMADD231PS  (BX)(R11*2), Y7, Y3
	VFMADD231PS  (BX)(R13*1), Y8, Y4
	MOVQ DX, BX
	ADDQ $4, AX
	JMP  ab3_a4

ab3_a1:
	CMPQ BX, R10
	JAE  ab3_bnext
	VBROADCASTSS (R12)(AX*4), Y5
	VFMADD231PS  (BX), Y5, Y0
	ADDQ R11, BX
	INCQ AX
	JMP  ab3_a1

ab3_bnext:
	ADDQ $24, R8
	DECQ R9
	JMP  ab3_block

ab3_store:
	VADDPS  Y2, Y0, Y0
	VADDPS  Y4, Y3, Y3
	VADDPS  Y3, Y0, Y0
	VMOVUPS Y0, (DI)(CX*1)
	ADDQ $32, CX
	CMPQ CX, R11
	JB   ab3_chunk
	ADDQ R11, DI
	MOVQ n+96(FP), CX
	ADDQ $7, CX
	ANDQ $-8, CX
	LEAQ (R12)(CX*4), R12
	INCQ SI
	CMPQ SI, nh+32(FP)
	JB   ab3_head
	VZEROUPPER
	RET

// func maxAVX2(x *float32, n int) float32
//
// The largest element, NaN ignored (-Inf when there is none): MAXPS
// returns its second source when either is NaN, and the running maximum
// is that source (Go's first operand).
TEXT ·maxAVX2(SB), NOSPLIT, $0-20
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VMOVUPS K_NINF, Y0
	VMOVUPS Y0, Y1
	VMOVUPS Y0, Y2
	VMOVUPS Y0, Y3
	XORQ AX, AX
	MOVQ CX, DX
	ANDQ $-32, DX

mx_loop32:
	CMPQ AX, DX
	JAE  mx_loop8
	VMOVUPS (SI)(AX*4), Y4
	VMOVUPS 32(SI)(AX*4), Y5
	VMOVUPS 64(SI)(AX*4), Y6
	VMOVUPS 96(SI)(AX*4), Y7
	VMAXPS  Y0, Y4, Y0
	VMAXPS  Y1, Y5, Y1
	VMAXPS  Y2, Y6, Y2
	VMAXPS  Y3, Y7, Y3
	ADDQ $32, AX
	JMP  mx_loop32

mx_loop8:
	MOVQ CX, DX
	ANDQ $-8, DX

mx_loop8b:
	CMPQ AX, DX
	JAE  mx_tail
	VMOVUPS (SI)(AX*4), Y4
	VMAXPS  Y0, Y4, Y0
	ADDQ $8, AX
	JMP  mx_loop8b

mx_tail:
	CMPQ AX, CX
	JAE  mx_reduce
	MOVQ AX, BX
	SUBQ CX, BX
	LEAQ kmask<>+32(SB), DX
	VMOVUPS    (DX)(BX*4), Y15
	VMASKMOVPS (SI)(AX*4), Y15, Y4
	VBLENDVPS  Y15, Y4, Y1, Y4 // unused lanes: -Inf (Y1 holds only -Inf or maxima)
	VMAXPS     Y1, Y4, Y1

mx_reduce:
	VMAXPS       Y1, Y0, Y0
	VMAXPS       Y3, Y2, Y2
	VMAXPS       Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VMAXPS       X1, X0, X0
	VPERMILPS    $0x4e, X0, X1
	VMAXPS       X1, X0, X0
	VPERMILPS    $0xb1, X0, X1
	VMAXPS       X1, X0, X0
	VMOVSS       X0, ret+16(FP)
	VZEROUPPER
	RET

// func findAVX2(x *float32, n int, v float32) int
//
// The index of the first element equal to v, or n when there is none.
TEXT ·findAVX2(SB), NOSPLIT, $0-32
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VBROADCASTSS v+16(FP), Y0
	XORQ AX, AX
	MOVQ CX, DX
	ANDQ $-8, DX

fd_loop:
	CMPQ AX, DX
	JAE  fd_scalar
	VCMPPS    $0, (SI)(AX*4), Y0, Y1
	VMOVMSKPS Y1, BX
	TESTQ BX, BX
	JNZ  fd_found
	ADDQ $8, AX
	JMP  fd_loop

fd_found:
	BSFQ BX, BX
	ADDQ BX, AX
	MOVQ AX, ret+24(FP)
	VZEROUPPER
	RET

fd_scalar:
	CMPQ AX, CX
	JAE  fd_none
	VUCOMISS (SI)(AX*4), X0
	JNE  fd_next
	JP   fd_next
	MOVQ AX, ret+24(FP)
	VZEROUPPER
	RET

fd_next:
	INCQ AX
	JMP  fd_scalar

fd_none:
	MOVQ CX, ret+24(FP)
	VZEROUPPER
	RET
