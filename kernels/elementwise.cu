// elementwise.cu: row-parallel element-wise kernels (Add, SwiGLU, GELU,
// Copy).
//
// Launch (all of them): block (256), grid (ceil(cols/256), min(rows, 65535)).
// Every tensor is rows × cols with its own row stride in elements; dst may
// be the same memory as an input (each element is read before it is written
// by the same thread).
#include "common.cuh"

// loom_add_f32: dst[r][c] = a[r][c] + b[r][c]; a one-row b is broadcast by
// passing bs = 0.
extern "C" __global__ void loom_add_f32(float* dst, i64 ds, const float* a, i64 as,
                                        const float* b, i64 bs, i64 rows, i64 cols) {
  const i64 c = LOOM_COL();
  if (c >= cols) return;
  LOOM_FOR_ROWS(r, rows) { dst[r * ds + c] = a[r * as + c] + b[r * bs + c]; }
}

// loom_swiglu_f32: dst = gate / (1 + exp(-gate)) * up.
extern "C" __global__ void loom_swiglu_f32(float* dst, i64 ds, const float* gate, i64 gs,
                                           const float* up, i64 us, i64 rows, i64 cols) {
  const i64 c = LOOM_COL();
  if (c >= cols) return;
  LOOM_FOR_ROWS(r, rows) {
    const float g = gate[r * gs + c];
    dst[r * ds + c] = g / (1.0f + expf(-g)) * up[r * us + c];
  }
}

// loom_gelu_f32: the tanh approximation,
// dst = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))),
// computed as x · sigmoid(2y), the same value without the cancellation of
// 1 + tanh(y) for negative x (which cost 5e-4 relative error at x ≈ -4 on
// an H200, 2026-11-27). expf is the accurate one (no fast math here);
// for very negative y it overflows to inf and the result is -0.
extern "C" __global__ void loom_gelu_f32(float* dst, i64 ds, const float* x, i64 xs, i64 rows,
                                         i64 cols) {
  const i64 c = LOOM_COL();
  if (c >= cols) return;
  const float k = 0.7978845608028654f; // sqrt(2/pi)
  LOOM_FOR_ROWS(r, rows) {
    const float v = x[r * xs + c];
    dst[r * ds + c] = v / (1.0f + expf(-2.0f * k * (v + 0.044715f * v * v * v)));
  }
}

// loom_copy_f32: dst[r][c] = src[r][c].
extern "C" __global__ void loom_copy_f32(float* dst, i64 ds, const float* src, i64 ss, i64 rows,
                                         i64 cols) {
  const i64 c = LOOM_COL();
  if (c >= cols) return;
  LOOM_FOR_ROWS(r, rows) { dst[r * ds + c] = src[r * ss + c]; }
}
