// mma_common.cuh: small device helpers for the matrix and attention kernels
// (matmul.cu, attention.cu): tensor-core instructions (mma.sync, ldmatrix),
// asynchronous copies (cp.async), streaming loads and 16-bit packing.
//
// Everything lives in namespace lmm so it cannot collide with the helpers
// of common.cuh. Each wrapper is one PTX instruction; the comments give the
// fragment layouts the callers rely on (PTX ISA, "Matrix Fragments for
// mma.m16n8k16 with floating point type" and "ldmatrix"):
//
//   lane = 4·g + t  (g = groupID 0..7, t = threadID_in_group 0..3)
//   A (16×16, row-major), 4 × .b32 of two 16-bit values each:
//     a0 = A[g][2t..2t+1]   a1 = A[g+8][2t..2t+1]
//     a2 = A[g][2t+8..+9]   a3 = A[g+8][2t+8..+9]
//   B (16×8, "col": element (k, n) with k contiguous per n), 2 × .b32:
//     b0 = B[2t..2t+1][g]   b1 = B[2t+8..2t+9][g]
//   C/D (16×8, F32), 4 floats:
//     c0,c1 = C[g][2t..2t+1]   c2,c3 = C[g+8][2t..2t+1]
//   ldmatrix (8×8 of 16-bit, one 16-byte row address per lane of the
//   lanes 8i..8i+7 for matrix i): lane gets row g, columns 2t..2t+1 of each
//   matrix (with .trans: column g, rows 2t..2t+1).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

namespace lmm {

// smem_u32 converts a generic pointer to shared memory into the 32-bit
// shared-window address the PTX instructions below take.
__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return (uint32_t)__cvta_generic_to_shared(p);
}

// cp_async16 copies 16 bytes from global to shared memory asynchronously.
// When src_bytes is 0 nothing is read and the 16 bytes are zero-filled (src
// must still be a valid address). Both addresses are 16-byte aligned.
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src),
               "r"(src_bytes)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}
// cp_async_wait waits until at most N of this thread's committed groups are
// still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// ldmatrix_x4 loads four 8×8 16-bit matrices (see the header comment).
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// mma_16816 is D = A·B + D with 16-bit A and B (bf16 when BF16, else f16)
// and F32 accumulators, for one m16n8k16 tile.
template <bool BF16>
__device__ __forceinline__ void mma_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                          uint32_t b1) {
  if constexpr (BF16) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
        "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

// ld_stream16 loads 16 read-only bytes that are used once (weights): no L1
// allocation, so the L1 keeps what is reused.
__device__ __forceinline__ uint4 ld_stream16(const void* p) {
  uint4 v;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n"
      : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
      : "l"(p));
  return v;
}

// pack2 rounds two floats to 16 bits (nearest even) and packs them, lo in
// the low half: the operand order of the mma fragments.
template <bool BF16>
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  if constexpr (BF16) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
  } else {
    __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
  }
}

// Widening of packed 16-bit pairs (exact).
__device__ __forceinline__ float bf16lo(uint32_t u) { return __uint_as_float(u << 16); }
__device__ __forceinline__ float bf16hi(uint32_t u) { return __uint_as_float(u & 0xffff0000u); }
__device__ __forceinline__ float2 f16x2(uint32_t u) {
  return __half22float2(*reinterpret_cast<const __half2*>(&u));
}

// bytes_f32 widens byte i of u (an unsigned value 0..255 after the caller's
// bias) minus bias exactly: the float with bits 0x4B0000uu is 2^23 + uu, so
// one PRMT and one FADD replace a slow integer-to-float conversion.
template <int I>
__device__ __forceinline__ float byte_f32(uint32_t u, float bias) {
  return __uint_as_float(__byte_perm(u, 0x4B000000u, 0x7540 | I)) - bias;
}

}  // namespace lmm
