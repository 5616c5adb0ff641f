//go:build amd64 && !purego

#include "textflag.h"

// The AVX512-VNNI tiles of the integer path: four activation rows by three
// Q8_0 (DotTileQ8_0Q8) or Q4_0 (DotTileQ4_0Q8) weight rows, each element
// bitwise what the one-row kernel (dotQ8_0Q8AVX2, dotQ4_0Q8AVX2) gives for
// the pair. The two differ only in how a weight chunk is loaded (WPREP_*);
// the rest is qtile_amd64.h, included once for each.

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

DATA k0f<>+0(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA k0f<>+8(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA k0f<>+16(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA k0f<>+24(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA k0f<>+32(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA k0f<>+40(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA k0f<>+48(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA k0f<>+56(SB)/8, $0x0f0f0f0f0f0f0f0f
GLOBL k0f<>(SB), RODATA|NOPTR, $64

DATA k08<>+0(SB)/8, $0x0808080808080808
DATA k08<>+8(SB)/8, $0x0808080808080808
DATA k08<>+16(SB)/8, $0x0808080808080808
DATA k08<>+24(SB)/8, $0x0808080808080808
DATA k08<>+32(SB)/8, $0x0808080808080808
DATA k08<>+40(SB)/8, $0x0808080808080808
DATA k08<>+48(SB)/8, $0x0808080808080808
DATA k08<>+56(SB)/8, $0x0808080808080808
GLOBL k08<>(SB), RODATA|NOPTR, $64


// WPREP_Q8(BASE, XW, YW, ZW, ZNC, YDW, ZDW): the Q8_0 weight row's chunk at BASE: its
// two blocks' quants in ZW (block 2i low half, 2i+1 high), −128·Σw per
// 4-lane group in ZNC, the two f16 scales broadcast to their halves in
// ZDW; and a prefetch 4 KiB ahead, past the hardware prefetchers' page
// boundary, as the streaming one-row kernels do.
#define WPREP_Q8(BASE, XW, YW, ZW, ZNC, YDW, ZDW) \
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
#define WPREP1_Q8(BASE, XW, YW, ZW, ZNC, YDW) \
	VMOVDQU32     2(BASE), YW \
	VPXORD        ZNC, ZNC, ZNC \
	VPDPBUSD      ZW, Z15, ZNC \
	VPXORD        Z26, Z26, Z26 \
	VPSUBD        ZNC, Z26, ZNC \
	MOVWLZX       (BASE), AX \
	VBROADCASTSS  (R8)(AX*4), YDW

// WPREP_Q4(BASE, XW, YW, ZW, ZNC, YDW, ZDW): the Q4_0 weight row's chunk at
// BASE (two 18-byte blocks): the 64 quants in ZW as int8 in element order
// (each block's 16 low nibbles, then its 16 high ones, less 8: what
// Q4_0Q8_BLOCK builds), −128·Σw per 4-lane group in ZNC, the two f16
// scales broadcast to their halves in ZDW; a prefetch 4 KiB ahead.
#define WPREP_Q4(BASE, XW, YW, ZW, ZNC, YDW, ZDW) \
	PREFETCHT0    4096(BASE) \
	VMOVDQU       2(BASE), XW \
	VPSRLW        $4, XW, X26 \
	VINSERTI32X4  $1, X26, YW, YW \
	VMOVDQU32     20(BASE), X27 \
	VPSRLW        $4, X27, X26 \
	VINSERTI32X4  $1, X26, Y27, Y27 \
	VINSERTI64X4  $1, Y27, ZW, ZW \
	VPANDD        k0f<>(SB), ZW, ZW \
	VPSUBB        k08<>(SB), ZW, ZW \
	VPXORD        ZNC, ZNC, ZNC \
	VPDPBUSD      ZW, Z15, ZNC \
	VPXORD        Z26, Z26, Z26 \
	VPSUBD        ZNC, Z26, ZNC \
	MOVWLZX       (BASE), AX \
	VBROADCASTSS  (R8)(AX*4), YDW \
	MOVWLZX       18(BASE), AX \
	VBROADCASTSS  (R8)(AX*4), Y26 \
	VINSERTF32X8  $1, Y26, ZDW, ZDW

// The tail's single block: upper halves zero (256-bit operations only).
#define WPREP1_Q4(BASE, XW, YW, ZW, ZNC, YDW) \
	VMOVDQU       2(BASE), XW \
	VPSRLW        $4, XW, X26 \
	VINSERTI32X4  $1, X26, YW, YW \
	VPAND         k0f<>(SB), YW, YW \
	VPSUBB        k08<>(SB), YW, YW \
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
#define TILE_NAME ·dotTileQ8_0Q8AVX512
#define TILE_BLOCK 34
#define WPREP WPREP_Q8
#define WPREP1 WPREP1_Q8
#include "qtile_amd64.h"
#undef TILE_NAME
#undef TILE_BLOCK
#undef WPREP
#undef WPREP1

// func dotTileQ4_0Q8AVX512(dst *float32, ldd int, w *byte, ldw int, q *int8, ldq int, d *float32, ldx int, nb int)
//
// dst[r*ldd+c] = DotQ4_0Q8(w[c*ldw:], q[r*ldq:], d[r*ldx:r*ldx+nb]) for
// r < 4 and c < 3, bitwise, as q8tile_amd64.s: per pair the same int32
// lanes (VPDPBUSD of x+128 with w, less 128·Σw, is Σ x·w exactly, four
// products a lane as VPMADDUBSW+VPMADDWD group them), the same scale
// product dw·dx, even blocks in the low half and odd in the high
// (dotQ4_0Q8AVX2's Y0 and Y1), and the same reduction. ldw is in bytes, ldq in int8s, ldx in floats.
#define TILE_NAME ·dotTileQ4_0Q8AVX512
#define TILE_BLOCK 18
#define WPREP WPREP_Q4
#define WPREP1 WPREP1_Q4
#include "qtile_amd64.h"
