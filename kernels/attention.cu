// attention.cu: Backend.Attention against the paged KV cache (contract:
// runtime/backend/backend.go; launch ABI and cache layout: kernels/ABI.md).
//
// Design
//
// * loom_kv_store_<c> writes every row's k and v into its (block, slot) of
//   the cache, rounding to the cache type (nearest even). It runs as its
//   own launch before the attention kernels, which gives the contract's
//   "every store, then every read" order for free.
//
// * loom_attn_decode_<c>_g<GT> is flash-decoding: one block per (split of
//   the row's positions, KV head [and group of GT query heads], row). A
//   block reads each K and V row of its range once for all the query heads
//   that share it (GQA), computes scores for a tile of T positions into
//   shared memory, updates a running max/sum (online softmax) and
//   accumulates the weighted V in registers; the partial (max, sum,
//   unnormalised output) goes to a workspace that loom_attn_combine merges
//   (or, with one split, straight to out). Thread mapping: LP = D/EPL lanes
//   share a K/V row, each holding EPL = 16/eb consecutive elements (one
//   16-byte load), so a warp reads 32/LP rows per instruction, coalesced;
//   each thread has 8 rows in flight for K and for V. Scores are reduced
//   across the LP lanes with shuffles. The split length follows pos (L =
//   max(ceil((pos+1)/nsplit), 64)), so nsplit depends only on shapes and a
//   captured graph stays valid for any length, while a short history uses
//   only ceil((pos+1)/L) splits (nsplit comes from the block table's
//   capacity, which in a decode step is the whole context): fewer blocks
//   with work, fewer partials to merge, and with a single split the block
//   writes out itself and the combine skips the row. All arithmetic is F32 with accurate
//   expf: on any cache type the result matches the reference to ~1e-6. A
//   scalar path (LP = 32, lane-strided elements) covers head sizes whose
//   rows are not a power-of-two number of 16-byte vectors (48, 80, 96, 8 for
//   F32, ...), up to 256. Expected: K/V streaming near copy bandwidth once
//   n·hkv·nsplit fills the SMs; the decode step is dominated by the GEMVs.
//
// * loom_attn_prefill_<c>_d<D> is causal flash attention on tensor cores
//   (FlashAttention-2 layout): a block owns 64 query rows of one head, 4
//   warps × 16 rows; Q is converted to the cache's 16-bit type once and kept
//   as mma A fragments in registers; K/V tiles of 64 positions stream
//   through a 2-stage cp.async pipeline into swizzled shared memory; S =
//   Q·Kᵀ and O += P·V are mma.m16n8k16 with F32 accumulators, P goes from
//   the S accumulators to A fragments without touching shared memory
//   (ldmatrix.trans supplies V as the B operand). The online softmax runs
//   in F32 on the accumulators (exp2 of pre-scaled scores). Rows of one
//   tile may belong to different sequences: the block loops over the
//   distinct sequences of its tile and masks by (seq, pos). Heavy (late)
//   tiles are scheduled first. q and P are rounded to 16 bits: ~1e-3
//   relative error, stated in ABI.md.
#include "common.cuh"
#include "mma_common.cuh"

namespace lmm {

enum CType { C_F32 = 0, C_F16 = 1, C_BF16 = 2 };

template <int CT>
__host__ __device__ constexpr int cache_eb() {
  return CT == C_F32 ? 4 : 2;
}

// cache_ld reads element idx of a cache plane as F32.
template <int CT>
__device__ __forceinline__ float cache_ld(const void* base, i64 idx) {
  if constexpr (CT == C_F32) return ((const float*)base)[idx];
  if constexpr (CT == C_F16) return f16_to_f32(((const uint16_t*)base)[idx]);
  return bf16_to_f32(((const uint16_t*)base)[idx]);
}

// cache_st writes element idx, rounded to the cache type.
template <int CT>
__device__ __forceinline__ void cache_st(void* base, i64 idx, float v) {
  if constexpr (CT == C_F32)
    ((float*)base)[idx] = v;
  else if constexpr (CT == C_F16)
    ((uint16_t*)base)[idx] = f32_to_f16(v);
  else
    ((uint16_t*)base)[idx] = f32_to_bf16(v);
}

// vec_f32 widens one 16-byte vector of the cache (4 or 8 elements).
template <int CT>
__device__ __forceinline__ void vec_f32(const uint4& v, float* f) {
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
  if constexpr (CT == C_F32) {
#pragma unroll
    for (int i = 0; i < 4; i++) f[i] = __uint_as_float(w[i]);
  } else if constexpr (CT == C_BF16) {
#pragma unroll
    for (int i = 0; i < 4; i++) {
      f[2 * i] = bf16lo(w[i]);
      f[2 * i + 1] = bf16hi(w[i]);
    }
  } else {
#pragma unroll
    for (int i = 0; i < 4; i++) {
      const float2 t = f16x2(w[i]);
      f[2 * i] = t.x;
      f[2 * i + 1] = t.y;
    }
  }
}

// row_ok checks a row's sequence and position against the block table.
__device__ __forceinline__ bool row_ok(i64 s, i64 p, i64 n_seqs, i64 max_blocks, i64 bs) {
  return s >= 0 && s < n_seqs && p >= 0 && p < max_blocks * bs;
}

// ---------------------------------------------------------------------------
// KV store

template <int CT>
__device__ __forceinline__ void kv_store(void* kc, void* vc, const float* k, i64 ldk,
                                         const float* v, i64 ldv, const int* pos, i64 ldpos,
                                         const int* seq, i64 ldseq, const int* blocks,
                                         i64 ldblocks, i64 rows, i64 hkv, i64 d, i64 bs,
                                         i64 max_blocks, i64 pool_blocks, i64 n_seqs) {
  const i64 r = blockIdx.x;
  if (r >= rows) return;
  const i64 p = pos[r * ldpos], s = seq[r * ldseq];
  if (!row_ok(s, p, n_seqs, max_blocks, bs)) {
    if (threadIdx.x == 0) loom_fail(LOOM_ERR_POSITION);
    return;
  }
  const i64 blk = blocks[s * ldblocks + p / bs];
  if (blk < 0 || blk >= pool_blocks) {
    if (threadIdx.x == 0) loom_fail(LOOM_ERR_POSITION);
    return;
  }
  const i64 slot = p % bs, kvdim = hkv * d;
  for (i64 e = threadIdx.x; e < kvdim; e += blockDim.x) {
    const i64 h = e / d, dd = e - h * d;
    const i64 idx = ((blk * hkv + h) * bs + slot) * d + dd;
    cache_st<CT>(kc, idx, k[r * ldk + e]);
    cache_st<CT>(vc, idx, v[r * ldv + e]);
  }
}

// ---------------------------------------------------------------------------
// Decode (flash-decoding)

constexpr int kDecThreads = 128;
constexpr int kDecSteps = 8;   // K/V rows in flight per thread
constexpr int kDecTMax = 256;  // positions per tile, at most
constexpr int kDecMaxD = 256;
constexpr int kDecNE = 8;  // elements per thread, at most (both paths)
constexpr int kDecSplitMin = 64;  // positions per split, at least (one bf16/f16 D=128 tile)

// split_len is the number of positions per split of a row whose history
// has len positions, on a grid of nsplit splits: ceil(len/nsplit), but at
// least kDecSplitMin, so a short history takes ceil(len/L) <= nsplit
// splits (the others exit at once) and the combine has fewer to merge.
// loom_attn_decode and loom_attn_combine must agree on it (ABI.md 4.2).
__host__ __device__ __forceinline__ i64 split_len(i64 len, i64 nsplit) {
  const i64 l = (len + nsplit - 1) / nsplit;
  return l > kDecSplitMin ? l : kDecSplitMin;
}

// decode_vec reports whether head size d takes the 16-byte path: d is a
// power-of-two number (<= 32) of 16-byte vectors.
template <int CT>
__device__ __forceinline__ bool decode_vec(i64 d) {
  constexpr int EPL = 16 / cache_eb<CT>();
  const i64 lp = d / EPL;
  return d % EPL == 0 && lp >= 1 && lp <= 32 && (lp & (lp - 1)) == 0;
}

// DecSmem is the decode kernel's shared memory (declared once per kernel,
// shared by its two paths).
template <int GT>
struct DecSmem {
  float sc[GT][kDecTMax];        // scores, then softmax weights
  float red[GT * 4 * kDecMaxD];  // per position group partial outputs
  float mrun[GT], lrun[GT], corr[GT];
};

template <int CT, int GT, bool VEC>
__device__ __forceinline__ void attn_decode(DecSmem<GT>& sm, float* out, i64 ldo, const float* q, i64 ldq,
                                            const void* kc, const void* vc, const int* pos,
                                            i64 ldpos, const int* seq, i64 ldseq,
                                            const int* blocks, i64 ldblocks, i64 rows, i64 hq,
                                            i64 hkv, i64 d, i64 bs_, i64 max_blocks,
                                            i64 pool_blocks, i64 n_seqs, float scale,
                                            float* ws_o, float* ws_ml) {
  constexpr int EB = cache_eb<CT>();
  constexpr int EPL = 16 / EB;
  constexpr int NE = VEC ? EPL : kDecNE;  // elements per thread, at most
  // V rows are prefetched together with K when the registers allow it.
  constexpr bool kPreV = VEC && GT * EPL <= 32;
  auto& sc = sm.sc;
  auto& red = sm.red;
  auto& mrun = sm.mrun;
  auto& lrun = sm.lrun;
  auto& corr = sm.corr;

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int D = (int)d, bs = (int)bs_;
  const i64 G = hq / hkv, hsub = (G + GT - 1) / GT;
  const i64 kvh = blockIdx.y / hsub, hs = blockIdx.y % hsub;
  const i64 h0 = kvh * G + hs * GT;
  const int ng = (int)min((i64)GT, G - hs * GT);
  const int nsplit = gridDim.x, sp = blockIdx.x;

  // Thread mapping (see the file comment). VEC: the caller checked that
  // D/EPL is a power of two <= 32.
  const int LP = VEC ? D / EPL : 32;
  const int RPS = kDecThreads / LP;
  const int T = min(kDecSteps * RPS, kDecTMax);
  const int steps = T / RPS;
  const int dl = tid % LP, pg = tid / LP;
  auto elem = [&](int i) { return VEC ? dl * EPL + i : dl + 32 * i; };
  const int ne = VEC ? EPL : (D + 31) / 32;

  const char* kcb = (const char*)kc;
  const char* vcb = (const char*)vc;

  for (i64 r = blockIdx.z; r < rows; r += gridDim.z) {
    const i64 p = pos[r * ldpos], s = seq[r * ldseq];
    if (!row_ok(s, p, n_seqs, max_blocks, bs) || D > kDecMaxD) {
      if (sp == 0 && blockIdx.y == 0 && tid == 0) loom_fail(LOOM_ERR_POSITION);
      continue;
    }
    const int len = (int)p + 1;
    const int L = (int)split_len(len, nsplit);
    const int j0 = sp * L;
    if (j0 >= len) continue;
    // One split with a non-empty range (a short history, or nsplit == 1):
    // it writes normalised outputs to out and loom_attn_combine skips the
    // row. Otherwise the partials go to the workspace.
    const bool direct = len <= L;
    const int j1 = min(j0 + L, len);
    const int* btab = blocks + s * ldblocks;

    // Element index of position j's row of this KV head, or -1 when its
    // block id is bad.
    auto row_idx = [&](int j) -> i64 {
      const i64 blk = btab[j / bs];
      if (blk < 0 || blk >= pool_blocks) {
        loom_fail(LOOM_ERR_POSITION);
        return -1;
      }
      return ((blk * hkv + kvh) * bs + (j % bs)) * (i64)D;
    };

    float qv[GT][NE], acc[GT][NE];
#pragma unroll
    for (int g = 0; g < GT; g++)
#pragma unroll
      for (int i = 0; i < NE; i++) {
        const int e = elem(i);
        qv[g][i] = (g < ng && i < ne && e < D) ? q[r * ldq + (h0 + g) * D + e] : 0.0f;
        acc[g][i] = 0.0f;
      }
    if (tid < GT) {
      mrun[tid] = -CUDART_INF_F;
      lrun[tid] = 0.0f;
    }

    for (int t0 = j0; t0 < j1; t0 += T) {
      __syncthreads();  // last tile's readers of sc/corr are done; init visible

      // Phase 1: scores of this thread's rows t0 + pg + st·RPS.
      uint4 kraw[VEC ? kDecSteps : 1], vraw[kPreV ? kDecSteps : 1];
      uint32_t okmask = 0;
      if constexpr (VEC) {
#pragma unroll
        for (int st = 0; st < kDecSteps; st++) {
          kraw[st] = make_uint4(0, 0, 0, 0);
          if constexpr (kPreV) vraw[st] = make_uint4(0, 0, 0, 0);
          const int j = t0 + pg + st * RPS;
          if (st < steps && j < j1) {
            const i64 ri = row_idx(j);
            if (ri >= 0) {
              okmask |= 1u << st;
              kraw[st] = *(const uint4*)(kcb + (ri + dl * EPL) * EB);
              if constexpr (kPreV) vraw[st] = *(const uint4*)(vcb + (ri + dl * EPL) * EB);
            }
          }
        }
      }
#pragma unroll
      for (int st = 0; st < kDecSteps; st++) {
        if (st >= steps) break;
        float kf[NE];
        if constexpr (VEC) {
          vec_f32<CT>(kraw[st], kf);
        } else {
          const int j = t0 + pg + st * RPS;
          i64 ri = -1;
          if (j < j1) ri = row_idx(j);
          if (ri >= 0) okmask |= 1u << st;
#pragma unroll
          for (int i = 0; i < NE; i++) {
            const int e = elem(i);
            kf[i] = (ri >= 0 && i < ne && e < D) ? cache_ld<CT>(kc, ri + e) : 0.0f;
          }
        }
        const bool ok = (okmask >> st) & 1u;
#pragma unroll
        for (int g = 0; g < GT; g++) {
          if (g < ng) {
            float dot = 0.0f;
#pragma unroll
            for (int i = 0; i < NE; i++) dot = fmaf(qv[g][i], kf[i], dot);
            for (int off = LP >> 1; off > 0; off >>= 1)
              dot += __shfl_xor_sync(0xffffffffu, dot, off);
            if (dl == 0) sc[g][pg + st * RPS] = ok ? dot * scale : -CUDART_INF_F;
          }
        }
      }
      __syncthreads();

      // Phase 2: online softmax update, one warp per head.
      for (int g = warp; g < ng; g += kDecThreads / 32) {
        float m = -CUDART_INF_F;
        for (int jt = lane; jt < T; jt += 32) m = fmaxf(m, sc[g][jt]);
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
        const float mold = mrun[g], mnew = fmaxf(mold, m);  // every lane reads mrun[g]
        const float muse = mnew == -CUDART_INF_F ? 0.0f : mnew;
        float sum = 0.0f;
        for (int jt = lane; jt < T; jt += 32) {
          const float e = expf(sc[g][jt] - muse);
          sc[g][jt] = e;
          sum += e;
        }
        sum = warp_sum(sum);
        // Lane 0 overwrites mrun[g] (and lrun, corr) that every lane read
        // above: order those reads before the write (racecheck's intra-warp
        // WAR hazard; shuffles converge the warp but do not order memory).
        __syncwarp();
        if (lane == 0) {
          const float c = expf(mold - muse);
          corr[g] = c;
          lrun[g] = lrun[g] * c + sum;
          mrun[g] = mnew;
        }
      }
      __syncthreads();

      // Phase 3: acc = acc·corr + Σ p·V.
#pragma unroll
      for (int g = 0; g < GT; g++) {
        if (g < ng) {
          const float c = corr[g];
#pragma unroll
          for (int i = 0; i < NE; i++) acc[g][i] *= c;
        }
      }
#pragma unroll
      for (int st = 0; st < kDecSteps; st++) {
        if (st >= steps) break;
        const bool ok = (okmask >> st) & 1u;
        const int j = t0 + pg + st * RPS;
        float vf[NE];
        if constexpr (VEC) {
          uint4 vr = make_uint4(0, 0, 0, 0);
          if constexpr (kPreV) {
            vr = vraw[st];
          } else if (ok) {
            const i64 ri = row_idx(j);
            if (ri >= 0) vr = *(const uint4*)(vcb + (ri + dl * EPL) * EB);
          }
          vec_f32<CT>(vr, vf);
        } else {
          const i64 ri = ok ? row_idx(j) : -1;
#pragma unroll
          for (int i = 0; i < NE; i++) {
            const int e = elem(i);
            vf[i] = (ri >= 0 && i < ne && e < D) ? cache_ld<CT>(vc, ri + e) : 0.0f;
          }
        }
#pragma unroll
        for (int g = 0; g < GT; g++) {
          if (g < ng) {
            const float pw = sc[g][pg + st * RPS];
#pragma unroll
            for (int i = 0; i < NE; i++) acc[g][i] = fmaf(pw, vf[i], acc[g][i]);
          }
        }
      }
    }

    // Sum the RPS position groups' partial outputs: red[pg][g][e].
#pragma unroll
    for (int g = 0; g < GT; g++)
#pragma unroll
      for (int i = 0; i < NE; i++) {
        const int e = elem(i);
        if (g < ng && i < ne && e < D) red[(pg * GT + g) * D + e] = acc[g][i];
      }
    __syncthreads();
    for (int idx = tid; idx < ng * D; idx += kDecThreads) {
      const int g = idx / D, e = idx - g * D;
      float o = 0.0f;
      for (int k2 = 0; k2 < RPS; k2++) o += red[(k2 * GT + g) * D + e];
      const i64 h = h0 + g;
      if (direct)
        out[r * ldo + h * D + e] = o / lrun[g];
      else
        ws_o[((r * hq + h) * nsplit + sp) * D + e] = o;
    }
    if (!direct && tid < ng) {
      float* ml = ws_ml + ((r * hq + h0 + tid) * nsplit + sp) * 2;
      ml[0] = mrun[tid];
      ml[1] = lrun[tid];
    }
    __syncthreads();  // red, mrun, lrun are reused by the next row
  }
}

// ---------------------------------------------------------------------------
// Prefill: causal flash attention on tensor cores.

constexpr int kPfRows = 64;  // query rows per block (4 warps × 16)
constexpr int kPfKeys = 64;  // positions per K/V tile

// pf_off is the byte offset of 16-byte chunk c of row r in a tile whose rows
// are D 16-bit values (D/8 chunks), XOR-swizzled over 8-chunk groups.
template <int D>
__device__ __forceinline__ uint32_t pf_off(int r, int c) {
  return (uint32_t)(r * (D * 2) + ((c ^ (r & 7)) << 4));
}

template <bool BF16, int D>
__device__ __forceinline__ void attn_prefill(float* out, i64 ldo, const float* q, i64 ldq,
                                             const void* kc, const void* vc, const int* pos,
                                             i64 ldpos, const int* seq, i64 ldseq,
                                             const int* blocks, i64 ldblocks, i64 rows, i64 hq,
                                             i64 hkv, i64 bs_, i64 max_blocks, i64 pool_blocks,
                                             i64 n_seqs, float scale) {
  constexpr int CH = D / 8;  // 16-byte chunks per row
  constexpr int TILE = kPfKeys * D * 2;
  extern __shared__ __align__(128) uint8_t pf_smem[];
  __shared__ int t_seq[kPfRows], t_pos[kPfRows], t_first[kPfRows], t_max[kPfRows];

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int bs = (int)bs_;
  const i64 tile = (i64)gridDim.x - 1 - blockIdx.x;  // late (heavy) tiles first
  const i64 r0 = tile * kPfRows;
  const i64 h = blockIdx.y, G = hq / hkv, kvh = h / G;
  const char* kcb = (const char*)kc;
  const char* vcb = (const char*)vc;

  const uint32_t sQ = smem_u32(pf_smem);
  const uint32_t sK0 = sQ + kPfRows * D * 2;
  const uint32_t sV0 = sK0 + 2 * TILE;

  // Row metadata and the Q tile (rounded to 16 bits, swizzled).
  if (tid < kPfRows) {
    const i64 r = r0 + tid;
    int sq = -1, ps = -1;
    if (r < rows) {
      const i64 p = pos[r * ldpos], s = seq[r * ldseq];
      if (row_ok(s, p, n_seqs, max_blocks, bs)) {
        sq = (int)s;
        ps = (int)p;
      } else if (h == 0) {
        loom_fail(LOOM_ERR_POSITION);
      }
    }
    t_seq[tid] = sq;
    t_pos[tid] = ps;
  }
  for (int id = tid; id < kPfRows * CH; id += blockDim.x) {
    const int rr = id / CH, c = id % CH;
    const i64 r = r0 + rr;
    float f[8];
#pragma unroll
    for (int j = 0; j < 8; j++) f[j] = r < rows ? q[r * ldq + h * D + c * 8 + j] : 0.0f;
    uint4 v;
    v.x = pack2<BF16>(f[0], f[1]);
    v.y = pack2<BF16>(f[2], f[3]);
    v.z = pack2<BF16>(f[4], f[5]);
    v.w = pack2<BF16>(f[6], f[7]);
    *(uint4*)(pf_smem + pf_off<D>(rr, c)) = v;
  }
  __syncthreads();

  // Distinct sequences of the tile: t_first marks a row whose sequence has
  // not appeared in an earlier row; t_max is that sequence's largest
  // position among the tile's rows.
  if (tid < kPfRows) {
    const int s = t_seq[tid];
    int first = 0, mx = -1;
    if (s >= 0) {
      first = 1;
      for (int j = 0; j < tid; j++)
        if (t_seq[j] == s) {
          first = 0;
          break;
        }
      if (first)
        for (int j = tid; j < kPfRows; j++)
          if (t_seq[j] == s) mx = max(mx, t_pos[j]);
    }
    t_first[tid] = first;
    t_max[tid] = mx;
  }
  uint32_t qf[D / 16][4];
#pragma unroll
  for (int kk = 0; kk < D / 16; kk++)
    ldmatrix_x4(qf[kk], sQ + pf_off<D>(warp * 16 + (lane & 15), kk * 2 + (lane >> 4)));
  __syncthreads();

  // This thread's two rows (tile-local): A = g, B = g + 8 of the warp's 16.
  const int ra = warp * 16 + (lane >> 2), rb = ra + 8;
  const int sa = t_seq[ra], pa = t_pos[ra], sb = t_seq[rb], pb = t_pos[rb];
  const float sl2 = scale * 1.4426950408889634f;  // scores in log2 units
  float o[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; i++)
#pragma unroll
    for (int e = 0; e < 4; e++) o[i][e] = 0.0f;
  float mA = -CUDART_INF_F, mB = -CUDART_INF_F, lA = 0.0f, lB = 0.0f;

  for (int i0 = 0; i0 < kPfRows; i0++) {
    if (!t_first[i0]) continue;  // uniform: shared memory read by all
    const int s = t_seq[i0], kmax = t_max[i0];
    const int nkt = kmax / kPfKeys + 1;
    const int* btab = blocks + (i64)s * ldblocks;

    // Copies K and V rows kt·64 .. kt·64+63 into a stage; rows past kmax
    // (or with a bad block id) are zero-filled, so P·V never meets garbage.
    auto load_kv = [&](int st, int kt) {
      for (int id = tid; id < kPfKeys * CH; id += blockDim.x) {
        const int key = id / CH, c = id % CH;
        const int j = kt * kPfKeys + key;
        i64 ri = -1;
        if (j <= kmax) {
          const i64 blk = btab[j / bs];
          if (blk >= 0 && blk < pool_blocks)
            ri = ((blk * hkv + kvh) * bs + (j % bs)) * (i64)D + c * 8;
          else
            loom_fail(LOOM_ERR_POSITION);
        }
        const uint32_t so = pf_off<D>(key, c);
        cp_async16(sK0 + st * TILE + so, ri >= 0 ? (const void*)(kcb + ri * 2) : kc,
                   ri >= 0 ? 16 : 0);
        cp_async16(sV0 + st * TILE + so, ri >= 0 ? (const void*)(vcb + ri * 2) : vc,
                   ri >= 0 ? 16 : 0);
      }
    };

    load_kv(0, 0);
    cp_async_commit();
    for (int kt = 0; kt < nkt; kt++) {
      if (kt + 1 < nkt) load_kv((kt + 1) & 1, kt + 1);
      cp_async_commit();
      cp_async_wait<1>();
      __syncthreads();
      const uint32_t tK = sK0 + (kt & 1) * TILE, tV = sV0 + (kt & 1) * TILE;

      // S = Q·Kᵀ for the warp's 16 rows × 64 keys.
      float sacc[kPfKeys / 8][4];
#pragma unroll
      for (int n = 0; n < kPfKeys / 8; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) sacc[n][e] = 0.0f;
#pragma unroll
      for (int kk = 0; kk < D / 16; kk++) {
#pragma unroll
        for (int nj = 0; nj < kPfKeys / 16; nj++) {
          uint32_t r4[4];
          ldmatrix_x4(r4, tK + pf_off<D>(nj * 16 + (lane & 7) + ((lane >> 4) << 3),
                                         kk * 2 + ((lane >> 3) & 1)));
          mma_16816<BF16>(sacc[2 * nj], qf[kk], r4[0], r4[1]);
          mma_16816<BF16>(sacc[2 * nj + 1], qf[kk], r4[2], r4[3]);
        }
      }

      // Mask (other sequences, future positions), scale, online softmax.
      float mxA = -CUDART_INF_F, mxB = -CUDART_INF_F;
#pragma unroll
      for (int n = 0; n < kPfKeys / 8; n++) {
#pragma unroll
        for (int e = 0; e < 4; e++) {
          const int key = kt * kPfKeys + n * 8 + (lane & 3) * 2 + (e & 1);
          const bool ok = e < 2 ? (sa == s && key <= pa) : (sb == s && key <= pb);
          const float v = ok ? sacc[n][e] * sl2 : -CUDART_INF_F;
          sacc[n][e] = v;
          if (e < 2)
            mxA = fmaxf(mxA, v);
          else
            mxB = fmaxf(mxB, v);
        }
      }
#pragma unroll
      for (int off = 1; off <= 2; off <<= 1) {
        mxA = fmaxf(mxA, __shfl_xor_sync(0xffffffffu, mxA, off));
        mxB = fmaxf(mxB, __shfl_xor_sync(0xffffffffu, mxB, off));
      }
      const float nA = fmaxf(mA, mxA), nB = fmaxf(mB, mxB);
      const float uA = nA == -CUDART_INF_F ? 0.0f : nA;
      const float uB = nB == -CUDART_INF_F ? 0.0f : nB;
      const float cA = exp2f(mA - uA), cB = exp2f(mB - uB);
      mA = nA;
      mB = nB;
      float sA = 0.0f, sB = 0.0f;
#pragma unroll
      for (int n = 0; n < kPfKeys / 8; n++) {
        sacc[n][0] = exp2f(sacc[n][0] - uA);
        sacc[n][1] = exp2f(sacc[n][1] - uA);
        sacc[n][2] = exp2f(sacc[n][2] - uB);
        sacc[n][3] = exp2f(sacc[n][3] - uB);
        sA += sacc[n][0] + sacc[n][1];
        sB += sacc[n][2] + sacc[n][3];
      }
      lA = lA * cA + sA;
      lB = lB * cB + sB;
#pragma unroll
      for (int i = 0; i < D / 8; i++) {
        o[i][0] *= cA;
        o[i][1] *= cA;
        o[i][2] *= cB;
        o[i][3] *= cB;
      }

      // O += P·V: the S accumulators of keys 16kk..16kk+15 are the A
      // fragment of a k16 step.
#pragma unroll
      for (int kk = 0; kk < kPfKeys / 16; kk++) {
        uint32_t a[4];
        a[0] = pack2<BF16>(sacc[2 * kk][0], sacc[2 * kk][1]);
        a[1] = pack2<BF16>(sacc[2 * kk][2], sacc[2 * kk][3]);
        a[2] = pack2<BF16>(sacc[2 * kk + 1][0], sacc[2 * kk + 1][1]);
        a[3] = pack2<BF16>(sacc[2 * kk + 1][2], sacc[2 * kk + 1][3]);
#pragma unroll
        for (int dn = 0; dn < D / 16; dn++) {
          uint32_t r4[4];
          ldmatrix_x4_trans(r4, tV + pf_off<D>(kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8,
                                               dn * 2 + (lane >> 4)));
          mma_16816<BF16>(o[2 * dn], a, r4[0], r4[1]);
          mma_16816<BF16>(o[2 * dn + 1], a, r4[2], r4[3]);
        }
      }
      __syncthreads();  // the stage is refilled two iterations on
    }
  }

  // Normalise and write the valid rows.
#pragma unroll
  for (int off = 1; off <= 2; off <<= 1) {
    lA += __shfl_xor_sync(0xffffffffu, lA, off);
    lB += __shfl_xor_sync(0xffffffffu, lB, off);
  }
  const float iA = 1.0f / lA, iB = 1.0f / lB;
#pragma unroll
  for (int i = 0; i < D / 8; i++) {
    const int col = (int)h * D + i * 8 + (lane & 3) * 2;
    if (sa >= 0) {
      float* orow = out + (r0 + ra) * ldo + col;
      orow[0] = o[i][0] * iA;
      orow[1] = o[i][1] * iA;
    }
    if (sb >= 0) {
      float* orow = out + (r0 + rb) * ldo + col;
      orow[0] = o[i][2] * iB;
      orow[1] = o[i][3] * iB;
    }
  }
}

}  // namespace lmm

// ---------------------------------------------------------------------------
// Exported kernels (ABI.md section 4).

// As in matmul.cu, the macros give only signatures: ptxas 11.8 (sm_90,
// -lineinfo) crashes on kernels whose first code is inlined from a call on
// the kernel's own source line.
#define LOOM_KV_STORE_SIG(name)                                                                 \
  extern "C" __global__ void __launch_bounds__(256)                                             \
      name(void* kc, void* vc, const float* k, i64 ldk, const float* v, i64 ldv, const int* pos, \
           i64 ldpos, const int* seq, i64 ldseq, const int* blocks, i64 ldblocks, i64 rows,     \
           i64 hkv, i64 d, i64 bs, i64 max_blocks, i64 pool_blocks, i64 n_seqs)

LOOM_KV_STORE_SIG(loom_kv_store_f32) {
  lmm::kv_store<lmm::C_F32>(kc, vc, k, ldk, v, ldv, pos, ldpos, seq, ldseq, blocks, ldblocks,
                          rows, hkv, d, bs, max_blocks, pool_blocks, n_seqs);
}

LOOM_KV_STORE_SIG(loom_kv_store_f16) {
  lmm::kv_store<lmm::C_F16>(kc, vc, k, ldk, v, ldv, pos, ldpos, seq, ldseq, blocks, ldblocks,
                          rows, hkv, d, bs, max_blocks, pool_blocks, n_seqs);
}

LOOM_KV_STORE_SIG(loom_kv_store_bf16) {
  lmm::kv_store<lmm::C_BF16>(kc, vc, k, ldk, v, ldv, pos, ldpos, seq, ldseq, blocks, ldblocks,
                          rows, hkv, d, bs, max_blocks, pool_blocks, n_seqs);
}

namespace lmm {
template <int CT, int GT>
__device__ __forceinline__ void attn_decode_entry(float* out, i64 ldo, const float* q, i64 ldq,
                                                  const void* kc, const void* vc, const int* pos,
                                                  i64 ldpos, const int* seq, i64 ldseq,
                                                  const int* blocks, i64 ldblocks, i64 rows,
                                                  i64 hq, i64 hkv, i64 d, i64 bs, i64 max_blocks,
                                                  i64 pool_blocks, i64 n_seqs, double scale,
                                                  float* ws_o, float* ws_ml) {
  __shared__ DecSmem<GT> sm;
  if (decode_vec<CT>(d))
    attn_decode<CT, GT, true>(sm, out, ldo, q, ldq, kc, vc, pos, ldpos, seq, ldseq, blocks,
                              ldblocks, rows, hq, hkv, d, bs, max_blocks, pool_blocks, n_seqs,
                              (float)scale, ws_o, ws_ml);
  else
    attn_decode<CT, GT, false>(sm, out, ldo, q, ldq, kc, vc, pos, ldpos, seq, ldseq, blocks,
                               ldblocks, rows, hq, hkv, d, bs, max_blocks, pool_blocks, n_seqs,
                               (float)scale, ws_o, ws_ml);
}
}  // namespace lmm

// MINB: blocks per SM the register budget must allow (0: no bound). g4
// (Llama-3's 4 query heads per KV head) is held to 3 blocks (170
// registers): left free, ptxas takes ~195 and only 2 blocks fit.
#define LOOM_ATTN_DECODE_SIG(name, MINB)                                                     \
  extern "C" __global__ void __launch_bounds__(lmm::kDecThreads, MINB)                       \
      name(float* out, i64 ldo, const float* q, i64 ldq, const void* kc, const void* vc,     \
           const int* pos, i64 ldpos, const int* seq, i64 ldseq, const int* blocks,          \
           i64 ldblocks, i64 rows, i64 hq, i64 hkv, i64 d, i64 bs, i64 max_blocks,           \
           i64 pool_blocks, i64 n_seqs, double scale, float* ws_o, float* ws_ml)

LOOM_ATTN_DECODE_SIG(loom_attn_decode_f32_g1, 0) {
  lmm::attn_decode_entry<lmm::C_F32, 1>(out, ldo, q, ldq, kc, vc, pos, ldpos, seq, ldseq,
                                        blocks, ldblocks, rows, hq, hkv, d, bs, max_blocks,
                                        pool_blocks, n_seqs, scale, ws_o, ws_ml);
}

LOOM_ATTN_DECODE_SIG(loom_attn_decode_f32_g2, 0) {
  lmm::attn_decode_entry<lmm::C_F32, 2>(out, ldo, q, ldq, kc, vc, pos, ldpos, seq, ldseq,
                                        blocks, ldblocks, rows, hq, hkv, d, bs, max_blocks,
                                        pool_blocks, n_seqs, scale, ws_o, ws_ml);
}

LOOM_ATTN_DECODE_SIG(loom_attn_decode_f32_g4, 3) {
  lmm::attn_decode_entry<lmm::C_F32, 4>(out, ldo, q, ldq, kc, vc, pos, ldpos, seq, ldseq,
                                        blocks, ldblocks, rows, hq, hkv, d, bs, max_blocks,
                                        pool_blocks, n_seqs, scale, ws_o, ws_ml);
}

LOOM_ATTN_DECODE_SIG(loom_attn_decode_f32_g8, 0) {
  lmm::attn_decode_entry<lmm::C_F32, 8>(out, ldo, q, ldq, kc, vc, pos, ldpos, seq, ldseq,
                                        blocks, ldblocks, rows, hq, hkv, d, bs, max_blocks,
                                        pool_blocks, n_seqs, scale, ws_o, ws_ml);
}

LOOM_ATTN_DECODE_SIG(loom_attn_decode_f16_g1, 0) {
  lmm::attn_decode_entry<lmm::C_F16, 1>(out, ldo, q, ldq, kc, vc, pos, ldpos, seq, ldseq,
                                        blocks, ldblocks, rows, hq, hkv, d, bs, max_blocks,
                                        pool_blocks, n_seqs, scale, ws_o, ws_ml);
}

LOOM_ATTN_DECODE_SIG(loom_attn_decode_f16_g2, 0) {
  lmm::attn_decode_entry<lmm::C_F16, 2>(out, ldo, q, ldq, kc, vc, pos, ldpos, seq, ldseq,
                                        blocks, ldblocks, rows, hq, hkv, d, bs, max_blocks,
                                        pool_blocks, n_seqs, scale, ws_o, ws_ml);
}

LOOM_ATTN_DECODE_SIG(loom_attn_decode_f16_g4, 3) {
  lmm::attn_decode_entry<lmm::C_F16, 4>(out, ldo, q, ldq, kc, vc, pos, ldpos, seq, ldseq,
                                        blocks, ldblocks, rows, hq, hkv, d, bs, max_blocks,
                                        pool_blocks, n_seqs, scale, ws_o, ws_ml);
}

LOOM_ATTN_DECODE_SIG(loom_attn_decode_f16_g8, 0) {
  lmm::attn_decode_entry<lmm::C_F16, 8>(out, ldo, q, ldq, kc, vc, pos, ldpos, seq, ldseq,
                                        blocks, ldblocks, rows, hq, hkv, d, bs, max_blocks,
                                        pool_blocks, n_seqs, scale, ws_o, ws_ml);
}

LOOM_ATTN_DECODE_SIG(loom_attn_decode_bf16_g1, 0) {
  lmm::attn_decode_entry<lmm::C_BF16, 1>(out, ldo, q, ldq, kc, vc, pos, ldpos, seq, ldseq,
                                        blocks, ldblocks, rows, hq, hkv, d, bs, max_blocks,
                                        pool_blocks, n_seqs, scale, ws_o, ws_ml);
}

LOOM_ATTN_DECODE_SIG(loom_attn_decode_bf16_g2, 0) {
  lmm::attn_decode_entry<lmm::C_BF16, 2>(out, ldo, q, ldq, kc, vc, pos, ldpos, seq, ldseq,
                                        blocks, ldblocks, rows, hq, hkv, d, bs, max_blocks,
                                        pool_blocks, n_seqs, scale, ws_o, ws_ml);
}

LOOM_ATTN_DECODE_SIG(loom_attn_decode_bf16_g4, 3) {
  lmm::attn_decode_entry<lmm::C_BF16, 4>(out, ldo, q, ldq, kc, vc, pos, ldpos, seq, ldseq,
                                        blocks, ldblocks, rows, hq, hkv, d, bs, max_blocks,
                                        pool_blocks, n_seqs, scale, ws_o, ws_ml);
}

LOOM_ATTN_DECODE_SIG(loom_attn_decode_bf16_g8, 0) {
  lmm::attn_decode_entry<lmm::C_BF16, 8>(out, ldo, q, ldq, kc, vc, pos, ldpos, seq, ldseq,
                                        blocks, ldblocks, rows, hq, hkv, d, bs, max_blocks,
                                        pool_blocks, n_seqs, scale, ws_o, ws_ml);
}

// loom_attn_combine merges the splits of loom_attn_decode (ABI.md 4.3).
// The block's threads share the work over the splits (one pass of loads
// for the maxima and sums, block reductions), then each thread sums its
// output elements over the splits with the per-split weights staged in
// shared memory, kCombChunk splits at a time, the loads independent.
namespace lmm {
constexpr int kCombThreads = 128;
constexpr int kCombChunk = 128;

__device__ __forceinline__ float block_max(float v, float* sh) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  __syncthreads();  // an earlier call may still be reading sh
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  v = lane < (int)(blockDim.x >> 5) ? sh[lane] : -CUDART_INF_F;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
}  // namespace lmm

extern "C" __global__ void __launch_bounds__(lmm::kCombThreads)
    loom_attn_combine(float* out, i64 ldo, const float* ws_o, const float* ws_ml, const int* pos,
                      i64 ldpos, i64 rows, i64 hq, i64 d, i64 nsplit) {
  __shared__ float red[32];
  __shared__ float wx[lmm::kCombChunk];
  const int tid = threadIdx.x;
  const i64 h = blockIdx.y;
  // Every branch below depends on the row only: the block takes them
  // together, so its barriers are reached by all threads.
  for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
    const i64 p = pos[r * ldpos];
    if (p < 0) continue;  // reported by loom_kv_store
    const i64 len = p + 1, L = lmm::split_len(len, nsplit), nv = (len + L - 1) / L;
    if (nv <= 1) continue;  // loom_attn_decode wrote this row's out itself
    const float* ml = ws_ml + (r * hq + h) * nsplit * 2;
    float m = -CUDART_INF_F;
    for (i64 x = tid; x < nv; x += blockDim.x) m = fmaxf(m, ml[2 * x]);
    m = lmm::block_max(m, red);
    const float mu = m == -CUDART_INF_F ? 0.0f : m;
    float den = 0.0f;
    for (i64 x = tid; x < nv; x += blockDim.x) den += expf(ml[2 * x] - mu) * ml[2 * x + 1];
    den = block_sum(den, red);
    const float* po = ws_o + (r * hq + h) * nsplit * d;
    // d <= 256 (loom_attn_decode refuses larger heads): two elements per
    // thread at most.
    const i64 e0 = tid, e1 = tid + lmm::kCombThreads;
    float num0 = 0.0f, num1 = 0.0f;
    for (i64 x0 = 0; x0 < nv; x0 += lmm::kCombChunk) {
      const int cnt = (int)min((i64)lmm::kCombChunk, nv - x0);
      __syncthreads();  // the previous chunk's (or row's) readers of wx are done
      if (tid < cnt) wx[tid] = expf(ml[2 * (x0 + tid)] - mu);
      __syncthreads();
      const float* px = po + x0 * d;
#pragma unroll 4
      for (int i = 0; i < cnt; i++) {
        const float wgt = wx[i];
        if (e0 < d) num0 = fmaf(wgt, px[i * d + e0], num0);
        if (e1 < d) num1 = fmaf(wgt, px[i * d + e1], num1);
      }
    }
    if (e0 < d) out[r * ldo + h * d + e0] = num0 / den;
    if (e1 < d) out[r * ldo + h * d + e1] = num1 / den;
  }
}

#define LOOM_ATTN_PREFILL_SIG(name)                                                          \
  extern "C" __global__ void __launch_bounds__(128)                                          \
      name(float* out, i64 ldo, const float* q, i64 ldq, const void* kc, const void* vc,     \
           const int* pos, i64 ldpos, const int* seq, i64 ldseq, const int* blocks,          \
           i64 ldblocks, i64 rows, i64 hq, i64 hkv, i64 bs, i64 max_blocks, i64 pool_blocks, \
           i64 n_seqs, double scale)

LOOM_ATTN_PREFILL_SIG(loom_attn_prefill_f16_d64) {
  lmm::attn_prefill<false, 64>(out, ldo, q, ldq, kc, vc, pos, ldpos, seq, ldseq, blocks,
                              ldblocks, rows, hq, hkv, bs, max_blocks, pool_blocks, n_seqs,
                              (float)scale);
}

LOOM_ATTN_PREFILL_SIG(loom_attn_prefill_f16_d128) {
  lmm::attn_prefill<false, 128>(out, ldo, q, ldq, kc, vc, pos, ldpos, seq, ldseq, blocks,
                              ldblocks, rows, hq, hkv, bs, max_blocks, pool_blocks, n_seqs,
                              (float)scale);
}

LOOM_ATTN_PREFILL_SIG(loom_attn_prefill_bf16_d64) {
  lmm::attn_prefill<true, 64>(out, ldo, q, ldq, kc, vc, pos, ldpos, seq, ldseq, blocks,
                              ldblocks, rows, hq, hkv, bs, max_blocks, pool_blocks, n_seqs,
                              (float)scale);
}

LOOM_ATTN_PREFILL_SIG(loom_attn_prefill_bf16_d128) {
  lmm::attn_prefill<true, 128>(out, ldo, q, ldq, kc, vc, pos, ldpos, seq, ldseq, blocks,
                              ldblocks, rows, hq, hkv, bs, max_blocks, pool_blocks, n_seqs,
                              (float)scale);
}
