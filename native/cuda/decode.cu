// Batched decode kernels (decode.h). Every sequence keeps its own buffers; the kernels find them through a
// small table uploaded per launch, so N sequences cost one launch instead of N.
//  - attention_rows: split-KV flash-decoding. A CTA (128 threads) per (task, kv head, key split), where a task
//    is up to 16 query vectors that read the same keys: the heads of one GQA group of a row over its own keys,
//    or of several rows over the prefix they share. K and V tiles of 64 keys go through shared memory once for
//    all of them (16-byte cp.async copies, all of a tile's in flight at once), scores and P·V run from
//    shared memory in f32 with an online softmax; every split writes its normalised partial and log-sum-exp,
//    and a second kernel merges a row's splits (own keys and prefix) in f32.
//  - scatter_rows: the new K (or V) row of every sequence into its cache at its own position (destinations
//    passed by value, 32 to a launch: no table upload).
//  - mamba_step_rows: kernel 1 runs the causal conv over [state; x‖B‖C] (+ bias, SiLU) for every channel and
//    advances the conv states, and dt = clamp(softplus(dt + dt_bias)); kernel 2 is the SSM update, a warp per
//    (sequence, head, channel) as ssm_step does, with each sequence's state found through the table.
#include "decode.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "attention.h"
#include "attention_rule.cuh"
#include "device_util.cuh"
#include "mma_util.cuh"

namespace {

__device__ __forceinline__ float load_w(const void *p, DT t, int i) {
  return t == DT::F32 ? static_cast<const float *>(p)[i] : __bfloat162float(static_cast<const __nv_bfloat16 *>(p)[i]);
}

// ---- attention_rows --------------------------------------------------------------------------------------

constexpr int kMaxDim = 256;
constexpr int kTK = 64;        // keys per shared-memory tile
constexpr int kThreads = 128;  // per CTA
constexpr int kMaxQ = 16;      // query vectors per CTA: heads of one GQA group × rows sharing a prefix
constexpr int kQLanes = kThreads / kTK;                       // threads scoring one key
constexpr int kQPer = kMaxQ / kQLanes;                        // scores per thread per tile
constexpr int kOPer = kMaxQ * (kMaxDim / 8) / kThreads;       // 8-column output packs per thread
static_assert(kTK == 64, "the softmax pass gives each lane two keys of a tile");

/**
 * One CTA's work (with the kv head from blockIdx.x and the key split blockIdx.y): heads [h0, h0 + nh) of the
 * GQA group of `nrows` rows, over the first `len` rows of k/v [len, hkv, d|dv]. part 0 is a row's own keys,
 * part 1 its prefix's (shared by the rows of the task, so each K/V tile of the prefix is read once for them).
 */
struct RowsTask {
  const void *k, *v;
  int len, part, h0, nh, nrows;
  int rows[kMaxQ];
};

struct RowsParams {
  const void *q;
  const RowsTask *tasks;
  float *opart, *lse;  // [2, splits, rows·hq, dv], [2, splits, rows·hq]: normalised partials and log-sum-exp
  int rows, hq, hkv, d, dv, G, splits, per, dp, dvp;  // per: keys per split; dp, dvp: d, dv rounded up to 8
  float scale;
  bool vec;  // 16-byte global loads (dims a multiple of the pack, 16-byte aligned buffers)
};

/** Shared-memory row strides (elements): 16 bytes of padding keep the 16-byte reads of 8 lanes conflict-free. */
template <typename T>
__host__ __device__ inline int rows_stride(int dim8) {
  return dim8 + 16 / static_cast<int>(sizeof(T));
}

template <typename T>
__host__ __device__ inline size_t rows_smem_bytes(int dp, int dvp) {
  return sizeof(T) * kTK * (rows_stride<T>(dp) + rows_stride<T>(dvp)) +
         sizeof(float) * (kMaxQ * dp + kMaxQ * kTK + 3 * kMaxQ);
}

/**
 * 8 elements from global to shared memory, zeros past `valid`: 16-byte cp.async copies when `vec` (pieces are
 * then whole: valid is a multiple of one), else scalar loads.
 */
template <typename T>
__device__ __forceinline__ void tile8(T *dst, const T *src, int valid, bool vec) {
  if (vec) {
    constexpr int per = 16 / sizeof(T);
#pragma unroll
    for (int e = 0; e < 8; e += per) cp_async16(dst + e, src + e, e < valid ? 16 : 0);
  } else {
#pragma unroll
    for (int e = 0; e < 8; ++e) dst[e] = e < valid ? src[e] : from_f32<T>(0.f);
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads) attn_rows_kernel(RowsParams p) {
  extern __shared__ __align__(16) unsigned char smem[];
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const RowsTask &task = p.tasks[blockIdx.x / p.hkv];
  const int hk = blockIdx.x % p.hkv, split = blockIdx.y;
  const int nh = task.nh, nq = task.nrows * nh, part = task.part;
  const int lo = min(task.len, split * p.per), hi = min(task.len, lo + p.per);
  const size_t rowHeads = static_cast<size_t>(p.rows) * p.hq;
  // Query vector i: head hk·G + h0 + i % nh of row rows[i / nh]; its partial's slot in opart/lse.
  auto rh_of = [&](int i) {
    return static_cast<size_t>(task.rows[i / nh]) * p.hq + hk * p.G + task.h0 + i % nh;
  };
  auto slot_of = [&](int i) { return (static_cast<size_t>(part) * p.splits + split) * rowHeads + rh_of(i); };
  if (lo >= hi) {  // an empty split still says so, for the combine
    for (int i = tid; i < nq; i += kThreads) p.lse[slot_of(i)] = -INFINITY;
    return;
  }
  const int ks = rows_stride<T>(p.dp), vs = rows_stride<T>(p.dvp);
  T *sK = reinterpret_cast<T *>(smem);
  T *sV = sK + kTK * ks;
  float *sQ = reinterpret_cast<float *>(sV + kTK * vs);  // [nq, dp], scaled
  float *sS = sQ + kMaxQ * p.dp;                          // [nq, kTK]: scores, then probabilities
  float *sM = sS + kMaxQ * kTK, *sL = sM + kMaxQ, *sA = sL + kMaxQ;  // running max, sum; this tile's rescale
  for (int idx = tid; idx < nq * p.dp; idx += kThreads) {
    const int i = idx / p.dp, e = idx % p.dp;
    sQ[idx] = e < p.d ? to_f32(static_cast<const T *>(p.q)[rh_of(i) * p.d + e]) * p.scale : 0.f;
  }
  for (int i = tid; i < nq; i += kThreads) {
    sM[i] = -INFINITY;
    sL[i] = 0.f;
  }
  const size_t kStride = static_cast<size_t>(p.hkv) * p.d, vStride = static_cast<size_t>(p.hkv) * p.dv;
  const T *K = static_cast<const T *>(task.k) + static_cast<size_t>(hk) * p.d;
  const T *V = static_cast<const T *>(task.v) + static_cast<size_t>(hk) * p.dv;
  const int kc = p.dp / 8, vc = p.dvp / 8;
  const int key = tid % kTK, q0 = tid / kTK;
  float acc[kOPer][8];
#pragma unroll
  for (int i = 0; i < kOPer; ++i)
#pragma unroll
    for (int e = 0; e < 8; ++e) acc[i][e] = 0.f;

  for (int j0 = lo; j0 < hi; j0 += kTK) {
    const int n = min(kTK, hi - j0);
    // K and V tiles as cp.async copies, all in flight at once (rows past n are left as they are: their
    // scores are masked and their V rows are not read).
    for (int idx = tid; idx < n * kc; idx += kThreads) {
      const int r = idx / kc, c = (idx % kc) * 8;
      tile8<T>(sK + r * ks + c, K + (j0 + r) * kStride + c, p.d - c, p.vec);
    }
    for (int idx = tid; idx < n * vc; idx += kThreads) {
      const int r = idx / vc, c = (idx % vc) * 8;
      tile8<T>(sV + r * vs + c, V + (j0 + r) * vStride + c, p.dv - c, p.vec);
    }
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();
    // Scores: a thread owns one key and every kQLanes-th query vector (a warp shares its query: broadcasts).
    float s[kQPer];
#pragma unroll
    for (int j = 0; j < kQPer; ++j) s[j] = 0.f;
    if (key < n)
      for (int c = 0; c < p.dp; c += 8) {
        float kf[8];
        load_pack<T, 8>(sK + key * ks, c, kf);
#pragma unroll
        for (int j = 0; j < kQPer; ++j) {
          const int qi = q0 + kQLanes * j;
          if (qi < nq) {
            const float4 a = *reinterpret_cast<const float4 *>(sQ + qi * p.dp + c);
            const float4 b = *reinterpret_cast<const float4 *>(sQ + qi * p.dp + c + 4);
            s[j] += a.x * kf[0] + a.y * kf[1] + a.z * kf[2] + a.w * kf[3] + b.x * kf[4] + b.y * kf[5] +
                    b.z * kf[6] + b.w * kf[7];
          }
        }
      }
#pragma unroll
    for (int j = 0; j < kQPer; ++j) {
      const int qi = q0 + kQLanes * j;
      if (qi < nq) sS[qi * kTK + key] = key < n ? s[j] : -INFINITY;
    }
    __syncthreads();
    // Online softmax, a warp per query vector (f32; the tile has at least one key, so the max is finite).
    for (int qi = warp; qi < nq; qi += kThreads / 32) {
      float *row = sS + qi * kTK;
      const float a = row[lane], b = row[lane + 32];
      const float mold = sM[qi], mnew = fmaxf(mold, warp_max(fmaxf(a, b)));
      const float pa = __expf(a - mnew), pb = __expf(b - mnew);
      row[lane] = pa;
      row[lane + 32] = pb;
      const float sum = warp_sum(pa + pb);
      __syncwarp();
      if (lane == 0) {
        const float alpha = __expf(mold - mnew);
        sA[qi] = alpha;
        sL[qi] = sL[qi] * alpha + sum;
        sM[qi] = mnew;
      }
    }
    __syncthreads();
    // O += P·V: a thread owns 8 columns of up to kOPer query vectors.
#pragma unroll
    for (int i = 0; i < kOPer; ++i) {
      const int idx = tid + kThreads * i;
      if (idx < nq * vc) {
        const int qi = idx / vc, c = (idx % vc) * 8;
        const float alpha = sA[qi];
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[i][e] *= alpha;
        const float *pr = sS + qi * kTK;
        for (int r = 0; r < n; ++r) {
          float vf[8];
          load_pack<T, 8>(sV + r * vs, c, vf);
          const float w = pr[r];
#pragma unroll
          for (int e = 0; e < 8; ++e) acc[i][e] += w * vf[e];
        }
      }
    }
    __syncthreads();  // the next tile overwrites sK, sV and sS
  }
#pragma unroll
  for (int i = 0; i < kOPer; ++i) {
    const int idx = tid + kThreads * i;
    if (idx < nq * vc) {
      const int qi = idx / vc, c = (idx % vc) * 8;
      const float inv = 1.f / sL[qi];
      float *o = p.opart + slot_of(qi) * p.dv;
#pragma unroll
      for (int e = 0; e < 8; ++e)
        if (c + e < p.dv) o[c + e] = acc[i][e] * inv;
    }
  }
  for (int i = tid; i < nq; i += kThreads) p.lse[slot_of(i)] = sM[i] + logf(sL[i]);
}

/** out[row, h] = the partials of its splits (own keys, then the prefix's when it has one) merged by their lse. */
template <typename T>
__global__ void attn_rows_combine(const float *opart, const float *lse, const int *parts, T *out, int splits,
                                  int hq, size_t rowHeads, int dv) {
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rowHeads * dv) return;
  const size_t rh = i / dv;
  const int n = parts[rh / hq] * splits;
  float M = -INFINITY;
  for (int s = 0; s < n; ++s) M = fmaxf(M, lse[s * rowHeads + rh]);
  float num = 0.f, den = 0.f;
  for (int s = 0; s < n; ++s) {
    const float l = lse[s * rowHeads + rh];
    if (l == -INFINITY) continue;  // an empty split wrote no partial
    const float w = __expf(l - M);
    num += w * opart[s * rowHeads * dv + i];
    den += w;
  }
  store_f32(out, i, den > 0.f ? num / den : 0.f);
}

int device_attr(cudaDeviceAttr attr) {
  int dev, v;
  LS_CUDA_CHECK(cudaGetDevice(&dev));
  LS_CUDA_CHECK(cudaDeviceGetAttribute(&v, attr, dev));
  return v;
}

int sm_count() {
  static const int n = device_attr(cudaDevAttrMultiProcessorCount);
  return n;
}

/**
 * Keys several rows read (a shared prefix, or own keys that are the same buffer: Vamba's video K/V) taken by
 * flash_fwd's tensor-core tiles, the rows as its queries: split-K partials in its layout, then merged into the
 * rows' slot of that part.
 */
struct FlashGroup {
  const void *k, *v;
  int len, part, n, splits;
  size_t rowsAt;           // offset of the group's row indices in the uploaded int table
  size_t q, opart, lse;    // workspace offsets: the rows' queries gathered (when not q itself), partials
  bool gather;
};

/** The CTAs of one call: tasks, which rows have a prefix, keys per split, and the workspace they take. */
struct RowsPlan {
  std::vector<RowsTask> tasks;
  std::vector<FlashGroup> flash;
  std::vector<int> ints;   // per row: 1, or 2 with a prefix; then the flash groups' row indices
  int splits = 1, per = kTK;
  size_t table = 0, intsBytes = 0, opart = 0, lse = 0, flashBytes = 0;
  size_t total() const { return table + intsBytes + opart + lse + flashBytes; }
};

/** The attention_partials dims of n rows over len shared keys. */
AttentionDims flash_dims(const AttentionRowsDims &a, int n, int len) {
  return {1, n, len, len, a.hq, a.hkv, a.d, a.dv, a.scale, false, 0, 0, 0, false};
}

/**
 * Groups the rows' key parts (own keys, prefix) by buffer and length; a group of several rows goes to flash_fwd
 * where it can (bf16, head dims it has tiles for, aligned buffers: `q` aligned too), else to tasks of up to
 * kMaxQ query vectors that read each tile once.
 */
RowsPlan plan_rows(const AttentionRowsDims &a, const RowKV *kvs, const void *q, DT dt) {
  RowsPlan pl;
  const int G = a.hq / a.hkv, nh = std::min(G, kMaxQ), perTask = std::max(1, kMaxQ / nh);
  auto add = [&](const void *k, const void *v, int len, int part, const std::vector<int> &rows) {
    for (size_t r0 = 0; r0 < rows.size(); r0 += perTask)
      for (int h0 = 0; h0 < G; h0 += nh) {
        RowsTask t{k, v, len, part, h0, std::min(nh, G - h0), 0, {}};
        for (size_t r = r0; r < rows.size() && r < r0 + perTask; ++r) t.rows[t.nrows++] = rows[r];
        pl.tasks.push_back(t);
      }
  };
  pl.ints.assign(a.rows, 1);
  for (int i = 0; i < a.rows; ++i)
    if (kvs[i].prefixLength) pl.ints[i] = 2;
  struct Keys {
    const void *k, *v;
    int len;
  };
  auto keys = [&](int i, int part) {
    const RowKV &r = kvs[i];
    return part ? Keys{r.pk, r.pv, r.prefixLength} : Keys{r.k, r.v, r.length};
  };
  size_t ws = 0;
  for (int part = 0; part < 2; ++part) {
    std::vector<bool> grouped(a.rows, false);
    for (int i = 0; i < a.rows; ++i) {
      const Keys ki = keys(i, part);
      if (grouped[i] || (part == 1 && !ki.len)) continue;
      std::vector<int> same;
      for (int j = i; j < a.rows; ++j) {
        const Keys kj = keys(j, part);
        if (!grouped[j] && kj.k == ki.k && kj.v == ki.v && kj.len == ki.len) {
          same.push_back(j);
          grouped[j] = true;
        }
      }
      const int n = static_cast<int>(same.size());
      const AttentionDims fd = flash_dims(a, n, ki.len);
      const bool identity = n == a.rows;  // then same is 0, 1, …, rows − 1: q as it is
      if (n < 2 || !ki.len || !attention_partials_supported(fd, dt, identity ? q : ki.k, ki.k, ki.v)) {
        add(ki.k, ki.v, ki.len, part, same);
        continue;
      }
      FlashGroup g{ki.k, ki.v, ki.len, part, n, attention_partials_splits(fd), pl.ints.size(), 0, 0, 0, !identity};
      pl.ints.insert(pl.ints.end(), same.begin(), same.end());
      const size_t qv = static_cast<size_t>(n) * a.hq;
      if (g.gather) {
        g.q = ws;
        ws += align256(dt_bytes(dt) * qv * a.d);
      }
      g.opart = ws;
      ws += align256(sizeof(float) * g.splits * qv * a.dv);
      g.lse = ws;
      ws += align256(sizeof(float) * g.splits * qv);
      pl.flash.push_back(g);
    }
  }
  pl.flashBytes = ws;
  // Keys per split: the whole key work spread over about two waves of CTAs, at least 4 tiles each.
  long long work = 0;
  int longest = 0;
  for (const RowsTask &t : pl.tasks) {
    work += static_cast<long long>(t.len) * a.hkv;
    longest = std::max(longest, t.len);
  }
  const long long perCta = ceil_div<long long>(std::max(work, 1LL), 8LL * sm_count());
  pl.per = static_cast<int>(std::max<long long>(4 * kTK, ceil_div<long long>(perCta, kTK) * kTK));
  pl.splits = std::max(1, ceil_div(longest, pl.per));
  const size_t rh = static_cast<size_t>(a.rows) * a.hq;
  pl.table = align256(sizeof(RowsTask) * std::max<size_t>(1, pl.tasks.size()));
  pl.intsBytes = align256(sizeof(int) * pl.ints.size());
  pl.opart = align256(sizeof(float) * 2 * pl.splits * rh * a.dv);
  pl.lse = align256(sizeof(float) * 2 * pl.splits * rh);
  return pl;
}

/** q rows rowsOf[0..n) of q [rows, words] into dst [n, words] (32-bit words). */
__global__ void gather_rows_kernel(uint32_t *dst, const uint32_t *q, const int *rowsOf, size_t words, int n) {
  const size_t total = static_cast<size_t>(n) * words;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<size_t>(gridDim.x) * blockDim.x)
    dst[i] = q[static_cast<size_t>(rowsOf[i / words]) * words + i % words];
}

/**
 * A flash group's partials (fo [S, n·hq, dv], fl [S, n·hq] in log2 units) merged per (row, head) into the rows'
 * slot (part, split 0) with a natural-log lse, as attn_rows_kernel writes its own; the part's other splits of
 * those rows say "empty" (−inf) for attn_rows_combine.
 */
__global__ void rows_from_flash(float *opart, float *lse, const float *fo, const float *fl, const int *rowsOf,
                                int n, int S, int part, int splits, int hq, size_t rowHeads, int dv) {
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x, nq = static_cast<size_t>(n) * hq;
  if (i >= nq * dv) return;
  const size_t gq = i / dv;
  const int c = static_cast<int>(i % dv);
  const size_t rh = static_cast<size_t>(rowsOf[gq / hq]) * hq + gq % hq;
  const size_t base = static_cast<size_t>(part) * splits;
  float l2;
  opart[(base * rowHeads + rh) * dv + c] = merge_log2_partials(fo, fl, S, nq, gq, dv, c, &l2);
  if (c == 0) {
    lse[base * rowHeads + rh] = l2 * 0.69314718f;  // natural log, as attn_rows_kernel writes (−inf stays)
    for (int s = 1; s < splits; ++s) lse[(base + s) * rowHeads + rh] = -INFINITY;
  }
}

// ---- scatter ---------------------------------------------------------------------------------------------

constexpr int kScatterRows = 32;  // destinations passed by value per launch (no table upload)
struct ScatterDsts {
  uint32_t *p[kScatterRows];
};

__global__ void scatter_rows_kernel(const uint32_t *x, ScatterDsts dsts, size_t words) {
  const int row = blockIdx.y;
  const uint32_t *src = x + row * words;
  uint32_t *dst = dsts.p[row];
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

size_t attention_rows_workspace_bytes(const AttentionRowsDims &a, const RowKV *kvsHost, const void *q, DT dt) {
  return plan_rows(a, kvsHost, q, dt).total();
}

void attention_rows(void *out, const void *q, const RowKV *kvsHost, const AttentionRowsDims &a, DT dt,
                    void *workspace, size_t workspaceBytes, cudaStream_t stream) {
  LS_REQUIRE(a.rows > 0 && a.hkv > 0 && a.hq % a.hkv == 0, "attention_rows: hq must be a multiple of hkv");
  LS_REQUIRE(a.d <= kMaxDim && a.dv <= kMaxDim, "attention_rows: head dims above 256 are not supported");
  const RowsPlan pl = plan_rows(a, kvsHost, q, dt);
  LS_REQUIRE(workspaceBytes >= pl.total(), "attention_rows: workspace too small");
  auto *ws = static_cast<unsigned char *>(workspace);
  // The task table, the rows' part counts and the flash groups' rows go up in one copy.
  std::vector<unsigned char> host(pl.table + pl.intsBytes);
  std::memcpy(host.data(), pl.tasks.data(), sizeof(RowsTask) * pl.tasks.size());
  std::memcpy(host.data() + pl.table, pl.ints.data(), sizeof(int) * pl.ints.size());
  LS_CUDA_CHECK(cudaMemcpyAsync(ws, host.data(), host.size(), cudaMemcpyHostToDevice, stream));
  const int *ints = reinterpret_cast<const int *>(ws + pl.table);
  RowsParams p{};
  p.q = q;
  p.tasks = reinterpret_cast<const RowsTask *>(ws);
  p.opart = reinterpret_cast<float *>(ws + pl.table + pl.intsBytes);
  p.lse = reinterpret_cast<float *>(ws + pl.table + pl.intsBytes + pl.opart);
  p.rows = a.rows;
  p.hq = a.hq;
  p.hkv = a.hkv;
  p.d = a.d;
  p.dv = a.dv;
  p.G = a.hq / a.hkv;
  p.splits = pl.splits;
  p.per = pl.per;
  p.dp = ceil_div(a.d, 8) * 8;
  p.dvp = ceil_div(a.dv, 8) * 8;
  p.scale = a.scale;
  const int V = static_cast<int>(16 / dt_bytes(dt));
  p.vec = a.d % V == 0 && a.dv % V == 0;
  for (const RowsTask &t : pl.tasks) p.vec = p.vec && aligned_to(t.k, 16) && aligned_to(t.v, 16);
  const size_t rh = static_cast<size_t>(a.rows) * a.hq, n = rh * a.dv;
  unsigned char *fws = ws + pl.table + pl.intsBytes + pl.opart + pl.lse;
  const size_t words = static_cast<size_t>(a.hq) * a.d * dt_bytes(dt) / 4;  // one query row, 32-bit words
  for (const FlashGroup &g : pl.flash) {
    const void *gq = q;
    if (g.gather) {
      gq = fws + g.q;
      gather_rows_kernel<<<static_cast<unsigned>(std::min<size_t>(ceil_div<size_t>(g.n * words, 256), 1024)), 256, 0,
                           stream>>>(reinterpret_cast<uint32_t *>(fws + g.q), static_cast<const uint32_t *>(q),
                                     ints + g.rowsAt, words, g.n);
      LS_CHECK_LAUNCH();
    }
    float *fo = reinterpret_cast<float *>(fws + g.opart), *fl = reinterpret_cast<float *>(fws + g.lse);
    attention_partials(fo, fl, g.splits, gq, g.k, g.v, flash_dims(a, g.n, g.len), stream);
    const size_t m = static_cast<size_t>(g.n) * a.hq * a.dv;
    rows_from_flash<<<static_cast<unsigned>(ceil_div<size_t>(m, 256)), 256, 0, stream>>>(
        p.opart, p.lse, fo, fl, ints + g.rowsAt, g.n, g.splits, g.part, pl.splits, a.hq, rh, a.dv);
    LS_CHECK_LAUNCH();
  }
  LS_DISPATCH_DT(dt, T, {
    if (!pl.tasks.empty()) {
      // Tasks (× kv heads) vary fastest: the tasks of one shared prefix read each split's tiles at about the
      // same time, so all but the first find them in L2.
      const dim3 grid(static_cast<unsigned>(pl.tasks.size() * a.hkv), pl.splits);
      const size_t smem = rows_smem_bytes<T>(p.dp, p.dvp);
      if (smem > 48 * 1024)
        LS_REQUIRE(smem <= static_cast<size_t>(device_attr(cudaDevAttrMaxSharedMemoryPerBlockOptin)),
                   "attention_rows: head dims too large for this GPU's shared memory in f32 (use bf16)");
      allow_smem<&attn_rows_kernel<T>>(smem);
      attn_rows_kernel<T><<<grid, kThreads, smem, stream>>>(p);
      LS_CHECK_LAUNCH();
    }
    attn_rows_combine<T><<<static_cast<unsigned>(ceil_div<size_t>(n, 256)), 256, 0, stream>>>(
        p.opart, p.lse, ints, static_cast<T *>(out), pl.splits, a.hq, rh, a.dv);
    LS_CHECK_LAUNCH();
  });
}

void scatter_rows(const void *x, void *const *dsts, int rows, size_t rowBytes, cudaStream_t stream) {
  LS_REQUIRE(rowBytes % 4 == 0, "scatter_rows: rows must be a multiple of 4 bytes");
  if (!rows || !rowBytes) return;
  const size_t words = rowBytes / 4;
  for (int r0 = 0; r0 < rows; r0 += kScatterRows) {
    const int n = std::min(kScatterRows, rows - r0);
    ScatterDsts d{};
    for (int i = 0; i < n; ++i) d.p[i] = static_cast<uint32_t *>(dsts[r0 + i]);
    const dim3 grid(static_cast<unsigned>(std::min<size_t>(ceil_div<size_t>(words, 256), 64)), n);
    scatter_rows_kernel<<<grid, 256, 0, stream>>>(static_cast<const uint32_t *>(x) + r0 * words, d, words);
    LS_CHECK_LAUNCH();
  }
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
