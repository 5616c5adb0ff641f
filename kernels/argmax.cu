// argmax.cu: index of the largest element of each row, on the device, so
// greedy decoding reads back 4 bytes per row instead of the logits.
#include "common.cuh"

#include <limits.h>

// argmax_better reports whether (v, i) beats (bv, bi): a larger value wins,
// equal values go to the lower index, and NaN loses to every number (two
// NaNs also go to the lower index). The order is total, so the reduction
// gives the same answer in any order.
__device__ __forceinline__ bool argmax_better(float v, int i, float bv, int bi) {
  if (isnan(v)) return isnan(bv) && i < bi;
  if (isnan(bv)) return true;
  return v > bv || (v == bv && i < bi);
}

// loom_argmax_f32: dst[r·ds] = the smallest c with x[r][c] maximal. dst is
// I32 with row stride ds; cols < 2^31.
//
// Launch: block (LOOM_ARGMAX_THREADS = 512), grid (rows).
#define LOOM_ARGMAX_THREADS 512
extern "C" __global__ void __launch_bounds__(LOOM_ARGMAX_THREADS)
    loom_argmax_f32(int* dst, i64 ds, const float* x, i64 xs, i64 cols) {
  __shared__ float shv[LOOM_ARGMAX_THREADS / 32];
  __shared__ int shi[LOOM_ARGMAX_THREADS / 32];
  const float* xr = x + (i64)blockIdx.x * xs;
  float bv = CUDART_NAN_F;
  int bi = INT_MAX;
  for (i64 c = threadIdx.x; c < cols; c += blockDim.x) {
    const float v = xr[c];
    if (argmax_better(v, (int)c, bv, bi)) bv = v, bi = (int)c;
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float v = __shfl_xor_sync(0xffffffffu, bv, o);
    const int i = __shfl_xor_sync(0xffffffffu, bi, o);
    if (argmax_better(v, i, bv, bi)) bv = v, bi = i;
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) shv[warp] = bv, shi[warp] = bi;
  __syncthreads();
  if (warp != 0) return;
  const int nw = blockDim.x >> 5;
  bv = lane < nw ? shv[lane] : CUDART_NAN_F;
  bi = lane < nw ? shi[lane] : INT_MAX;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float v = __shfl_xor_sync(0xffffffffu, bv, o);
    const int i = __shfl_xor_sync(0xffffffffu, bi, o);
    if (argmax_better(v, i, bv, bi)) bv = v, bi = i;
  }
  if (lane == 0) dst[(i64)blockIdx.x * ds] = bi == INT_MAX ? 0 : bi;
}
