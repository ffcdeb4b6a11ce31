// Attention kernels. Three paths:
//  - attention_sm90 (attention_sm90.cu): on sm_90 GPUs the bf16 prefill cases without mask or weights run a
//    wgmma/TMA kernel; everything else comes here.
//  - flash_fwd: bf16, head dim 32/48/64/80/96/128 (d == dv; the tiny needle models' vision and LLM heads are 32, 48). FlashAttention-2 style: each warp owns 16 query rows
//    whose Q fragments stay in registers; K/V tiles of 64 keys stream through shared memory with cp.async
//    double buffering; S = Q·Kᵀ and O += P·V run on mma.sync m16n8k16 with an online softmax in f32 (exp2
//    domain). GQA rows are packed: a CTA's rows are (query, head-in-group) pairs of one kv head, so the
//    K/V tile is shared by all the query heads that read it. When too few CTAs exist to fill the GPU
//    (decode, cross-attention of a few hundred queries over 10^5+ keys) the key range is split across
//    CTAs and the normalised partials are merged with their log-sum-exp (flash-decoding).
//  - attn_generic: one warp per (batch, head, query) row, f32 math on any dtype/head dim ≤ 256; it also
//    produces the optional softmax weights. Used for f32 inputs, odd head dims and weights requests.
#include "attention.h"

#include <algorithm>
#include <cmath>

#include "attention_rule.cuh"
#include "attention_sm90.h"
#include "mma_tiles.cuh"

namespace {

// ---- generic path ---------------------------------------------------------------------------------------

struct GenericParams {
  const void *q, *k, *v;
  void *out;
  const float *mask;
  size_t maskBStride;
  float *weights;
  RowRule rule;
  int batch, sq, skv, hq, hkv, d, dv;
  float scale;
};

constexpr int kGenWarps = 4;
constexpr int kGenMaxDim = 256;

/** P: accumulator values per lane (dv ≤ 32·P), a kernel each so a narrow head runs no predicated-off lanes. */
template <typename T, int P>
__global__ void __launch_bounds__(kGenWarps * 32) attn_generic(GenericParams p) {
  __shared__ float sq[kGenWarps][kGenMaxDim];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const size_t row = static_cast<size_t>(blockIdx.x) * kGenWarps + warp;
  if (row >= static_cast<size_t>(p.batch) * p.hq * p.sq) return;
  const int i = static_cast<int>(row % p.sq);
  const int h = static_cast<int>((row / p.sq) % p.hq);
  const int b = static_cast<int>(row / (static_cast<size_t>(p.sq) * p.hq));
  const int hk = h / (p.hq / p.hkv);
  const T *q = static_cast<const T *>(p.q) + ((static_cast<size_t>(b) * p.sq + i) * p.hq + h) * p.d;
  const T *k = static_cast<const T *>(p.k) + (static_cast<size_t>(b) * p.skv * p.hkv + hk) * p.d;
  const T *v = static_cast<const T *>(p.v) + (static_cast<size_t>(b) * p.skv * p.hkv + hk) * p.dv;
  const size_t kStride = static_cast<size_t>(p.hkv) * p.d, vStride = static_cast<size_t>(p.hkv) * p.dv;
  const float *mrow = p.mask ? p.mask + b * p.maskBStride + static_cast<size_t>(i) * p.rule.kvLength : nullptr;
  for (int e = lane; e < p.d; e += 32) sq[warp][e] = load_f32(q, e) * p.scale;
  __syncwarp();
  int lo, hi;
  p.rule.range(i, lo, hi);

  auto score = [&](int j) {
    const T *kr = k + j * kStride;
    float s = 0.f;
    for (int e = 0; e < p.d; ++e) s += sq[warp][e] * load_f32(kr, e);
    return mrow ? s + mrow[j] : s;
  };

  constexpr int kPer = P;
  float acc[kPer];
#pragma unroll
  for (int e = 0; e < kPer; ++e) acc[e] = 0.f;
  float m = -INFINITY, l = 0.f;
  for (int j0 = lo; j0 < hi; j0 += 32) {
    const int j = j0 + lane;
    const float s = j < hi ? score(j) : -INFINITY;
    float cmax = s;
    for (int o = 16; o; o >>= 1) cmax = fmaxf(cmax, __shfl_xor_sync(0xffffffffu, cmax, o));
    const float mnew = fmaxf(m, cmax);
    if (mnew == -INFINITY) continue;  // everything so far fully masked
    const float alpha = expf(m - mnew);
    const float pj = s == -INFINITY ? 0.f : expf(s - mnew);
    float psum = pj;
    for (int o = 16; o; o >>= 1) psum += __shfl_xor_sync(0xffffffffu, psum, o);
    l = l * alpha + psum;
    m = mnew;
#pragma unroll
    for (int e = 0; e < kPer; ++e) acc[e] *= alpha;
    const int n = min(32, hi - j0);
    for (int jj = 0; jj < n; ++jj) {
      const float w = __shfl_sync(0xffffffffu, pj, jj);
      if (w == 0.f) continue;
      const T *vr = v + (j0 + jj) * vStride;
#pragma unroll
      for (int e = 0; e < kPer; ++e)
        if (lane + 32 * e < p.dv) acc[e] += w * load_f32(vr, lane + 32 * e);
    }
  }
  const float inv = l > 0.f ? 1.f / l : 0.f;
  T *out = static_cast<T *>(p.out) + ((static_cast<size_t>(b) * p.sq + i) * p.hq + h) * p.dv;
#pragma unroll
  for (int e = 0; e < kPer; ++e)
    if (lane + 32 * e < p.dv) store_f32(out, lane + 32 * e, acc[e] * inv);
  if (p.weights) {
    float *w = p.weights + ((static_cast<size_t>(b) * p.hq + h) * p.sq + i) * p.rule.kvLength;
    for (int j = lane; j < p.rule.kvLength; j += 32) {
      float pj = 0.f;
      if (j >= lo && j < hi && l > 0.f) {
        const float s = score(j);
        pj = s == -INFINITY ? 0.f : expf(s - m) * inv;
      }
      w[j] = pj;
    }
  }
}

// ---- flash path -----------------------------------------------------------------------------------------

struct FlashParams {
  const __nv_bfloat16 *q, *k, *v;
  __nv_bfloat16 *out;  // null: the partials even at one split (attention_partials)
  float *opart, *lse;  // split-K partials [splits, batch·sq·hq, d] and their log2-sum-exp
  const float *mask;
  size_t maskBStride;
  RowRule rule;
  int batch, sq, skv, hq, hkv, G, splits;
  float scaleLog2;
};

constexpr int kBc = 64;  // keys per tile

template <int D, int W>
constexpr size_t flash_smem_bytes() {
  return static_cast<size_t>(16 * W + 4 * kBc) * (D + 8) * sizeof(__nv_bfloat16);
}

template <int D, int W>
__global__ void __launch_bounds__(W * 32) flash_fwd(FlashParams p) {
  constexpr int BR = 16 * W, LDS = D + 8, CH = D / 8;  // CH: 16-byte chunks per row
  extern __shared__ __align__(16) unsigned char smem[];
  __nv_bfloat16 *sQ = reinterpret_cast<__nv_bfloat16 *>(smem);
  __nv_bfloat16 *sK = sQ + BR * LDS;
  __nv_bfloat16 *sV = sK + 2 * kBc * LDS;

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t4 = lane & 3;
  const int b = blockIdx.y / p.hkv, hk = blockIdx.y % p.hkv;
  const int rows = p.sq * p.G;
  const int rowBase = (gridDim.x - 1 - blockIdx.x) * BR;  // heaviest causal tiles first
  const int rowLast = min(rowBase + BR, rows) - 1;
  int loFirst, hiFirst, loLast, hiLast;
  p.rule.range(rowBase / p.G, loFirst, hiFirst);
  p.rule.range(rowLast / p.G, loLast, hiLast);
  const int kBeg = loFirst, kEnd = hiLast;
  const int nT = kEnd > kBeg ? (kEnd - kBeg + kBc - 1) / kBc : 0;
  const int perSplit = (nT + p.splits - 1) / p.splits;
  const int tBeg = min(nT, static_cast<int>(blockIdx.z) * perSplit), tEnd = min(nT, tBeg + perSplit);

  const size_t kvStride = static_cast<size_t>(p.hkv) * D;
  const __nv_bfloat16 *kBase = p.k + (static_cast<size_t>(b) * p.skv * p.hkv + hk) * D;
  const __nv_bfloat16 *vBase = p.v + (static_cast<size_t>(b) * p.skv * p.hkv + hk) * D;

  for (int c = tid; c < BR * CH; c += W * 32) {
    const int r = c / CH, col = (c % CH) * 8, row = rowBase + r;
    const __nv_bfloat16 *src = p.q;
    if (row < rows)
      src = p.q + ((static_cast<size_t>(b) * p.sq + row / p.G) * p.hq + hk * p.G + row % p.G) * D + col;
    cp_async16(sQ + r * LDS + col, src, row < rows ? 16 : 0);
  }
  auto load_kv = [&](int tile, int buf) {
    const int j0 = kBeg + tile * kBc;
    __nv_bfloat16 *dK = sK + buf * kBc * LDS, *dV = sV + buf * kBc * LDS;
    for (int c = tid; c < kBc * CH; c += W * 32) {
      const int r = c / CH, col = (c % CH) * 8, j = j0 + r;
      const bool ok = j < kEnd;
      const size_t off = ok ? j * kvStride + col : 0;
      cp_async16(dK + r * LDS + col, kBase + off, ok ? 16 : 0);
      cp_async16(dV + r * LDS + col, vBase + off, ok ? 16 : 0);
    }
  };
  if (tBeg < tEnd) load_kv(tBeg, 0);
  cp_async_commit();
  cp_async_wait<0>();
  __syncthreads();

  uint32_t qa[D / 16][4];
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    const __nv_bfloat16 *base = sQ + (warp * 16 + g) * LDS + kk * 16 + 2 * t4;
    qa[kk][0] = *reinterpret_cast<const uint32_t *>(base);
    qa[kk][1] = *reinterpret_cast<const uint32_t *>(base + 8 * LDS);
    qa[kk][2] = *reinterpret_cast<const uint32_t *>(base + 8);
    qa[kk][3] = *reinterpret_cast<const uint32_t *>(base + 8 * LDS + 8);
  }

  // The two rows this thread accumulates: warp row g and g + 8.
  int myRow[2], lo[2], hi[2];
  const float *mrow[2] = {nullptr, nullptr};
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    myRow[h] = rowBase + warp * 16 + g + 8 * h;
    lo[h] = 0;
    hi[h] = 0;
    if (myRow[h] < rows) {
      const int i = myRow[h] / p.G;
      p.rule.range(i, lo[h], hi[h]);
      if (p.mask) mrow[h] = p.mask + b * p.maskBStride + static_cast<size_t>(i) * p.rule.kvLength;
    }
  }

  float o[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};

  for (int tile = tBeg; tile < tEnd; ++tile) {
    const int buf = (tile - tBeg) & 1;
    if (tile + 1 < tEnd) load_kv(tile + 1, buf ^ 1);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    const __nv_bfloat16 *cK = sK + buf * kBc * LDS, *cV = sV + buf * kBc * LDS;

    float s[kBc / 8][4];
    mma_scores<D, kBc>(s, qa, cK);

    const int j0 = kBeg + tile * kBc;
    const bool full = !p.mask && j0 >= loLast && j0 + kBc <= hiFirst;
#pragma unroll
    for (int n = 0; n < kBc / 8; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int h = e >> 1, j = j0 + 8 * n + 2 * t4 + (e & 1);
        float x = s[n][e] * p.scaleLog2;
        if (!full) {
          if (j < lo[h] || j >= hi[h]) x = -INFINITY;
          else if (mrow[h]) x += mrow[h][j] * kLog2e;
        }
        s[n][e] = x;
      }

#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float mx = -INFINITY;
#pragma unroll
      for (int n = 0; n < kBc / 8; ++n) mx = fmaxf(mx, fmaxf(s[n][2 * h], s[n][2 * h + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float mnew = fmaxf(m[h], mx);
      const float muse = mnew == -INFINITY ? 0.f : mnew;
      const float alpha = fast_exp2(m[h] - muse);
      m[h] = mnew;
      float rs = 0.f;
#pragma unroll
      for (int n = 0; n < kBc / 8; ++n) {
        s[n][2 * h] = fast_exp2(s[n][2 * h] - muse);
        s[n][2 * h + 1] = fast_exp2(s[n][2 * h + 1] - muse);
        rs += s[n][2 * h] + s[n][2 * h + 1];
      }
      l[h] = l[h] * alpha + rs;
#pragma unroll
      for (int n = 0; n < D / 8; ++n) {
        o[n][2 * h] *= alpha;
        o[n][2 * h + 1] *= alpha;
      }
    }

    mma_weights<D, kBc>(o, s, cV);
    __syncthreads();
  }

  const size_t nRows = static_cast<size_t>(p.batch) * p.sq * p.hq;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    l[h] += __shfl_xor_sync(0xffffffffu, l[h], 1);
    l[h] += __shfl_xor_sync(0xffffffffu, l[h], 2);
    if (myRow[h] >= rows) continue;
    const size_t r = (static_cast<size_t>(b) * p.sq + myRow[h] / p.G) * p.hq + hk * p.G + myRow[h] % p.G;
    const float inv = l[h] > 0.f ? 1.f / l[h] : 0.f;
    if (p.splits == 1 && p.out) {
      __nv_bfloat16 *dst = p.out + r * D + 2 * t4;
#pragma unroll
      for (int n = 0; n < D / 8; ++n) store_bf16x2(dst + 8 * n, o[n][2 * h] * inv, o[n][2 * h + 1] * inv);
    } else {
      float *dst = p.opart + (blockIdx.z * nRows + r) * D + 2 * t4;
#pragma unroll
      for (int n = 0; n < D / 8; ++n)
        *reinterpret_cast<float2 *>(dst + 8 * n) = make_float2(o[n][2 * h] * inv, o[n][2 * h + 1] * inv);
      if (t4 == 0) p.lse[blockIdx.z * nRows + r] = l[h] > 0.f ? m[h] + log2f(l[h]) : -INFINITY;
    }
  }
}

/** out[row] = the normalised split-K partials merged by their log2-sum-exp. */
__global__ void flash_combine(const float *opart, const float *lse, __nv_bfloat16 *out, int splits,
                              size_t nRows, int d) {
  const size_t idx = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= nRows * d) return;
  out[idx] = __float2bfloat16_rn(merge_log2_partials(opart, lse, splits, nRows, idx / d, d, idx % d));
}

// 64-row CTAs (4 warps): on an H200 they beat 128-row ones on every benchmarked shape, since the
// register-bound occupancy makes 2 × 4 warps per SM better than 1 × 8.
constexpr int kWarps = 4;

struct Plan {
  bool flash, sm90;  // sm90: attention_sm90 (wgmma) instead of flash_fwd
  int qTiles, splits;
  size_t segBytes, opartBytes, lseBytes, sm90Bytes;
};

bool flash_eligible(const AttentionDims &a, DT dt) {
  return dt == DT::BF16 && a.d == a.dv && (a.d == 32 || a.d == 48 || a.d == 64 || a.d == 80 || a.d == 96 || a.d == 128) &&
         !a.weights;
}

template <int D, int W>
int flash_blocks_per_sm() {
  static const int n = [] {
    int blocks = 0;
    constexpr size_t smem = flash_smem_bytes<D, W>();
    allow_smem_once<flash_fwd<D, W>>(smem);
    LS_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, flash_fwd<D, W>, W * 32, smem));
    return std::max(blocks, 1);
  }();
  return n;
}

template <int W>
int flash_blocks_per_sm(int d) {
  switch (d) {
    case 64: return flash_blocks_per_sm<64, W>();
    case 80: return flash_blocks_per_sm<80, W>();
    case 96: return flash_blocks_per_sm<96, W>();
    default: return flash_blocks_per_sm<128, W>();
  }
}

/** CTAs along the query axis: 64-row tiles of (query, head-in-group) pairs. */
int flash_q_tiles(const AttentionDims &a) {
  return static_cast<int>(ceil_div<long long>(static_cast<long long>(a.sq) * (a.hq / a.hkv), 16LL * kWarps));
}

/**
 * Key splits for flash_fwd: enough that the grid covers ≥ `waves` waves with the least idle tail. A single
 * query tile (decode) streams K/V and nothing else: one wave of longer CTAs fills each pipeline once (on an
 * H200, 0.082 ms at 64 splits against 0.097 at 132 for 131k keys); more query tiles balance better over two.
 */
int flash_splits(const AttentionDims &a, int qTiles) {
  const long long ctas = static_cast<long long>(qTiles) * a.batch * a.hkv;
  const long long slots = static_cast<long long>(current_sm_count()) * flash_blocks_per_sm<kWarps>(a.d);
  const int keyTiles = ceil_div(a.kvLength, kBc);
  const long long waves = qTiles == 1 ? 1 : 2;
  int splits = 1;
  if (ctas < waves * slots && keyTiles >= 16) {
    const long long lo = ceil_div(waves * slots, ctas), hi = std::min<long long>({2 * lo, keyTiles / 8, 256});
    double bestEff = 0;
    for (long long s = std::min(lo, hi); s <= hi; ++s) {
      const double w = static_cast<double>(ctas * s) / slots, eff = w / std::ceil(w);
      if (eff > bestEff + 1e-9) {
        bestEff = eff;
        splits = static_cast<int>(s);
      }
    }
  }
  return splits < 2 ? 1 : splits;
}

Plan make_plan(const AttentionDims &a, DT dt) {
  Plan p{};
  p.segBytes = a.numSegments > 0 ? align256(sizeof(int32_t) * (a.numSegments + 1)) : 0;
  p.flash = flash_eligible(a, dt);
  p.splits = 1;
  if (!p.flash) return p;
  p.qTiles = flash_q_tiles(a);
  if (a.numSegments == 0) p.splits = flash_splits(a, p.qTiles);
  p.sm90 = p.splits == 1 && attention_sm90_supported(a, dt);
  if (p.sm90) p.sm90Bytes = attention_sm90_workspace_bytes(a);
  if (p.splits > 1) {
    const size_t nRows = static_cast<size_t>(a.batch) * a.sq * a.hq;
    p.opartBytes = align256(sizeof(float) * p.splits * nRows * a.d);
    p.lseBytes = align256(sizeof(float) * p.splits * nRows);
  }
  return p;
}

template <int D, int W>
void launch_flash(const FlashParams &fp, int qTiles, cudaStream_t stream) {
  constexpr size_t smem = flash_smem_bytes<D, W>();
  allow_smem_once<flash_fwd<D, W>>(smem);
  const dim3 grid(qTiles, fp.batch * fp.hkv, fp.splits);
  flash_fwd<D, W><<<grid, W * 32, smem, stream>>>(fp);
  LS_CHECK_LAUNCH();
}

/** flash_fwd over `splits` key ranges: into out when it is given and splits is 1, else into opart/lse. */
void run_flash(void *out, float *opart, float *lse, const void *q, const void *k, const void *v, const float *mask,
               size_t maskBStride, const RowRule &rule, const AttentionDims &a, int qTiles, int splits,
               cudaStream_t stream) {
  FlashParams fp{};
  fp.q = static_cast<const __nv_bfloat16 *>(q);
  fp.k = static_cast<const __nv_bfloat16 *>(k);
  fp.v = static_cast<const __nv_bfloat16 *>(v);
  fp.out = static_cast<__nv_bfloat16 *>(out);
  fp.opart = opart;
  fp.lse = lse;
  fp.mask = mask;
  fp.maskBStride = maskBStride;
  fp.rule = rule;
  fp.batch = a.batch;
  fp.sq = a.sq;
  fp.skv = a.skv;
  fp.hq = a.hq;
  fp.hkv = a.hkv;
  fp.G = a.hq / a.hkv;
  fp.splits = splits;
  fp.scaleLog2 = a.scale * kLog2e;
  switch (a.d) {
    case 32: launch_flash<32, kWarps>(fp, qTiles, stream); break;
    case 48: launch_flash<48, kWarps>(fp, qTiles, stream); break;
    case 64: launch_flash<64, kWarps>(fp, qTiles, stream); break;
    case 80: launch_flash<80, kWarps>(fp, qTiles, stream); break;
    case 96: launch_flash<96, kWarps>(fp, qTiles, stream); break;
    default: launch_flash<128, kWarps>(fp, qTiles, stream); break;
  }
}

bool aligned16(const void *p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

}  // namespace

size_t attention_workspace_bytes(const AttentionDims &a, DT dt) {
  const Plan p = make_plan(a, dt);
  return p.segBytes + p.opartBytes + p.lseBytes + p.sm90Bytes;
}

void attention(void *out, const void *q, const void *k, const void *v, const float *mask, float *weights,
               const int32_t *segmentsHost, const AttentionDims &a, DT dt, void *workspace,
               size_t workspaceBytes, cudaStream_t stream) {
  LS_REQUIRE(a.hkv > 0 && a.hq % a.hkv == 0, "attention: hq must be a multiple of hkv");
  LS_REQUIRE(a.kvLength >= 0 && a.kvLength <= a.skv, "attention: kvLength exceeds skv");
  LS_REQUIRE(a.numSegments == 0 || (segmentsHost && a.batch == 1 && a.sq == a.kvLength),
             "attention: segments need batch 1 and sq == kvLength");
  LS_REQUIRE(a.weights == (weights != nullptr), "attention: weights pointer does not match dims.weights");
  LS_REQUIRE((a.maskBatch == 0) == (mask == nullptr), "attention: mask pointer does not match dims.maskBatch");
  const Plan plan = make_plan(a, dt);
  LS_REQUIRE(workspaceBytes >= plan.segBytes + plan.opartBytes + plan.lseBytes + plan.sm90Bytes,
             "attention: workspace smaller than attention_workspace_bytes()");
  if (static_cast<size_t>(a.batch) * a.sq * a.hq == 0) return;
  unsigned char *ws = static_cast<unsigned char *>(workspace);
  int *seg = nullptr;
  if (a.numSegments > 0) {
    seg = reinterpret_cast<int *>(ws);
    LS_CUDA_CHECK(cudaMemcpyAsync(seg, segmentsHost, sizeof(int32_t) * (a.numSegments + 1),
                                  cudaMemcpyHostToDevice, stream));
  }
  const RowRule rule{a.kvLength, a.causal ? 1 : 0, a.queryOffset, a.numSegments, seg};
  const size_t maskBStride = a.maskBatch > 1 ? static_cast<size_t>(a.sq) * a.kvLength : 0;

  const bool aligned = aligned16(q) && aligned16(k) && aligned16(v) && aligned16(out);
  if (plan.sm90 && aligned) {
    attention_sm90(out, q, k, v, segmentsHost, seg, a, ws + plan.segBytes, stream);
    return;
  }
  if (plan.flash && aligned) {
    float *opart = reinterpret_cast<float *>(ws + plan.segBytes);
    float *lse = reinterpret_cast<float *>(ws + plan.segBytes + plan.opartBytes);
    run_flash(out, opart, lse, q, k, v, mask, maskBStride, rule, a, plan.qTiles, plan.splits, stream);
    if (plan.splits > 1) {
      const size_t nRows = static_cast<size_t>(a.batch) * a.sq * a.hq, n = nRows * a.d;
      flash_combine<<<static_cast<unsigned>(ceil_div<size_t>(n, 256)), 256, 0, stream>>>(
          opart, lse, static_cast<__nv_bfloat16 *>(out), plan.splits, nRows, a.d);
      LS_CHECK_LAUNCH();
    }
    return;
  }

  LS_REQUIRE(a.d <= kGenMaxDim && a.dv <= kGenMaxDim, "attention: head dims above 256 are not supported");
  GenericParams gp{q, k, v, out, mask, maskBStride, weights, rule, a.batch, a.sq, a.skv, a.hq, a.hkv, a.d, a.dv,
                   a.scale};
  const size_t rows = static_cast<size_t>(a.batch) * a.hq * a.sq;
  const unsigned blocks = static_cast<unsigned>(ceil_div<size_t>(rows, kGenWarps));
  LS_DISPATCH_DT(dt, T, {
    if (a.dv <= 32) attn_generic<T, 1><<<blocks, kGenWarps * 32, 0, stream>>>(gp);
    else if (a.dv <= 64) attn_generic<T, 2><<<blocks, kGenWarps * 32, 0, stream>>>(gp);
    else if (a.dv <= 128) attn_generic<T, 4><<<blocks, kGenWarps * 32, 0, stream>>>(gp);
    else attn_generic<T, 8><<<blocks, kGenWarps * 32, 0, stream>>>(gp);
    LS_CHECK_LAUNCH();
  });
}

bool attention_partials_supported(const AttentionDims &a, DT dt, const void *q, const void *k, const void *v) {
  return flash_eligible(a, dt) && a.maskBatch == 0 && a.numSegments == 0 && !a.causal && aligned16(q) &&
         aligned16(k) && aligned16(v);
}

int attention_partials_splits(const AttentionDims &a) { return flash_splits(a, flash_q_tiles(a)); }

void attention_partials(float *opart, float *lse, int splits, const void *q, const void *k, const void *v,
                        const AttentionDims &a, cudaStream_t stream) {
  LS_REQUIRE(a.hkv > 0 && a.hq % a.hkv == 0 && a.kvLength >= 0 && a.kvLength <= a.skv && splits >= 1,
             "attention_partials: inconsistent dims");
  LS_REQUIRE(attention_partials_supported(a, DT::BF16, q, k, v),
             "attention_partials: needs bf16, d == dv in {64, 80, 96, 128}, no mask, 16-byte aligned buffers");
  if (static_cast<size_t>(a.batch) * a.sq * a.hq == 0) return;
  const RowRule rule{a.kvLength, 0, a.queryOffset, 0, nullptr};
  run_flash(nullptr, opart, lse, q, k, v, nullptr, 0, rule, a, flash_q_tiles(a), splits, stream);
}
