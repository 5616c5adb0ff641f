// norm.cu: RMSNorm and LayerNorm, one block per row.
//
// Launch: block (256), grid (rows). Each thread walks the row with a stride
// of the block size, sums in float, and the block reduces with warp
// shuffles. dst may be the same memory as x: every thread reads an element
// before it writes it, and the reductions complete before any write.
#include "common.cuh"

// loom_rmsnorm_f32: dst[r][c] = x[r][c] / sqrt(mean(x[r]^2) + eps) * w[c].
extern "C" __global__ void loom_rmsnorm_f32(float* dst, i64 ds, const float* x, i64 xs,
                                            const float* w, i64 cols, double eps) {
  __shared__ float sh[32];
  const float* xr = x + (i64)blockIdx.x * xs;
  float* dr = dst + (i64)blockIdx.x * ds;
  float ss = 0.0f;
  for (i64 c = threadIdx.x; c < cols; c += blockDim.x) {
    const float v = xr[c];
    ss += v * v;
  }
  ss = block_sum(ss, sh);
  const float inv = 1.0f / sqrtf(ss / (float)cols + (float)eps);
  for (i64 c = threadIdx.x; c < cols; c += blockDim.x) dr[c] = xr[c] * inv * w[c];
}

// loom_layernorm_f32: dst[r][c] = (x[r][c] - mean) / sqrt(var + eps) * w[c]
// + b[c], with the variance computed in a second pass around the mean.
extern "C" __global__ void loom_layernorm_f32(float* dst, i64 ds, const float* x, i64 xs,
                                              const float* w, const float* b, i64 cols,
                                              double eps) {
  __shared__ float sh[32];
  const float* xr = x + (i64)blockIdx.x * xs;
  float* dr = dst + (i64)blockIdx.x * ds;
  float s = 0.0f;
  for (i64 c = threadIdx.x; c < cols; c += blockDim.x) s += xr[c];
  const float mean = block_sum(s, sh) / (float)cols;
  float v = 0.0f;
  for (i64 c = threadIdx.x; c < cols; c += blockDim.x) {
    const float d = xr[c] - mean;
    v += d * d;
  }
  const float var = block_sum(v, sh) / (float)cols;
  const float inv = 1.0f / sqrtf(var + (float)eps);
  for (i64 c = threadIdx.x; c < cols; c += blockDim.x) dr[c] = (xr[c] - mean) * inv * w[c] + b[c];
}
