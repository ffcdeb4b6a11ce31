// Batched decode kernels (decode.h). Every sequence keeps its own buffers; the kernels find them through a
// small table uploaded per launch, so N sequences cost one launch instead of N.
//  - attention_rows: a CTA per (sequence, kv head, key split) with one warp per query head of the group, so
//    the group's K/V rows are read from global memory once (the other warps hit L1). A lane scores one key at
//    a time (16-byte loads), the warp keeps an online softmax in f32 and accumulates V rows; split partials
//    (normalised, with their log-sum-exp) are merged by a second kernel when the keys are split
//    (flash-decoding), which long contexts need to fill the GPU at small batch.
//  - scatter_rows: the new K (or V) row of every sequence into its cache at its own position.
//  - mamba_step_rows: kernel 1 runs the causal conv over [state; x‖B‖C] (+ bias, SiLU) for every channel and
//    advances the conv states, and dt = clamp(softplus(dt + dt_bias)); kernel 2 is the SSM update, a warp per
//    (sequence, head, channel) as ssm_step does, with each sequence's state found through the table.
#include "decode.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "device_util.cuh"
#include "mma_util.cuh"

namespace {

constexpr int kMaxWarps = 8;

__device__ __forceinline__ float load_w(const void *p, DT t, int i) {
  return t == DT::F32 ? static_cast<const float *>(p)[i] : __bfloat162float(static_cast<const __nv_bfloat16 *>(p)[i]);
}
constexpr int kMaxDim = 256;

struct RowsParams {
  const void *q;
  void *out;
  const RowKV *kvs;
  float *opart, *lse;  // [splits, rows·hq, dv] and [splits, rows·hq] when splits > 1
  int rows, hq, hkv, d, dv, G, splits, warps;
  float scale;
  bool vec;
};

template <typename T>
__device__ __forceinline__ float dot_row(const float *q, const T *k, int d, bool vec) {
  float s = 0.f;
  if (vec) {
    constexpr int V = kVec<T>;
    for (int e = 0; e < d; e += V) {
      float kv[V];
      load_pack<T, V>(k, e, kv);
#pragma unroll
      for (int j = 0; j < V; ++j) s += q[e + j] * kv[j];
    }
  } else {
    for (int e = 0; e < d; ++e) s += q[e] * to_f32(k[e]);
  }
  return s;
}

template <typename T>
__global__ void __launch_bounds__(kMaxWarps * 32) attn_rows_kernel(RowsParams p) {
  __shared__ float sq[kMaxWarps][kMaxDim];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int row = blockIdx.y / p.hkv, hk = blockIdx.y % p.hkv, split = blockIdx.x;
  const RowKV kv = p.kvs[row];
  const int total = kv.prefixLength + kv.length, pl = kv.prefixLength;
  const int per = (total + p.splits - 1) / p.splits;
  const int lo = min(total, split * per), hi = min(total, lo + per);
  const size_t kStride = static_cast<size_t>(p.hkv) * p.d, vStride = static_cast<size_t>(p.hkv) * p.dv;
  // Key j is row j of the prefix, or row j − pl of the sequence's own buffers.
  const T *K = static_cast<const T *>(kv.k) + static_cast<size_t>(hk) * p.d;
  const T *Vb = static_cast<const T *>(kv.v) + static_cast<size_t>(hk) * p.dv;
  const T *PK = pl ? static_cast<const T *>(kv.pk) + static_cast<size_t>(hk) * p.d : K;
  const T *PV = pl ? static_cast<const T *>(kv.pv) + static_cast<size_t>(hk) * p.dv : Vb;
  constexpr int kPer = kMaxDim / 32;
  for (int hh = warp; hh < p.G; hh += p.warps) {
    const int h = hk * p.G + hh;
    const size_t rh = static_cast<size_t>(row) * p.hq + h;
    const T *q = static_cast<const T *>(p.q) + rh * p.d;
    __syncwarp();
    for (int e = lane; e < p.d; e += 32) sq[warp][e] = to_f32(q[e]) * p.scale;
    __syncwarp();
    float acc[kPer];
#pragma unroll
    for (int e = 0; e < kPer; ++e) acc[e] = 0.f;
    float m = -INFINITY, l = 0.f;
    for (int j0 = lo; j0 < hi; j0 += 32) {
      const int j = j0 + lane;
      const float s = j < hi ? dot_row<T>(sq[warp], (j < pl ? PK + j * kStride : K + (j - pl) * kStride), p.d, p.vec) : -INFINITY;
      float cmax = s;
      for (int o = 16; o; o >>= 1) cmax = fmaxf(cmax, __shfl_xor_sync(0xffffffffu, cmax, o));
      const float mnew = fmaxf(m, cmax);
      const float alpha = expf(m - mnew);
      const float pj = j < hi ? expf(s - mnew) : 0.f;
      float psum = pj;
      for (int o = 16; o; o >>= 1) psum += __shfl_xor_sync(0xffffffffu, psum, o);
      l = l * alpha + psum;
      m = mnew;
#pragma unroll
      for (int e = 0; e < kPer; ++e) acc[e] *= alpha;
      const int n = min(32, hi - j0);
      for (int jj = 0; jj < n; ++jj) {
        const float w = __shfl_sync(0xffffffffu, pj, jj);
        const int jv = j0 + jj;
        const T *vr = jv < pl ? PV + jv * vStride : Vb + (jv - pl) * vStride;
#pragma unroll
        for (int e = 0; e < kPer; ++e)
          if (lane + 32 * e < p.dv) acc[e] += w * to_f32(vr[lane + 32 * e]);
      }
    }
    const float inv = l > 0.f ? 1.f / l : 0.f;
    if (p.splits == 1) {
      T *out = static_cast<T *>(p.out) + rh * p.dv;
#pragma unroll
      for (int e = 0; e < kPer; ++e)
        if (lane + 32 * e < p.dv) store_f32(out, lane + 32 * e, acc[e] * inv);
    } else {
      const size_t slot = static_cast<size_t>(split) * p.rows * p.hq + rh;
      float *o = p.opart + slot * p.dv;
#pragma unroll
      for (int e = 0; e < kPer; ++e)
        if (lane + 32 * e < p.dv) o[lane + 32 * e] = acc[e] * inv;
      if (lane == 0) p.lse[slot] = l > 0.f ? m + logf(l) : -INFINITY;
    }
  }
}

template <typename T>
__global__ void attn_rows_combine(const float *opart, const float *lse, T *out, int splits, size_t rowHeads,
                                  int dv) {
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rowHeads * dv) return;
  const size_t rh = i / dv;
  float M = -INFINITY;
  for (int s = 0; s < splits; ++s) M = fmaxf(M, lse[s * rowHeads + rh]);
  float num = 0.f, den = 0.f;
  for (int s = 0; s < splits; ++s) {
    const float w = lse[s * rowHeads + rh] == -INFINITY ? 0.f : expf(lse[s * rowHeads + rh] - M);
    num += w * opart[s * rowHeads * dv + i];
    den += w;
  }
  store_f32(out, i, den > 0.f ? num / den : 0.f);
}

int sm_count() {
  static int n = 0;
  if (!n) {
    int dev;
    LS_CUDA_CHECK(cudaGetDevice(&dev));
    LS_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev));
  }
  return n;
}

/** Key splits: enough CTAs for two waves, at least 256 keys each. */
int rows_splits(const AttentionRowsDims &a, int maxLength) {
  const long long ctas = static_cast<long long>(a.rows) * a.hkv;
  const long long want = ceil_div<long long>(2LL * sm_count() * 4, std::max<long long>(1, ctas));
  return static_cast<int>(std::clamp<long long>(want, 1, std::max(1, ceil_div(maxLength, 256))));
}

struct RowsLayout {
  size_t table, opart, lse;
  size_t total() const { return table + opart + lse; }
};

RowsLayout rows_layout(const AttentionRowsDims &a, int splits) {
  RowsLayout l{align256(sizeof(RowKV) * a.rows), 0, 0};
  if (splits > 1) {
    const size_t rh = static_cast<size_t>(a.rows) * a.hq;
    l.opart = align256(sizeof(float) * splits * rh * a.dv);
    l.lse = align256(sizeof(float) * splits * rh);
  }
  return l;
}

// ---- scatter ---------------------------------------------------------------------------------------------

__global__ void scatter_rows_kernel(const uint32_t *x, uint32_t *const *dsts, size_t words) {
  const int row = blockIdx.y;
  const uint32_t *src = x + row * words;
  uint32_t *dst = dsts[row];
  for (size_t w = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; w < words;
       w += static_cast<size_t>(gridDim.x) * blockDim.x)
    dst[w] = src[w];
}

// ---- Mamba-2 step ----------------------------------------------------------------------------------------

struct MambaParams {
  const void *x, *bc, *dtRaw, *w, *bias, *D;
  DT wDt, dDt;
  const float *dtBias, *A;
  const MambaRowState *states;
  void *xbc;  // conv output [rows, convDim]
  float *dt;  // [rows, heads]
  void *y;
  MambaStepDims d;
  int convDim;
};

template <typename T>
__global__ void mamba_conv_rows(MambaParams p) {
  const int per = p.convDim + p.d.heads;
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<size_t>(p.d.rows) * per) return;
  const int r = static_cast<int>(i / per), c = static_cast<int>(i % per);
  if (c >= p.convDim) {
    const int h = c - p.convDim;
    float v = to_f32(static_cast<const T *>(p.dtRaw)[static_cast<size_t>(r) * p.d.heads + h]) + p.dtBias[h];
    v = v > 20.f ? v : log1pf(expf(v));
    v = fminf(fmaxf(v, p.d.dtMin), p.d.dtMax);
    p.dt[static_cast<size_t>(r) * p.d.heads + h] = v;
    return;
  }
  const int gd2 = 2 * p.d.groups * p.d.dState, W = p.d.width;
  const T in = c < p.d.dInner ? static_cast<const T *>(p.x)[static_cast<size_t>(r) * p.d.dInner + c]
                              : static_cast<const T *>(p.bc)[static_cast<size_t>(r) * gd2 + c - p.d.dInner];
  T *st = static_cast<T *>(p.states[r].conv) + c;
  float acc = p.bias ? load_w(p.bias, p.wDt, c) : 0.f;
  for (int k = 0; k < W - 1; ++k) acc += load_w(p.w, p.wDt, c * W + k) * to_f32(st[k * p.convDim]);
  acc += load_w(p.w, p.wDt, c * W + W - 1) * to_f32(in);
  for (int k = 0; k + 1 < W - 1; ++k) st[k * p.convDim] = st[(k + 1) * p.convDim];
  if (W > 1) st[(W - 2) * p.convDim] = in;
  acc = acc / (1.f + expf(-acc));
  store_f32(static_cast<T *>(p.xbc), static_cast<size_t>(r) * p.convDim + c, acc);
}

template <typename T>
__global__ void mamba_ssm_rows(MambaParams p) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int H = p.d.heads, P = p.d.headDim, N = p.d.dState, G = p.d.groups;
  const size_t row = static_cast<size_t>(blockIdx.x) * (blockDim.x >> 5) + warp;  // (r, h, p)
  if (row >= static_cast<size_t>(p.d.rows) * H * P) return;
  const int hp = static_cast<int>(row % (static_cast<size_t>(H) * P)), r = static_cast<int>(row / (H * P));
  const int h = hp / P, grp = h / (H / G);
  const T *xbc = static_cast<const T *>(p.xbc) + static_cast<size_t>(r) * p.convDim;
  const float d = p.dt[static_cast<size_t>(r) * H + h];
  const float decay = __expf(d * p.A[h]);
  const float xv = to_f32(xbc[hp]);
  const T *Bv = xbc + p.d.dInner + grp * N;
  const T *Cv = xbc + p.d.dInner + G * N + grp * N;
  float *s = p.states[r].ssm + static_cast<size_t>(hp) * N;
  float acc = 0.f;
  for (int n = lane; n < N; n += 32) {
    const float v = s[n] * decay + d * xv * to_f32(Bv[n]);
    s[n] = v;
    acc += v * to_f32(Cv[n]);
  }
  for (int o = 16; o; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
  if (lane == 0) {
    const float Dh = p.D ? load_w(p.D, p.dDt, h) : 0.f;
    store_f32(static_cast<T *>(p.y), static_cast<size_t>(r) * p.d.dInner + hp, acc + Dh * xv);
  }
}

struct MambaLayout {
  size_t table, xbc, dt;
  size_t total() const { return table + xbc + dt; }
};

MambaLayout mamba_layout(const MambaStepDims &d, DT dt) {
  const size_t convDim = d.dInner + 2 * static_cast<size_t>(d.groups) * d.dState;
  return {align256(sizeof(MambaRowState) * d.rows), align256(dt_bytes(dt) * d.rows * convDim),
          align256(sizeof(float) * d.rows * d.heads)};
}

}  // namespace

size_t attention_rows_workspace_bytes(const AttentionRowsDims &a, int maxLength) {
  return rows_layout(a, rows_splits(a, maxLength)).total();
}

void attention_rows(void *out, const void *q, const RowKV *kvsHost, const AttentionRowsDims &a, int maxLength,
                    DT dt, void *workspace, size_t workspaceBytes, cudaStream_t stream) {
  LS_REQUIRE(a.rows > 0 && a.hkv > 0 && a.hq % a.hkv == 0, "attention_rows: hq must be a multiple of hkv");
  LS_REQUIRE(a.d <= kMaxDim && a.dv <= kMaxDim, "attention_rows: head dims above 256 are not supported");
  const int splits = rows_splits(a, maxLength);
  const RowsLayout l = rows_layout(a, splits);
  LS_REQUIRE(workspaceBytes >= l.total(), "attention_rows: workspace too small");
  auto *ws = static_cast<unsigned char *>(workspace);
  LS_CUDA_CHECK(cudaMemcpyAsync(ws, kvsHost, sizeof(RowKV) * a.rows, cudaMemcpyHostToDevice, stream));
  RowsParams p{};
  p.q = q;
  p.out = out;
  p.kvs = reinterpret_cast<const RowKV *>(ws);
  p.opart = reinterpret_cast<float *>(ws + l.table);
  p.lse = reinterpret_cast<float *>(ws + l.table + l.opart);
  p.rows = a.rows;
  p.hq = a.hq;
  p.hkv = a.hkv;
  p.d = a.d;
  p.dv = a.dv;
  p.G = a.hq / a.hkv;
  p.splits = splits;
  p.warps = std::min(p.G, kMaxWarps);
  p.scale = a.scale;
  const size_t V = 16 / dt_bytes(dt);
  p.vec = a.d % V == 0;
  for (int i = 0; i < a.rows && p.vec; ++i)
    p.vec = aligned_to(kvsHost[i].k, 16) && (!kvsHost[i].prefixLength || aligned_to(kvsHost[i].pk, 16));
  const dim3 grid(splits, a.rows * a.hkv);
  LS_DISPATCH_DT(dt, T, {
    attn_rows_kernel<T><<<grid, p.warps * 32, 0, stream>>>(p);
    LS_CHECK_LAUNCH();
    if (splits > 1) {
      const size_t rh = static_cast<size_t>(a.rows) * a.hq, n = rh * a.dv;
      attn_rows_combine<T><<<static_cast<unsigned>(ceil_div<size_t>(n, 256)), 256, 0, stream>>>(
          p.opart, p.lse, static_cast<T *>(out), splits, rh, a.dv);
      LS_CHECK_LAUNCH();
    }
  });
}

void scatter_rows(const void *x, void *const *dstsHost, int rows, size_t rowBytes, void *workspace,
                  cudaStream_t stream) {
  LS_REQUIRE(rowBytes % 4 == 0, "scatter_rows: rows must be a multiple of 4 bytes");
  if (!rows || !rowBytes) return;
  LS_CUDA_CHECK(cudaMemcpyAsync(workspace, dstsHost, sizeof(void *) * rows, cudaMemcpyHostToDevice, stream));
  const size_t words = rowBytes / 4;
  const dim3 grid(static_cast<unsigned>(std::min<size_t>(ceil_div<size_t>(words, 256), 64)), rows);
  scatter_rows_kernel<<<grid, 256, 0, stream>>>(static_cast<const uint32_t *>(x),
                                                static_cast<uint32_t *const *>(workspace), words);
  LS_CHECK_LAUNCH();
}

size_t mamba_step_rows_workspace_bytes(const MambaStepDims &d, DT dt) { return mamba_layout(d, dt).total(); }

void mamba_step_rows(void *y, const void *x, const void *bc, const void *dtRaw, const void *convWeight,
                     const void *convBias, DT wDt, const float *dtBias, const float *A, const void *D, DT dDt,
                     const MambaRowState *statesHost, const MambaStepDims &d, DT dt, void *workspace,
                     size_t workspaceBytes, cudaStream_t stream) {
  LS_REQUIRE(d.rows > 0 && d.groups > 0 && d.heads % d.groups == 0 && d.dInner == d.heads * d.headDim,
             "mamba_step_rows: inconsistent dims");
  const MambaLayout l = mamba_layout(d, dt);
  LS_REQUIRE(workspaceBytes >= l.total(), "mamba_step_rows: workspace too small");
  auto *ws = static_cast<unsigned char *>(workspace);
  LS_CUDA_CHECK(
      cudaMemcpyAsync(ws, statesHost, sizeof(MambaRowState) * d.rows, cudaMemcpyHostToDevice, stream));
  MambaParams p{x, bc, dtRaw, convWeight, convBias, D, wDt, dDt, dtBias, A,
                reinterpret_cast<const MambaRowState *>(ws), ws + l.table,
                reinterpret_cast<float *>(ws + l.table + l.xbc), y, d,
                d.dInner + 2 * d.groups * d.dState};
  const size_t convThreads = static_cast<size_t>(d.rows) * (p.convDim + d.heads);
  const size_t ssmRows = static_cast<size_t>(d.rows) * d.heads * d.headDim;
  LS_DISPATCH_DT(dt, T, {
    mamba_conv_rows<T><<<static_cast<unsigned>(ceil_div<size_t>(convThreads, 256)), 256, 0, stream>>>(p);
    LS_CHECK_LAUNCH();
    mamba_ssm_rows<T><<<static_cast<unsigned>(ceil_div<size_t>(ssmRows, 8)), 256, 0, stream>>>(p);
    LS_CHECK_LAUNCH();
  });
}
