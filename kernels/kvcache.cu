// kvcache.cu: copying one block of the paged KV cache onto another
// (Backend.CopyKVBlock), for forking a sequence.
//
// The cache is one allocation made of planes (one per layer and per K or V,
// see kernels/ABI.md), each plane an array of blocks of blockBytes bytes:
//
//   block b of plane p starts at base + p·planeBytes + b·blockBytes
//
// Launch: block (256), grid (min(ceil(units/256), 65535), min(planes, 65535))
// where units = blockBytes/16 when planeBytes and blockBytes are multiples of
// 16 (16-byte copies; the allocation is 256-byte aligned), else blockBytes
// (byte copies).
#include "common.cuh"

extern "C" __global__ void loom_copy_kv_block(uint8_t* base, i64 planes, i64 planeBytes,
                                              i64 blockBytes, i64 dstBlock, i64 srcBlock) {
  const bool wide = ((planeBytes | blockBytes) & 15) == 0;
  const i64 units = wide ? blockBytes / 16 : blockBytes;
  for (i64 p = blockIdx.y; p < planes; p += gridDim.y) {
    uint8_t* d = base + p * planeBytes + dstBlock * blockBytes;
    const uint8_t* s = base + p * planeBytes + srcBlock * blockBytes;
    for (i64 u = (i64)blockIdx.x * blockDim.x + threadIdx.x; u < units;
         u += (i64)gridDim.x * blockDim.x) {
      if (wide)
        ((uint4*)d)[u] = ((const uint4*)s)[u];
      else
        d[u] = s[u];
    }
  }
}
