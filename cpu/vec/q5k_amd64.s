//go:build amd64 && !purego

#include "textflag.h"
#include "kquant_amd64.h"

// Thirty-two bytes of 0x10: the fifth bit of a quant, in every byte.
DATA q5kbit4<>+0(SB)/8, $0x1010101010101010
DATA q5kbit4<>+8(SB)/8, $0x1010101010101010
DATA q5kbit4<>+16(SB)/8, $0x1010101010101010
DATA q5kbit4<>+24(SB)/8, $0x1010101010101010
GLOBL q5kbit4<>(SB), RODATA|NOPTR, $32

// func dotQ5_KQ8AVX2(w *byte, q *int8, d *float32, s *float32, nb int) float32
//
// DotQ5_KQ8 for nb ≥ 1 blocks: dotQ4_KQ8AVX2 (q4k_amd64.s) with the
// weights' fifth bits merged in before the products. Sub-block j's fifth
// bits are bit j of the 32 bytes qh (kept in Y6 for the block); a 16-bit
// shift by 4−j (left or right) brings them to bit 4 of each byte, where a
// mask keeps them, and an OR puts them over the nibbles. The quants are
// then 0..31, so VPMADDUBSW's pair sums stay exact (2·31·127 < 2^15).
TEXT ·dotQ5_KQ8AVX2(SB), NOSPLIT, $32-44
	MOVQ w+0(FP), SI
	MOVQ q+8(FP), DI
	MOVQ d+16(FP), DX
	MOVQ s+24(FP), R13
	MOVQ nb+32(FP), CX
	LEAQ ·f16Table(SB), R8
	MOVL $0x0f0f0f0f, AX
	VMOVD AX, X15
	VPBROADCASTD X15, Y15 // low-nibble mask
	MOVL $0x00010001, AX
	VMOVD AX, X14
	VPBROADCASTD X14, Y14 // int16 ones
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3

q5k_block:
	PREFETCHT0 4096(SI)
	PREFETCHT0 4160(SI)
	PREFETCHT0 4224(SI)
	// Y6 = s1[j], Y7 = s2[j] (kquant_amd64.h), as dotQ4_KQ8AVX2.
	KSCALES
	VMOVUPS Y6, s1-32(SP)
	KMINS
	VMOVDQU 16(SI), Y6    // qh
	VMOVDQU q5kbit4<>(SB), Y7


#define HIGHL(N, DST) \
	VPSLLW $N, Y6, Y8 \
	VPAND  Y7, Y8, Y8 \
	VPOR   Y8, DST, DST

#define HIGHR(N, DST) \
	VPSRLW $N, Y6, Y8 \
	VPAND  Y7, Y8, Y8 \
	VPOR   Y8, DST, DST

#define NIBBLES(QOFF) \
	VMOVDQU QOFF(SI), Y9 \
	VPAND   Y15, Y9, Y10 \
	VPSRLW  $4, Y9, Y9 \
	VPAND   Y15, Y9, Y9

	// Chunk c: sub-blocks 2c (low nibbles, Y10) and 2c+1 (high, Y9).
	NIBBLES(48)
	HIGHL(4, Y10)
	HIGHL(3, Y9)
	KSUB(Y10, 0, s1-32, Y0)
	KSUB(Y9, 32, s1-28, Y1)
	NIBBLES(80)
	HIGHL(2, Y10)
	HIGHL(1, Y9)
	KSUB(Y10, 64, s1-24, Y0)
	KSUB(Y9, 96, s1-20, Y1)
	NIBBLES(112)
	HIGHR(0, Y10)
	HIGHR(1, Y9)
	KSUB(Y10, 128, s1-16, Y0)
	KSUB(Y9, 160, s1-12, Y1)
	NIBBLES(144)
	HIGHR(2, Y10)
	HIGHR(3, Y9)
	KSUB(Y10, 192, s1-8, Y0)
	KSUB(Y9, 224, s1-4, Y1)

	ADDQ $176, SI
	ADDQ $256, DI
	ADDQ $32, DX
	DECQ CX
	JNZ  q5k_block

	KRESULT_Y
	VZEROUPPER
	MOVSS X0, ret+40(FP)
	RET

// Per chunk c of dotQ5_KQ8AVX512, 64 bytes: 32 of 1<<2c (the fifth-bit
// selector of sub-block 2c, low nibbles) then 32 of 1<<(2c+1).
DATA q5kbits<>+0(SB)/8, $0x0101010101010101
DATA q5kbits<>+8(SB)/8, $0x0101010101010101
DATA q5kbits<>+16(SB)/8, $0x0101010101010101
DATA q5kbits<>+24(SB)/8, $0x0101010101010101
DATA q5kbits<>+32(SB)/8, $0x0202020202020202
DATA q5kbits<>+40(SB)/8, $0x0202020202020202
DATA q5kbits<>+48(SB)/8, $0x0202020202020202
DATA q5kbits<>+56(SB)/8, $0x0202020202020202
DATA q5kbits<>+64(SB)/8, $0x0404040404040404
DATA q5kbits<>+72(SB)/8, $0x0404040404040404
DATA q5kbits<>+80(SB)/8, $0x0404040404040404
DATA q5kbits<>+88(SB)/8, $0x0404040404040404
DATA q5kbits<>+96(SB)/8, $0x0808080808080808
DATA q5kbits<>+104(SB)/8, $0x0808080808080808
DATA q5kbits<>+112(SB)/8, $0x0808080808080808
DATA q5kbits<>+120(SB)/8, $0x0808080808080808
DATA q5kbits<>+128(SB)/8, $0x1010101010101010
DATA q5kbits<>+136(SB)/8, $0x1010101010101010
DATA q5kbits<>+144(SB)/8, $0x1010101010101010
DATA q5kbits<>+152(SB)/8, $0x1010101010101010
DATA q5kbits<>+160(SB)/8, $0x2020202020202020
DATA q5kbits<>+168(SB)/8, $0x2020202020202020
DATA q5kbits<>+176(SB)/8, $0x2020202020202020
DATA q5kbits<>+184(SB)/8, $0x2020202020202020
DATA q5kbits<>+192(SB)/8, $0x4040404040404040
DATA q5kbits<>+200(SB)/8, $0x4040404040404040
DATA q5kbits<>+208(SB)/8, $0x4040404040404040
DATA q5kbits<>+216(SB)/8, $0x4040404040404040
DATA q5kbits<>+224(SB)/8, $0x8080808080808080
DATA q5kbits<>+232(SB)/8, $0x8080808080808080
DATA q5kbits<>+240(SB)/8, $0x8080808080808080
DATA q5kbits<>+248(SB)/8, $0x8080808080808080
GLOBL q5kbits<>(SB), RODATA|NOPTR, $256

// func dotQ5_KQ8AVX512(w *byte, q *int8, d *float32, s *float32, nb int) float32
//
// dotQ4_KQ8AVX512 (q4k_amd64.s) for Q5_K. The block's 32 bytes of fifth
// bits sit in both halves of Z23; per chunk, VPTESTMB against the chunk's
// selectors (q5kbits) gives a byte mask of the quants whose fifth bit is
// set, and a masked VPADDB adds 16 to those (the nibbles' bit 4 is clear,
// so adding is OR-ing). One VPDPBUSD then covers both sub-blocks.
TEXT ·dotQ5_KQ8AVX512(SB), NOSPLIT, $0-44
	MOVQ w+0(FP), SI
	MOVQ q+8(FP), DI
	MOVQ d+16(FP), DX
	MOVQ s+24(FP), R13
	MOVQ nb+32(FP), CX
	LEAQ ·f16Table(SB), R8
	MOVL $0x0f0f0f0f, AX
	VMOVD AX, X15
	VPBROADCASTD X15, Y15 // low-nibble mask
	MOVL $0x10101010, AX
	VPBROADCASTD AX, Z22  // 16 in every byte
	VMOVDQU32 ·q4kperm+0(SB), Z26
	VMOVDQU32 ·q4kperm+64(SB), Z27
	VMOVDQU32 ·q4kperm+128(SB), Z28
	VMOVDQU32 ·q4kperm+192(SB), Z29
	VMOVDQU32 q5kbits<>+0(SB), Z18
	VMOVDQU32 q5kbits<>+64(SB), Z19
	VMOVDQU32 q5kbits<>+128(SB), Z20
	VMOVDQU32 q5kbits<>+192(SB), Z21
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3

q5kz_block:
	PREFETCHT0 4096(SI)
	PREFETCHT0 4160(SI)
	PREFETCHT0 4224(SI)
	KSCALES
	KMINS
	VMOVDQU8 16(SI), Y23
	VINSERTI64X4 $1, Y23, Z23, Z23 // qh, twice

#define ZCHUNK5(QOFF, XOFF, BITS, IDX, ACC) \
	VMOVDQU      QOFF(SI), Y9 \
	VPAND        Y15, Y9, Y10 \
	VPSRLW       $4, Y9, Y9 \
	VPAND        Y15, Y9, Y9 \
	VINSERTI64X4 $1, Y9, Z10, Z10 \
	VPTESTMB     BITS, Z23, K1 \
	VPADDB       Z22, Z10, K1, Z10 \
	VPXORD       Z12, Z12, Z12 \
	VPDPBUSD     XOFF(DI), Z10, Z12 \
	VCVTDQ2PS    Z12, Z12 \
	VPERMPS      Z6, IDX, Z16 \
	VFMADD231PS  Z16, Z12, ACC

	ZCHUNK5(48, 0, Z18, Z26, Z0)
	ZCHUNK5(80, 64, Z19, Z27, Z1)
	ZCHUNK5(112, 128, Z20, Z28, Z0)
	ZCHUNK5(144, 192, Z21, Z29, Z1)

	ADDQ $176, SI
	ADDQ $256, DI
	ADDQ $32, DX
	DECQ CX
	JNZ  q5kz_block

	KRESULT_Z
	VZEROUPPER
	MOVSS X0, ret+40(FP)
	RET
