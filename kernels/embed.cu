// embed.cu: embedding gather for every weight type.
//
// Embed launch: block (256), grid (ceil(cols/256), min(rows, 65535)); one
// thread per output element. The table is addressed in bytes: row id
// starts at table + id·rowBytes (for an F32 activation table rowBytes is its
// stride in bytes). For Q8_0 and Q4_0, stored split (kernels/ABI.md §1),
// rowBytes is the bytes of quants per row (cols, or cols/2) and the F16
// scales follow the quants of all vocab rows. An id outside [0, vocab) sets
// LOOM_ERR_TOKEN in loom_error and writes NaN to the row, so the error is
// both reported and visible.
#include "common.cuh"

// loom_embed_id reads row r's id and checks it.
__device__ __forceinline__ bool loom_embed_id(const int* ids, i64 is, i64 r, i64 vocab, i64* id) {
  *id = ids[r * is];
  if (*id < 0 || *id >= vocab) {
    loom_fail(LOOM_ERR_TOKEN);
    return false;
  }
  return true;
}

// LOOM_EMBED defines loom_embed_<name>: dst[r][c] = float(table[ids[r]][c]),
// where LOAD(table, rowBytes, vocab, cols, id, c) dequantizes one element.
#define LOOM_EMBED(name, LOAD)                                                                   \
  extern "C" __global__ void loom_embed_##name(float* dst, i64 ds, const uint8_t* table,         \
                                               i64 rowBytes, const int* ids, i64 is, i64 rows,   \
                                               i64 cols, i64 vocab) {                            \
    const i64 c = LOOM_COL();                                                                    \
    if (c >= cols) return;                                                                       \
    LOOM_FOR_ROWS(r, rows) {                                                                     \
      i64 id;                                                                                    \
      if (!loom_embed_id(ids, is, r, vocab, &id)) {                                              \
        dst[r * ds + c] = CUDART_NAN_F;                                                          \
        continue;                                                                                \
      }                                                                                          \
      dst[r * ds + c] = LOAD(table, rowBytes, vocab, cols, id, c);                               \
    }                                                                                            \
  }

__device__ __forceinline__ float load_f32(const uint8_t* t, i64 rb, i64 vocab, i64 cols, i64 id,
                                          i64 c) {
  return ((const float*)(t + id * rb))[c];
}
__device__ __forceinline__ float load_f16(const uint8_t* t, i64 rb, i64 vocab, i64 cols, i64 id,
                                          i64 c) {
  return f16_to_f32(((const uint16_t*)(t + id * rb))[c]);
}
__device__ __forceinline__ float load_bf16(const uint8_t* t, i64 rb, i64 vocab, i64 cols, i64 id,
                                           i64 c) {
  return bf16_to_f32(((const uint16_t*)(t + id * rb))[c]);
}
// split_scale returns the F16 scale of the block holding element (id, c):
// the scales of all vocab·cols/32 blocks follow the vocab·rb bytes of quants.
__device__ __forceinline__ float split_scale(const uint8_t* t, i64 rb, i64 vocab, i64 cols, i64 id,
                                             i64 c) {
  const uint16_t* d = (const uint16_t*)(t + vocab * rb);
  return f16_to_f32(d[id * (cols >> 5) + (c >> 5)]);
}
// Q8_0 split: the quant of element (id, c) is byte id·cols + c.
__device__ __forceinline__ float load_q8_0(const uint8_t* t, i64 rb, i64 vocab, i64 cols, i64 id,
                                           i64 c) {
  const int8_t q = (int8_t)t[id * rb + c];
  return split_scale(t, rb, vocab, cols, id, c) * (float)q;
}
// Q4_0 split: block b's 16 bytes sit at b·16 (b = id·cols/32 + c/32); byte
// i holds element i in its low nibble and element i+16 in its high nibble.
__device__ __forceinline__ float load_q4_0(const uint8_t* t, i64 rb, i64 vocab, i64 cols, i64 id,
                                           i64 c) {
  const int i = (int)(c & 31);
  const uint8_t p = t[id * rb + (c >> 5) * 16 + (i & 15)];
  const int q = i < 16 ? (p & 15) : (p >> 4);
  return split_scale(t, rb, vocab, cols, id, c) * (float)(q - 8);
}

LOOM_EMBED(f32, load_f32)
LOOM_EMBED(f16, load_f16)
LOOM_EMBED(bf16, load_bf16)
LOOM_EMBED(q8_0, load_q8_0)
LOOM_EMBED(q4_0, load_q4_0)
