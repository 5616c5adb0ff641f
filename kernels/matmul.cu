// matmul.cu: Backend.MatMul, dst[rows × out] = x[rows × in] · w[out × in]ᵀ
// (contract: runtime/backend/backend.go; launch ABI: kernels/ABI.md).
//
// Design
//
// * loom_gemv_<wt>_{1,4,8} — decode (rows ≤ 8), memory-bound: the weights
//   are read exactly once, so the time is bytes(w) / bandwidth. Each warp
//   owns R output rows (R = 1, 2, 4 for the 1/4/8 variants) and streams
//   them with 16-byte non-allocating loads: 8 in flight per lane for the 1
//   and 4 variants, 4 (one per row) for the 8 variant, which keeps it at
//   128 registers and two blocks per SM. x is staged in shared memory in F32 (in chunks
//   of 8192/rows columns, 32 KiB) so that all rows reuse every weight
//   register; the R rows per warp divide the shared-memory reads per weight
//   byte by R, which keeps shared memory under its 128 B/clk for up to 8
//   rows. x is stored permuted within each warp-wide group of 32·VE
//   columns (VE = elements per 16-byte vector) so that each lane's float4
//   reads are contiguous across the warp (no bank conflicts). Accumulation
//   is F32 and x stays F32, so decode matches the CPU reference to
//   rounding. Q8_0/Q4_0 use the repacked layout of ABI.md (quants and
//   scales in separate arrays, so the quants are 16-byte aligned) and widen
//   bytes with PRMT+FADD instead of the quarter-rate I2F. The 1/4/8 split
//   exists so that the rows = 1 kernel gets the registers it needs and not
//   those of rows = 8 (a kernel's register count is its worst path). With
//   256 threads and 8 rows (1-row variant) per block, 4096 outputs make 512
//   blocks; the F32/F16/BF16 1-row kernels are held to 64 registers so 4
//   blocks fit an SM and all 512 are resident at once on 132 SMs (at 3 per
//   SM, measured on the H200, the second 0.29 of a wave cost the 4096-output
//   matrices 30-40% of their time), each SM then keeping 128 KiB of loads
//   in flight. Expected: ≥ 90% of copy bandwidth for the large Llama-3-8B
//   matrices at rows = 1.
//
// * loom_gemm_{bf16,f16}_{128x256,64x64} — prefill and batched decode on
//   tensor cores: mma.sync.m16n8k16 (16-bit in, F32 accumulate), operands
//   through ldmatrix from shared memory tiles filled by a cp.async pipeline
//   (3 stages of BK = 64 for 128x256, 4 for 64x64), rows of 64 16-bit values
//   (128 bytes) swizzled by XOR-ing the 16-byte chunk index with (row & 7),
//   so cp.async stores and ldmatrix reads are both conflict-free. 128x256
//   uses 8 warps of 64×64 (each k16 step: 8 ldmatrix.x4 for 32 mma, the
//   ratio that keeps shared memory below the tensor cores' demand); 64x64
//   uses 4 warps of 32×32 and split-K (grid.z) for small row counts, where
//   the work is weight-bandwidth bound and needs many CTAs. Both operands
//   are K-contiguous ("TN"): x converted to 16 bits by loom_mm_x_* into a
//   zero-padded workspace, w used in place (BF16/F16) or dequantized to F16
//   by loom_mm_w_half (Q8_0, Q4_0, unaligned rows). Expected on an H100:
//   mma.sync peaks near two thirds of the wgmma rate; a well-fed 128x256
//   tile should reach 400-550 TFLOP/s at Llama-3-8B shapes with rows = 2048
//   (the target is 50% of the measured cuBLAS rate).
//
// * loom_sgemm_f32 — F32 weights with rows > 8: a classic 64×64×16 SIMT tile
//   with 4×4 outputs per thread, register-staged double buffering, full F32
//   FMA (no TF32), any sizes and alignments.
#include "common.cuh"
#include "mma_common.cuh"

namespace lmm {

// ---------------------------------------------------------------------------
// GEMV

enum WType { W_F32 = 0, W_F16 = 1, W_BF16 = 2, W_Q8_0 = 3, W_Q4_0 = 4 };

constexpr int kGemvThreads = 256;
constexpr int kGemvWarps = kGemvThreads / 32;
constexpr int kGemvXS = 8192;  // floats of staged x (32 KiB)

// Elements of one 16-byte weight vector.
template <int WT>
__host__ __device__ constexpr int gemv_ve() {
  return WT == W_F32 ? 4 : (WT == W_F16 || WT == W_BF16) ? 8 : WT == W_Q8_0 ? 16 : 32;
}

// gemv_perm maps column e of a chunk to its shared-memory slot: inside each
// group of 32·VE columns (one warp-wide vector load), the 4-column piece h
// of lane l's vector goes to h·128 + l·4, so the warp's float4 reads of
// piece h are 512 contiguous bytes.
template <int VE>
__device__ __forceinline__ int gemv_perm(int e) {
  constexpr int GW = 32 * VE;
  return (e / GW) * GW + ((e % VE) >> 2) * 128 + ((e % GW) / VE) * 4 + (e & 3);
}

// gemv_w4 widens the 4 weights of piece h (columns 4h..4h+3 of the vector)
// to floats. For Q8_0/Q4_0 these are the raw quants (the scale is applied
// per vector by the caller).
// h is a compile-time constant at every (unrolled) call site, so the word
// selection folds away.
template <int WT>
__device__ __forceinline__ void gemv_w4(const uint4& v, const int H, float (&f)[4]) {
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
  if constexpr (WT == W_F32) {
    f[0] = __uint_as_float(w[0]);
    f[1] = __uint_as_float(w[1]);
    f[2] = __uint_as_float(w[2]);
    f[3] = __uint_as_float(w[3]);
  } else if constexpr (WT == W_BF16) {
    f[0] = bf16lo(w[2 * H]);
    f[1] = bf16hi(w[2 * H]);
    f[2] = bf16lo(w[2 * H + 1]);
    f[3] = bf16hi(w[2 * H + 1]);
  } else if constexpr (WT == W_F16) {
    const float2 a = f16x2(w[2 * H]), b = f16x2(w[2 * H + 1]);
    f[0] = a.x;
    f[1] = a.y;
    f[2] = b.x;
    f[3] = b.y;
  } else if constexpr (WT == W_Q8_0) {
    const uint32_t u = w[H] ^ 0x80808080u;  // int8 q -> unsigned q+128
    f[0] = byte_f32<0>(u, 8388736.0f);
    f[1] = byte_f32<1>(u, 8388736.0f);
    f[2] = byte_f32<2>(u, 8388736.0f);
    f[3] = byte_f32<3>(u, 8388736.0f);
  } else {  // Q4_0: pieces 0..3 are low nibbles of words 0..3, 4..7 high nibbles
    const uint32_t u = (H < 4 ? w[H & 3] : (w[H & 3] >> 4)) & 0x0f0f0f0fu;
    f[0] = byte_f32<0>(u, 8388616.0f);  // 2^23 + 8
    f[1] = byte_f32<1>(u, 8388616.0f);
    f[2] = byte_f32<2>(u, 8388616.0f);
    f[3] = byte_f32<3>(u, 8388616.0f);
  }
}

// gemv_load issues the U vector loads of the R rows of this warp for the
// columns c0 + base + u·GW + lane·VE (u < U), zero where out of range.
template <int WT, int R, int U>
__device__ __forceinline__ void gemv_load(uint4 (&wv)[R][U], float (&sc)[R][U],
                                          const uint8_t* w, i64 o0, i64 out, i64 in, i64 c0,
                                          int base, int kc, int lane) {
  constexpr int VE = gemv_ve<WT>();
  constexpr int GW = 32 * VE;
#pragma unroll
  for (int rr = 0; rr < R; rr++) {
#pragma unroll
    for (int u = 0; u < U; u++) {
      const int e = base + u * GW + lane * VE;
      const i64 o = o0 + rr;
      wv[rr][u] = make_uint4(0, 0, 0, 0);
      sc[rr][u] = 0.0f;
      if (o < out && e < kc) {
        const i64 c = c0 + e;
        if constexpr (WT == W_F32) {
          wv[rr][u] = ld_stream16(w + (o * in + c) * 4);
        } else if constexpr (WT == W_F16 || WT == W_BF16) {
          wv[rr][u] = ld_stream16(w + (o * in + c) * 2);
        } else if constexpr (WT == W_Q8_0) {
          wv[rr][u] = ld_stream16(w + o * in + c);
          const uint16_t* d = (const uint16_t*)(w + out * in);
          sc[rr][u] = f16_to_f32(__ldg(d + (o * in + c) / 32));
        } else {
          wv[rr][u] = ld_stream16(w + (o * in + c) / 2);
          const uint16_t* d = (const uint16_t*)(w + out * in / 2);
          sc[rr][u] = f16_to_f32(__ldg(d + (o * in + c) / 32));
        }
      }
    }
  }
}

// gemv_scalar_w reads weight (o, c) of a float type without alignment needs.
template <int WT>
__device__ __forceinline__ float gemv_scalar_w(const uint8_t* w, i64 idx) {
  if constexpr (WT == W_F32) return __ldg((const float*)w + idx);
  if constexpr (WT == W_BF16) return bf16_to_f32(__ldg((const unsigned short*)w + idx));
  return f16_to_f32(__ldg((const unsigned short*)w + idx));
}

// gemv: NR x rows (compile time, so the accumulators stay in registers), R
// output rows per warp, U = 8/R vector loads per row in flight per lane.
template <int WT, int NR, int R>
__device__ __forceinline__ void gemv(float* dst, i64 ldd, const float* x, i64 ldx,
                                     const uint8_t* w, i64 out, i64 in, float* xs) {
  constexpr int VE = gemv_ve<WT>();
  constexpr int GW = 32 * VE;
  // 8 loads per lane in flight for R = 1, 2; for R = 4 (5..8 rows) one per
  // row, which keeps the variant within 128 registers (2 blocks per SM).
  constexpr int U = R == 4 ? 1 : 8 / R;
  constexpr int KC = (kGemvXS / NR) / GW * GW;  // chunk columns, a multiple of GW
  static_assert(KC >= GW, "x chunk smaller than one warp-wide load");
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const i64 o0 = (i64)blockIdx.x * (kGemvWarps * R) + warp * R;

  // 16-byte loads need 16-byte aligned rows; the quantized layouts always
  // have them (ABI.md requires an aligned base and in % 32 == 0).
  bool fast = true;
  if constexpr (WT == W_F32 || WT == W_F16 || WT == W_BF16) {
    constexpr int eb = WT == W_F32 ? 4 : 2;
    fast = (((uintptr_t)w & 15) == 0) && ((in * eb) % 16 == 0);
  }

  float acc[NR][R];
#pragma unroll
  for (int r = 0; r < NR; r++)
#pragma unroll
    for (int rr = 0; rr < R; rr++) acc[r][rr] = 0.0f;

  for (i64 c0 = 0; c0 < in; c0 += KC) {
    const int kc = (int)min((i64)KC, in - c0);
    uint4 wv[R][U];
    float sc[R][U];
    // Issue the first weight loads before staging x so that their latency
    // overlaps the staging and the barriers.
    if (fast) gemv_load<WT, R, U>(wv, sc, w, o0, out, in, c0, 0, kc, lane);

    __syncthreads();  // every warp is done with the previous chunk
    for (int r = 0; r < NR; r++)
      for (int e = threadIdx.x; e < kc; e += kGemvThreads)
        xs[r * KC + gemv_perm<VE>(e)] = x[r * ldx + c0 + e];
    __syncthreads();

    if (fast) {
      for (int base = 0;;) {
#pragma unroll
        for (int u = 0; u < U; u++) {
          const int g0 = base + u * GW;  // group start within the chunk
          if (g0 + lane * VE < kc) {
            // Quantized rows with few outputs sum q·x per vector and scale
            // once (kPart); otherwise the weights are widened (and scaled)
            // and accumulated straight into acc, which saves NR·R registers.
            constexpr bool kQuant = WT == W_Q8_0 || WT == W_Q4_0;
            constexpr bool kPart = kQuant && NR * R <= 8;
            float part[NR][R];
#pragma unroll
            for (int r = 0; r < NR; r++)
#pragma unroll
              for (int rr = 0; rr < R; rr++) part[r][rr] = kPart ? 0.0f : acc[r][rr];
#pragma unroll
            for (int h = 0; h < VE / 4; h++) {
              float f[R][4];
#pragma unroll
              for (int rr = 0; rr < R; rr++) {
                gemv_w4<WT>(wv[rr][u], h, f[rr]);
                if constexpr (kQuant && !kPart) {
#pragma unroll
                  for (int j = 0; j < 4; j++) f[rr][j] *= sc[rr][u];
                }
              }
#pragma unroll
              for (int r = 0; r < NR; r++) {
                const float4 xv = *(const float4*)(xs + r * KC + g0 + h * 128 + lane * 4);
#pragma unroll
                for (int rr = 0; rr < R; rr++) {
                  float p = part[r][rr];
                  p = fmaf(xv.x, f[rr][0], p);
                  p = fmaf(xv.y, f[rr][1], p);
                  p = fmaf(xv.z, f[rr][2], p);
                  p = fmaf(xv.w, f[rr][3], p);
                  part[r][rr] = p;
                }
              }
            }
#pragma unroll
            for (int r = 0; r < NR; r++)
#pragma unroll
              for (int rr = 0; rr < R; rr++)
                acc[r][rr] = kPart ? fmaf(sc[rr][u], part[r][rr], acc[r][rr]) : part[r][rr];
          }
        }
        base += U * GW;
        if (base >= kc) break;
        gemv_load<WT, R, U>(wv, sc, w, o0, out, in, c0, base, kc, lane);
      }
    } else if constexpr (WT == W_F32 || WT == W_F16 || WT == W_BF16) {
      // Rows not 16-byte aligned (odd in, or an unaligned slice): scalar
      // loads, still coalesced across the warp.
      for (int e = lane; e < kc; e += 32) {
        const int s = gemv_perm<VE>(e);
#pragma unroll
        for (int rr = 0; rr < R; rr++) {
          const i64 o = o0 + rr;
          if (o < out) {
            const float wf = gemv_scalar_w<WT>(w, o * in + c0 + e);
#pragma unroll
            for (int r = 0; r < NR; r++) acc[r][rr] = fmaf(xs[r * KC + s], wf, acc[r][rr]);
          }
        }
      }
    }
  }

#pragma unroll
  for (int r = 0; r < NR; r++)
#pragma unroll
    for (int rr = 0; rr < R; rr++) acc[r][rr] = warp_sum(acc[r][rr]);
  if (lane == 0) {
#pragma unroll
    for (int rr = 0; rr < R; rr++) {
      if (o0 + rr < out) {
#pragma unroll
        for (int r = 0; r < NR; r++) dst[r * ldd + o0 + rr] = acc[r][rr];
      }
    }
  }
}

}  // namespace lmm

// The exported GEMV kernels: _1 for rows == 1, _4 for 2..4 rows, _8 for
// 5..8 rows (ABI.md 2.2); rows outside the variant's range write nothing.
//
// Every exported kernel below has its body on lines of its own: ptxas 11.8
// (sm_90 with -lineinfo) crashes when a kernel's first code is a call
// inlined from the kernel's own source line, which a one-line macro kernel
// produces. The macros therefore give only the signature.

namespace lmm {
template <int WT>
__device__ __forceinline__ void gemv_1(float* dst, i64 ldd, const float* x, i64 ldx,
                                       const void* w, i64 rows, i64 out, i64 in) {
  __shared__ __align__(16) float xs[kGemvXS];
  const uint8_t* wb = (const uint8_t*)w;
  if (rows == 1) gemv<WT, 1, 1>(dst, ldd, x, ldx, wb, out, in, xs);
}
template <int WT>
__device__ __forceinline__ void gemv_4(float* dst, i64 ldd, const float* x, i64 ldx,
                                       const void* w, i64 rows, i64 out, i64 in) {
  __shared__ __align__(16) float xs[kGemvXS];
  const uint8_t* wb = (const uint8_t*)w;
  if (rows == 2) gemv<WT, 2, 2>(dst, ldd, x, ldx, wb, out, in, xs);
  if (rows == 3) gemv<WT, 3, 2>(dst, ldd, x, ldx, wb, out, in, xs);
  if (rows == 4) gemv<WT, 4, 2>(dst, ldd, x, ldx, wb, out, in, xs);
}
template <int WT>
__device__ __forceinline__ void gemv_8(float* dst, i64 ldd, const float* x, i64 ldx,
                                       const void* w, i64 rows, i64 out, i64 in) {
  __shared__ __align__(16) float xs[kGemvXS];
  const uint8_t* wb = (const uint8_t*)w;
  if (rows == 5) gemv<WT, 5, 4>(dst, ldd, x, ldx, wb, out, in, xs);
  if (rows == 6) gemv<WT, 6, 4>(dst, ldd, x, ldx, wb, out, in, xs);
  if (rows == 7) gemv<WT, 7, 4>(dst, ldd, x, ldx, wb, out, in, xs);
  if (rows == 8) gemv<WT, 8, 4>(dst, ldd, x, ldx, wb, out, in, xs);
}
}  // namespace lmm

#define LOOM_GEMV_SIG(name, MINB)                                                           \
  extern "C" __global__ void __launch_bounds__(lmm::kGemvThreads, MINB)                     \
      name(float* dst, i64 ldd, const float* x, i64 ldx, const void* w, i64 rows, i64 out, \
           i64 in)

LOOM_GEMV_SIG(loom_gemv_f32_1, 4) {
  lmm::gemv_1<lmm::W_F32>(dst, ldd, x, ldx, w, rows, out, in);
}

LOOM_GEMV_SIG(loom_gemv_f32_4, 2) {
  lmm::gemv_4<lmm::W_F32>(dst, ldd, x, ldx, w, rows, out, in);
}

LOOM_GEMV_SIG(loom_gemv_f32_8, 2) {
  lmm::gemv_8<lmm::W_F32>(dst, ldd, x, ldx, w, rows, out, in);
}

LOOM_GEMV_SIG(loom_gemv_f16_1, 4) {
  lmm::gemv_1<lmm::W_F16>(dst, ldd, x, ldx, w, rows, out, in);
}

LOOM_GEMV_SIG(loom_gemv_f16_4, 2) {
  lmm::gemv_4<lmm::W_F16>(dst, ldd, x, ldx, w, rows, out, in);
}

LOOM_GEMV_SIG(loom_gemv_f16_8, 2) {
  lmm::gemv_8<lmm::W_F16>(dst, ldd, x, ldx, w, rows, out, in);
}

LOOM_GEMV_SIG(loom_gemv_bf16_1, 4) {
  lmm::gemv_1<lmm::W_BF16>(dst, ldd, x, ldx, w, rows, out, in);
}

LOOM_GEMV_SIG(loom_gemv_bf16_4, 2) {
  lmm::gemv_4<lmm::W_BF16>(dst, ldd, x, ldx, w, rows, out, in);
}

LOOM_GEMV_SIG(loom_gemv_bf16_8, 2) {
  lmm::gemv_8<lmm::W_BF16>(dst, ldd, x, ldx, w, rows, out, in);
}

LOOM_GEMV_SIG(loom_gemv_q8_0_1, 3) {
  lmm::gemv_1<lmm::W_Q8_0>(dst, ldd, x, ldx, w, rows, out, in);
}

LOOM_GEMV_SIG(loom_gemv_q8_0_4, 2) {
  lmm::gemv_4<lmm::W_Q8_0>(dst, ldd, x, ldx, w, rows, out, in);
}

LOOM_GEMV_SIG(loom_gemv_q8_0_8, 2) {
  lmm::gemv_8<lmm::W_Q8_0>(dst, ldd, x, ldx, w, rows, out, in);
}

LOOM_GEMV_SIG(loom_gemv_q4_0_1, 3) {
  lmm::gemv_1<lmm::W_Q4_0>(dst, ldd, x, ldx, w, rows, out, in);
}

LOOM_GEMV_SIG(loom_gemv_q4_0_4, 2) {
  lmm::gemv_4<lmm::W_Q4_0>(dst, ldd, x, ldx, w, rows, out, in);
}

LOOM_GEMV_SIG(loom_gemv_q4_0_8, 2) {
  lmm::gemv_8<lmm::W_Q4_0>(dst, ldd, x, ldx, w, rows, out, in);
}

// ---------------------------------------------------------------------------
// Tensor-core GEMM: C[rows × out] = A[rows × k] · B[out × k]ᵀ, A and B 16-bit
// and K-contiguous, C F32 (ABI.md 2.4).

namespace lmm {

constexpr int kBK = 64;  // k per pipeline stage: 128-byte tile rows

// Tile rows are 64 16-bit values = 8 chunks of 16 bytes; chunk c of row r
// is stored at chunk c ^ (r & 7), so 8 consecutive rows at one logical chunk
// (an ldmatrix 8×8) and the 8 chunks of one row (a cp.async burst) both
// cover all 32 banks.
__device__ __forceinline__ uint32_t tile_off(int row, int chunk) {
  return (uint32_t)(row * 128 + ((chunk ^ (row & 7)) << 4));
}

template <int BM, int BN, int WM, int WN, int STAGES>
struct GemmCfg {
  static constexpr int kThreads = WM * WN * 32;
  static constexpr int kWarpM = BM / WM;  // warp tile rows (A side)
  static constexpr int kWarpN = BN / WN;  // warp tile cols (B side)
  static constexpr int kMI = kWarpM / 16;
  static constexpr int kNI = kWarpN / 8;
  static constexpr int kStageBytes = (BM + BN) * kBK * 2;
  static constexpr int kSmem = STAGES * kStageBytes;
  static_assert(kWarpM % 16 == 0 && kWarpN % 16 == 0, "warp tile");
  static_assert((BM * 8) % kThreads == 0 && (BN * 8) % kThreads == 0, "loader");
};

// gemm_load_tile issues the cp.async copies of k-tile kt (A: BM rows, B: BN
// rows, 64 columns each) into one stage. Rows past the matrix and chunks
// past k are zero-filled (k % 8 == 0, so a chunk is all in or all out).
template <class C, int BM, int BN>
__device__ __forceinline__ void gemm_load_tile(uint32_t sA, uint32_t sB, const uint16_t* a,
                                               i64 lda, const uint16_t* b, i64 ldb, i64 m0,
                                               i64 n0, i64 rows, i64 out, i64 k, i64 kt) {
  const int tid = threadIdx.x;
  const i64 k0 = kt * kBK;
#pragma unroll
  for (int i = 0; i < BM * 8 / C::kThreads; i++) {
    const int id = tid + i * C::kThreads, r = id >> 3, c = id & 7;
    const i64 gr = m0 + r, gk = k0 + c * 8;
    const bool ok = gr < rows && gk < k;
    cp_async16(sA + tile_off(r, c), ok ? (const void*)(a + gr * lda + gk) : (const void*)a,
               ok ? 16 : 0);
  }
#pragma unroll
  for (int i = 0; i < BN * 8 / C::kThreads; i++) {
    const int id = tid + i * C::kThreads, r = id >> 3, c = id & 7;
    const i64 gr = n0 + r, gk = k0 + c * 8;
    const bool ok = gr < out && gk < k;
    cp_async16(sB + tile_off(r, c), ok ? (const void*)(b + gr * ldb + gk) : (const void*)b,
               ok ? 16 : 0);
  }
}

template <bool BF16, int BM, int BN, int WM, int WN, int STAGES>
__device__ __forceinline__ void gemm_tc(float* dst, i64 ldd, const uint16_t* a, i64 lda,
                                        const uint16_t* b, i64 ldb, i64 rows, i64 out, i64 k,
                                        float* ws) {
  using C = GemmCfg<BM, BN, WM, WN, STAGES>;
  extern __shared__ __align__(128) uint8_t gemm_smem[];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp / WN, wn = warp % WN;
  const i64 m0 = (i64)blockIdx.x * BM, n0 = (i64)blockIdx.y * BN;

  // This CTA's share of the k-tiles (split-K over gridDim.z).
  const i64 KT = (k + kBK - 1) / kBK;
  const i64 kt0 = KT * blockIdx.z / gridDim.z, kt1 = KT * (blockIdx.z + 1) / gridDim.z;
  const int nkt = (int)(kt1 - kt0);

  const uint32_t s0 = smem_u32(gemm_smem);
  auto sA = [&](int st) { return s0 + st * C::kStageBytes; };
  auto sB = [&](int st) { return s0 + st * C::kStageBytes + BM * 128; };

  float acc[C::kMI][C::kNI][4];
#pragma unroll
  for (int i = 0; i < C::kMI; i++)
#pragma unroll
    for (int j = 0; j < C::kNI; j++)
#pragma unroll
      for (int e = 0; e < 4; e++) acc[i][j][e] = 0.0f;

  // Prologue: STAGES-1 tiles in flight (empty groups keep the count uniform).
#pragma unroll
  for (int s = 0; s < STAGES - 1; s++) {
    if (s < nkt)
      gemm_load_tile<C, BM, BN>(sA(s), sB(s), a, lda, b, ldb, m0, n0, rows, out, k, kt0 + s);
    cp_async_commit();
  }

  // ldmatrix lane addressing (see mma_common.cuh): A x4 = rows +0..15 at
  // chunks kc, kc+1; B x4 = rows +0..7 / +8..15 at chunks kc, kc+1.
  const int a_row = wm * C::kWarpM + (lane & 15), a_chk = lane >> 4;
  const int b_row = wn * C::kWarpN + (lane & 7) + ((lane >> 4) << 3), b_chk = (lane >> 3) & 1;

  for (int t = 0; t < nkt; t++) {
    cp_async_wait<STAGES - 2>();  // tile t has landed (this thread's copies)
    __syncthreads();              // ... everyone's; and stage (t-1)%S is free
    {
      const int tn = t + STAGES - 1;
      if (tn < nkt) {
        const int st = tn % STAGES;
        gemm_load_tile<C, BM, BN>(sA(st), sB(st), a, lda, b, ldb, m0, n0, rows, out, k,
                                  kt0 + tn);
      }
      cp_async_commit();
    }
    const int st = t % STAGES;
    const uint32_t tA = sA(st), tB = sB(st);
#pragma unroll
    for (int ks = 0; ks < kBK / 16; ks++) {
      uint32_t af[C::kMI][4], bfr[C::kNI][2];
#pragma unroll
      for (int i = 0; i < C::kMI; i++)
        ldmatrix_x4(af[i], tA + tile_off(a_row + i * 16, ks * 2 + a_chk));
#pragma unroll
      for (int j = 0; j < C::kNI / 2; j++) {
        uint32_t r4[4];
        ldmatrix_x4(r4, tB + tile_off(b_row + j * 16, ks * 2 + b_chk));
        bfr[2 * j][0] = r4[0];
        bfr[2 * j][1] = r4[1];
        bfr[2 * j + 1][0] = r4[2];
        bfr[2 * j + 1][1] = r4[3];
      }
#pragma unroll
      for (int i = 0; i < C::kMI; i++)
#pragma unroll
        for (int j = 0; j < C::kNI; j++) mma_16816<BF16>(acc[i][j], af[i], bfr[j][0], bfr[j][1]);
    }
  }
  cp_async_wait<0>();

  // Epilogue: straight from the accumulators (c0,c1 at row g, c2,c3 at row
  // g+8, columns 2t, 2t+1 of each n8 tile).
  float* C0 = dst;
  i64 ldc = ldd;
  if (gridDim.z > 1) {
    C0 = ws + (i64)blockIdx.z * rows * out;
    ldc = out;
  }
  const bool pair = ((ldc & 1) == 0) && (((uintptr_t)C0 & 7) == 0);
#pragma unroll
  for (int i = 0; i < C::kMI; i++) {
#pragma unroll
    for (int h = 0; h < 2; h++) {
      const i64 r = m0 + wm * C::kWarpM + i * 16 + (lane >> 2) + h * 8;
      if (r >= rows) continue;
      float* crow = C0 + r * ldc;
#pragma unroll
      for (int j = 0; j < C::kNI; j++) {
        const i64 c = n0 + wn * C::kWarpN + j * 8 + (lane & 3) * 2;
        const float v0 = acc[i][j][2 * h], v1 = acc[i][j][2 * h + 1];
        if (pair && c + 1 < out) {
          *(float2*)(crow + c) = make_float2(v0, v1);
        } else {
          if (c < out) crow[c] = v0;
          if (c + 1 < out) crow[c + 1] = v1;
        }
      }
    }
  }
}

}  // namespace lmm

#define LOOM_GEMM_SIG(name, THREADS, MINB)                                                     \
  extern "C" __global__ void __launch_bounds__(THREADS, MINB)                                  \
      name(float* dst, i64 ldd, const uint16_t* a, i64 lda, const uint16_t* b, i64 ldb, i64 rows, \
           i64 out, i64 k, float* ws)

LOOM_GEMM_SIG(loom_gemm_bf16_128x256, 256, 1) {
  lmm::gemm_tc<true, 128, 256, 2, 4, 3>(dst, ldd, a, lda, b, ldb, rows, out, k, ws);
}

LOOM_GEMM_SIG(loom_gemm_f16_128x256, 256, 1) {
  lmm::gemm_tc<false, 128, 256, 2, 4, 3>(dst, ldd, a, lda, b, ldb, rows, out, k, ws);
}

LOOM_GEMM_SIG(loom_gemm_bf16_64x64, 128, 3) {
  lmm::gemm_tc<true, 64, 64, 2, 2, 4>(dst, ldd, a, lda, b, ldb, rows, out, k, ws);
}

LOOM_GEMM_SIG(loom_gemm_f16_64x64, 128, 3) {
  lmm::gemm_tc<false, 64, 64, 2, 2, 4>(dst, ldd, a, lda, b, ldb, rows, out, k, ws);
}

// loom_gemm_splitk_reduce: dst[r][o] = Σ_z ws[(z·rows + r)·out + o] (ABI.md 2.5).
extern "C" __global__ void __launch_bounds__(256)
    loom_gemm_splitk_reduce(float* dst, i64 ldd, const float* ws, i64 rows, i64 out, i64 ksplit) {
  const i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= rows * out) return;
  const i64 r = i / out, o = i % out;
  float s = 0.0f;
  for (i64 z = 0; z < ksplit; z++) s += ws[z * rows * out + i];
  dst[r * ldd + o] = s;
}

// ---------------------------------------------------------------------------
// Conversions into the tensor-core workspaces (ABI.md 2.6). Each thread
// writes 4 consecutive 16-bit columns (8 bytes); kp % 8 == 0 and the rows are
// 16-byte aligned, so the stores are aligned.

namespace lmm {
template <bool BF16>
__device__ __forceinline__ uint16_t to16(float f) {
  if constexpr (BF16) return f32_to_bf16(f);
  return f32_to_f16(f);
}

template <bool BF16>
__device__ __forceinline__ void mm_x(uint16_t* xh, i64 ldxh, const float* x, i64 ldx, i64 in,
                                     i64 kp) {
  const i64 r = blockIdx.x;
  const i64 c = ((i64)blockIdx.y * blockDim.x + threadIdx.x) * 4;
  if (c >= kp) return;
  const float* xr = x + r * ldx;
  uint16_t v[4];
#pragma unroll
  for (int j = 0; j < 4; j++) v[j] = c + j < in ? to16<BF16>(xr[c + j]) : (uint16_t)0;
  *(uint2*)(xh + r * ldxh + c) =
      make_uint2(v[0] | ((uint32_t)v[1] << 16), v[2] | ((uint32_t)v[3] << 16));
}
}  // namespace lmm

extern "C" __global__ void __launch_bounds__(256)
    loom_mm_x_bf16(uint16_t* xh, i64 ldxh, const float* x, i64 ldx, i64 rows, i64 in, i64 kp) {
  if ((i64)blockIdx.x < rows) lmm::mm_x<true>(xh, ldxh, x, ldx, in, kp);
}
extern "C" __global__ void __launch_bounds__(256)
    loom_mm_x_f16(uint16_t* xh, i64 ldxh, const float* x, i64 ldx, i64 rows, i64 in, i64 kp) {
  if ((i64)blockIdx.x < rows) lmm::mm_x<false>(xh, ldxh, x, ldx, in, kp);
}

// loom_mm_w_half: weight rows [o0, o0+cnt) to F16 (F16, Q8_0, Q4_0) or BF16
// (BF16), zero-padded to kp columns. dtype is loom's DType value.
extern "C" __global__ void __launch_bounds__(256)
    loom_mm_w_half(uint16_t* wh, i64 ldwh, const void* w, i64 dtype, i64 out, i64 in, i64 kp,
                   i64 o0, i64 cnt) {
  const i64 i = blockIdx.x;
  const i64 c = ((i64)blockIdx.y * blockDim.x + threadIdx.x) * 4;
  if (i >= cnt || c >= kp) return;
  const i64 o = o0 + i;
  const uint8_t* wb = (const uint8_t*)w;
  uint16_t v[4];
#pragma unroll
  for (int j = 0; j < 4; j++) {
    const i64 cc = c + j;
    uint16_t h = 0;
    if (cc < in) {
      const i64 idx = o * in + cc;
      switch (dtype) {
        case lmm::W_F16:
        case lmm::W_BF16:
          h = ((const uint16_t*)wb)[idx];  // copied bit for bit
          break;
        case lmm::W_Q8_0: {
          const float d = f16_to_f32(((const uint16_t*)(wb + out * in))[idx / 32]);
          h = f32_to_f16(d * (float)(int8_t)wb[idx]);
          break;
        }
        case lmm::W_Q4_0: {
          const float d = f16_to_f32(((const uint16_t*)(wb + out * in / 2))[idx / 32]);
          const int e = (int)(idx & 31);  // element within its block
          const uint8_t p = wb[(idx / 32) * 16 + (e & 15)];
          const int q = e < 16 ? (p & 15) : (p >> 4);
          h = f32_to_f16(d * (float)(q - 8));
          break;
        }
      }
    }
    v[j] = h;
  }
  *(uint2*)(wh + i * ldwh + c) =
      make_uint2(v[0] | ((uint32_t)v[1] << 16), v[2] | ((uint32_t)v[3] << 16));
}

// ---------------------------------------------------------------------------
// SIMT F32 GEMM for F32 weights (ABI.md 2.3): 64×64 tile, k step 16, 256
// threads with 4×4 outputs each. Tiles go through registers into shared
// memory stored k-major (As[k][m], Bs[k][o]) so the inner loop reads float4s.

namespace lmm {
constexpr int kSgM = 64, kSgN = 64, kSgK = 16;
}

extern "C" __global__ void __launch_bounds__(256)
    loom_sgemm_f32(float* dst, i64 ldd, const float* x, i64 ldx, const float* w, i64 rows,
                   i64 out, i64 in) {
  using namespace lmm;
  __shared__ __align__(16) float As[kSgK][kSgM + 4];
  __shared__ __align__(16) float Bs[kSgK][kSgN + 4];
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const i64 m0 = (i64)blockIdx.x * kSgM, n0 = (i64)blockIdx.y * kSgN;
  // Loader: element i of 4 is (row lr + 16i, column lk) of the 64×16 tile.
  const int lk = tid & 15, lr = tid >> 4;
  float ra[4], rb[4];
  auto load = [&](i64 k0) {
    const i64 kk = k0 + lk;
#pragma unroll
    for (int i = 0; i < 4; i++) {
      const i64 m = m0 + lr + 16 * i, o = n0 + lr + 16 * i;
      ra[i] = (m < rows && kk < in) ? x[m * ldx + kk] : 0.0f;
      rb[i] = (o < out && kk < in) ? __ldg(w + o * in + kk) : 0.0f;
    }
  };
  float acc[4][4] = {};
  load(0);
  for (i64 k0 = 0; k0 < in; k0 += kSgK) {
    __syncthreads();  // the previous tile is no longer read
#pragma unroll
    for (int i = 0; i < 4; i++) {
      As[lk][lr + 16 * i] = ra[i];
      Bs[lk][lr + 16 * i] = rb[i];
    }
    __syncthreads();
    if (k0 + kSgK < in) load(k0 + kSgK);  // in flight during the math
#pragma unroll
    for (int kk = 0; kk < kSgK; kk++) {
      const float4 av = *(const float4*)&As[kk][ty * 4];
      const float4 bv = *(const float4*)&Bs[kk][tx * 4];
      const float a4[4] = {av.x, av.y, av.z, av.w}, b4[4] = {bv.x, bv.y, bv.z, bv.w};
#pragma unroll
      for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] = fmaf(a4[i], b4[j], acc[i][j]);
    }
  }
#pragma unroll
  for (int i = 0; i < 4; i++) {
    const i64 m = m0 + ty * 4 + i;
    if (m >= rows) continue;
#pragma unroll
    for (int j = 0; j < 4; j++) {
      const i64 o = n0 + tx * 4 + j;
      if (o < out) dst[m * ldd + o] = acc[i][j];
    }
  }
}
