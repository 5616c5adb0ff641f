// rope.cu: rotary position embedding, interleaved and NeoX layouts.
//
// Accuracy: the angle is theta = float(pos) * freq rounded to float32, as the
// contract states, and its sine and cosine come from the accurate sincosf
// (not the __sincosf intrinsic); loom is built without --use_fast_math, so
// sincosf keeps its full-range argument reduction for large positions.
#include "common.cuh"

// loom_rope_f32 rotates every head of every row of x into dst.
//
// x and dst are rows × (heads·headDim) with row strides xs and ds; pos is
// the I32 position of each row (row stride ps); freqs holds half floats.
// Each head has half rotated pairs and headDim - 2·half elements that are
// copied; one thread handles one pair (reading both elements before writing
// either, so dst may be x) or one copied element:
//
//   per  = headDim - half          // tasks per head
//   task = blockIdx.x·blockDim.x + threadIdx.x  in [0, heads·per)
//
// Launch: block (256), grid (ceil(heads·per/256), min(rows, 65535)).
extern "C" __global__ void loom_rope_f32(float* dst, i64 ds, const float* x, i64 xs,
                                         const int* pos, i64 ps, const float* freqs, i64 rows,
                                         i64 heads, i64 headDim, i64 half, i64 neox) {
  const i64 per = headDim - half;
  const i64 task = LOOM_COL();
  if (task >= heads * per) return;
  const i64 h = task / per, k = task % per;
  const i64 base = h * headDim;
  LOOM_FOR_ROWS(r, rows) {
    const float* xr = x + r * xs + base;
    float* dr = dst + r * ds + base;
    if (k < half) {
      const i64 a = neox ? k : 2 * k;
      const i64 b = neox ? k + half : 2 * k + 1;
      const float theta = (float)pos[r * ps] * freqs[k];
      float s, c;
      sincosf(theta, &s, &c);
      const float xa = xr[a], xb = xr[b];
      dr[a] = xa * c - xb * s;
      dr[b] = xa * s + xb * c;
    } else {
      const i64 e = 2 * half + (k - half);
      dr[e] = xr[e];
    }
  }
}
