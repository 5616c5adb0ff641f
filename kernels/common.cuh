// common.cuh: helpers shared by loom's element-wise, normalisation and
// gather kernels (conversions, reductions, the device error word).
//
// Conventions every extern "C" kernel in this folder follows, because the Go
// launcher (package gpu) copies exactly 8 bytes per parameter:
//   - pointers are passed as pointers;
//   - integers as long long (i64);
//   - floating-point scalars as double (the launcher widens a float32, so
//     converting back to float is exact);
//   - row strides are in elements, and every activation may be strided.
#pragma once

#include <cuda_fp16.h>
#include <math_constants.h>
#include <stdint.h>

typedef long long i64;

// loom_error collects error codes (bit flags) that kernels find in their
// inputs, such as a token id outside the table. The host reads it after
// synchronising (Backend.Sync, Backend.Download) and reports
// backend.ErrIndex. Kernels set bits with atomicOr and never clear them.
extern "C" {
__device__ int loom_error;
}

// Error bits in loom_error.
#define LOOM_ERR_TOKEN 1    // Embed: token id outside [0, V)
#define LOOM_ERR_POSITION 2 // Attention: position or block id out of range

__device__ __forceinline__ void loom_fail(int code) { atomicOr(&loom_error, code); }

// bf16_to_f32 widens a bfloat16 exactly.
__device__ __forceinline__ float bf16_to_f32(uint16_t h) {
  return __uint_as_float((uint32_t)h << 16);
}

// f32_to_bf16 rounds to the nearest bfloat16, ties to even, NaN stays a
// quiet NaN: bit for bit what runtime/quant.F32ToBF16 does.
__device__ __forceinline__ uint16_t f32_to_bf16(float f) {
  uint32_t b = __float_as_uint(f);
  if ((b & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((b >> 16) | 0x40u);
  b += 0x7fffu + ((b >> 16) & 1u);
  return (uint16_t)(b >> 16);
}

// f16_to_f32 widens an IEEE binary16 exactly.
__device__ __forceinline__ float f16_to_f32(uint16_t h) {
  return __half2float(__ushort_as_half(h));
}

// f32_to_f16 rounds to the nearest binary16, ties to even.
__device__ __forceinline__ uint16_t f32_to_f16(float f) {
  return __half_as_ushort(__float2half_rn(f));
}

// warp_sum returns the sum of v over the 32 lanes of a warp, in every lane.
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// block_sum returns the sum of v over the block, in every thread. The block
// is one-dimensional with a multiple of 32 threads; sh holds 32 floats of
// shared memory. It may be called several times in a row with the same sh.
__device__ __forceinline__ float block_sum(float v, float* sh) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_sum(v);
  __syncthreads(); // an earlier call may still be reading sh
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  v = lane < (int)(blockDim.x >> 5) ? sh[lane] : 0.0f;
  return warp_sum(v);
}

// The row loop of the row-parallel element-wise kernels: the grid's y
// dimension walks the rows (it is capped at 65535 by the hardware, so each
// block may handle several rows), x walks the columns.
#define LOOM_FOR_ROWS(r, rows) for (i64 r = blockIdx.y; r < (rows); r += gridDim.y)
#define LOOM_COL() ((i64)blockIdx.x * blockDim.x + threadIdx.x)
