// Row-wise kernels: RMSNorm (plain, gated, grouped), LayerNorm and softmax; statistics in f32.
// RMSNorm and LayerNorm rows of up to kRowPacks 16-byte packs (every model width we meet) take the row
// kernels: S lanes own one row (or group), each holding R ≤ 4 of its packs raw in registers with all their
// loads in flight at once, reduce with warp shuffles (and, for S > 32, one shared-memory exchange between the
// row's warps) and write the result in the same pass — one read and one write of the row. Longer rows and
// softmax use one block per row.
#include "device_util.cuh"
#include "kernels.h"

namespace {

// __fdividef (2 ulp): the IEEE division made the gated RMSNorm issue-bound.
__device__ __forceinline__ float silu(float v) { return __fdividef(v, 1.f + __expf(-v)); }

constexpr int kRowThreads = 256;
/** Longest row (in packs) of the row kernels: 256 lanes × 4 packs. */
constexpr int64_t kRowPacks = kRowThreads * 4;

/**
 * What a row kernel does besides normalising: nothing, gating (RMSNorm) or adding a residual first. A
 * compile-time choice, so each kernel holds registers only for the operands it reads.
 */
enum class RowMode { Plain, Gated, Residual };
/**
 * Blocks per SM a row kernel's register budget must allow, and whether it loads its weights before the
 * reduction. Swept on an H200 (docs/cuda-kernels.md): the gated RMSNorm gains from both (65 → 73% of copy
 * bandwidth), the residual LayerNorm from early weights; elsewhere they cost up to a third.
 */
constexpr int row_min_blocks(RowMode m) { return m == RowMode::Gated ? 4 : 1; }
constexpr bool rms_early_weight(RowMode m) { return m == RowMode::Gated; }
constexpr bool ln_early_weight(RowMode m) { return m == RowMode::Residual; }

/**
 * Sum over the S lanes that own this thread's row (S a power of two ≤ kRowThreads, rows aligned to S within
 * the block). Every thread of the block must call it (S > 32 synchronises the block).
 */
template <int S>
__device__ __forceinline__ float group_sum(float v) {
  if constexpr (S <= 32) {
    const unsigned mask = S == 32 ? 0xffffffffu : ((1u << S) - 1) << (threadIdx.x & 31 & ~(S - 1));
#pragma unroll
    for (int o = S / 2; o > 0; o >>= 1) v += __shfl_xor_sync(mask, v, o);
    return v;
  } else {
    __shared__ float part[kRowThreads / 32];
    v = warp_sum(v);
    const int warp = threadIdx.x >> 5, first = warp & ~(S / 32 - 1);
    if ((threadIdx.x & 31) == 0) part[warp] = v;
    __syncthreads();
    float r = 0.f;
#pragma unroll
    for (int w = 0; w < S / 32; w++) r += part[first + w];
    __syncthreads();  // part is reused by the next call
    return r;
  }
}

/**
 * Lane `l` of an S-lane group owns packs l, l + S, …, l + (R − 1)·S of its row: they are loaded raw (all R
 * loads issued before any use) and converted when used.
 */
template <typename T, int V, int S, int R>
struct RowPacks {
  Pack<T, V> raw[R];
  __device__ __forceinline__ void load(const T *p, int64_t len, int l, bool valid) {
#pragma unroll
    for (int r = 0; r < R; r++) {
      const int64_t i = int64_t(l + r * S) * V;
      if (valid && i < len) raw[r] = *reinterpret_cast<const Pack<T, V> *>(p + i);
    }
  }
  __device__ __forceinline__ void get(int r, float (&v)[V]) const {
#pragma unroll
    for (int j = 0; j < V; j++) v[j] = to_f32(raw[r].v[j]);
  }
  /**
   * The fused residual add: the packs become x + residual rounded to T (what an unfused add would store),
   * which is also written to `sum`. The residual's R loads are all issued before the first add.
   */
  __device__ __forceinline__ void add_residual(const T *residual, T *sum, int64_t len, int l, bool valid) {
    Pack<T, V> res[R];
#pragma unroll
    for (int r = 0; r < R; r++) {
      const int64_t i = int64_t(l + r * S) * V;
      if (valid && i < len) res[r] = *reinterpret_cast<const Pack<T, V> *>(residual + i);
    }
#pragma unroll
    for (int r = 0; r < R; r++) {
      const int64_t i = int64_t(l + r * S) * V;
      if (!(valid && i < len)) continue;
#pragma unroll
      for (int j = 0; j < V; j++) raw[r].v[j] = from_f32<T>(to_f32(raw[r].v[j]) + to_f32(res[r].v[j]));
      *reinterpret_cast<Pack<T, V> *>(sum + i) = raw[r];
    }
  }
};

/**
 * The input of a block-per-row norm: x itself, or with a residual (rows too long for the row kernels) the sum
 * x + residual, written to `sumOut` first by the element-wise add.
 */
template <typename T>
const T *block_norm_input(const void *x, const void *residual, void *sumOut, int64_t n, ET t, cudaStream_t s) {
  if (!residual) return static_cast<const T *>(x);
  const int64_t unit = 1;
  launch_binary(sumOut, x, residual, t, BinaryOp::Add, 1, &n, &unit, &unit, s);
  return static_cast<const T *>(sumOut);
}

/** RMSNorm over `groups` groups of groupSize values (a row of `dim` holds dim/groupSize groups). */
template <typename T, typename W, int V, int S, int R, RowMode M, int MinBlocks, bool EarlyW>
__global__ void __launch_bounds__(kRowThreads, MinBlocks) rms_norm_rows(T *__restrict__ out, const T *__restrict__ x,
                                                     const W *__restrict__ weight, const T *__restrict__ gate,
                                                     int64_t groups, int64_t dim, int64_t groupSize, float eps,
                                                     bool normBeforeGate, const T *__restrict__ residual,
                                                     T *__restrict__ sumOut) {
  const int64_t grp = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / S;
  const int l = threadIdx.x % S;
  const bool valid = grp < groups;  // no early exit: group_sum may synchronise the block
  const int64_t base = grp * groupSize, wbase = base % dim;
  constexpr bool kGate = M == RowMode::Gated;
  RowPacks<T, V, S, R> xs, gs;
  RowPacks<W, V, S, R> ws;
  xs.load(x + base, groupSize, l, valid);
  if constexpr (kGate) gs.load(gate + base, groupSize, l, valid);
  if constexpr (M == RowMode::Residual) xs.add_residual(residual + base, sumOut + base, groupSize, l, valid);
  if constexpr (EarlyW) ws.load(weight + wbase, groupSize, l, valid && weight);
  // Slot r of this lane holds data.
  auto live = [&](int r) { return valid && int64_t(l + r * S) * V < groupSize; };
  const bool gateFirst = kGate && !normBeforeGate;
  // z = x (·silu(gate) when gating first); recomputed in the second loop instead of holding f32 copies.
  auto z_of = [&](int r, float(&z)[V]) {
    xs.get(r, z);
    if (gateFirst) {
      float g[V];
      gs.get(r, g);
#pragma unroll
      for (int j = 0; j < V; j++) z[j] *= silu(g[j]);
    }
  };
  float ss = 0.f;
#pragma unroll
  for (int r = 0; r < R; r++) {
    if (!live(r)) continue;
    float z[V];
    z_of(r, z);
#pragma unroll
    for (int j = 0; j < V; j++) ss += z[j] * z[j];
  }
  const float inv = rsqrtf(group_sum<S>(ss) / static_cast<float>(groupSize) + eps);
#pragma unroll
  for (int r = 0; r < R; r++) {
    if (!live(r)) continue;
    const int64_t i = int64_t(l + r * S) * V;
    float z[V], w[V], g[V];
    z_of(r, z);
    if constexpr (EarlyW) {
      if (weight) ws.get(r, w);
    } else if (weight) {
      load_pack<W, V>(weight, wbase + i, w);
    }
    if (kGate && normBeforeGate) gs.get(r, g);
#pragma unroll
    for (int j = 0; j < V; j++) {
      float y = z[j] * inv;
      if (weight) y *= w[j];
      if (kGate && normBeforeGate) y *= silu(g[j]);
      z[j] = y;
    }
    store_pack<T, V>(out, base + i, z);
  }
}

/** LayerNorm over rows of `dim`; the variance is a second pass over the registers (no cancellation). */
template <typename T, typename W, int V, int S, int R, RowMode M, int MinBlocks, bool EarlyW>
__global__ void __launch_bounds__(kRowThreads, MinBlocks) layer_norm_rows(T *__restrict__ out, const T *__restrict__ x,
                                                       const W *__restrict__ weight, const W *__restrict__ bias,
                                                       int64_t rows, int64_t dim, float eps,
                                                       const T *__restrict__ residual, T *__restrict__ sumOut) {
  const int64_t row = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / S;
  const int l = threadIdx.x % S;
  const bool valid = row < rows;  // no early exit: group_sum may synchronise the block
  static_assert(M != RowMode::Gated, "LayerNorm has no gate");
  RowPacks<T, V, S, R> xs;
  RowPacks<W, V, S, R> ws, bs;
  xs.load(x + row * dim, dim, l, valid);
  if constexpr (M == RowMode::Residual) xs.add_residual(residual + row * dim, sumOut + row * dim, dim, l, valid);
  if constexpr (EarlyW) {
    ws.load(weight, dim, l, valid && weight);
    bs.load(bias, dim, l, valid && bias);
  }
  auto live = [&](int r) { return valid && int64_t(l + r * S) * V < dim; };
  float s = 0.f;
#pragma unroll
  for (int r = 0; r < R; r++) {
    if (!live(r)) continue;
    float v[V];
    xs.get(r, v);
#pragma unroll
    for (int j = 0; j < V; j++) s += v[j];
  }
  const float mean = group_sum<S>(s) / static_cast<float>(dim);
  float q = 0.f;
#pragma unroll
  for (int r = 0; r < R; r++) {
    if (!live(r)) continue;
    float v[V];
    xs.get(r, v);
#pragma unroll
    for (int j = 0; j < V; j++) q += (v[j] - mean) * (v[j] - mean);
  }
  const float inv = rsqrtf(group_sum<S>(q) / static_cast<float>(dim) + eps);
#pragma unroll
  for (int r = 0; r < R; r++) {
    if (!live(r)) continue;
    const int64_t i = int64_t(l + r * S) * V;
    float v[V], w[V], b[V];
    xs.get(r, v);
    if constexpr (EarlyW) {
      if (weight) ws.get(r, w);
      if (bias) bs.get(r, b);
    } else {
      if (weight) load_pack<W, V>(weight, i, w);
      if (bias) load_pack<W, V>(bias, i, b);
    }
#pragma unroll
    for (int j = 0; j < V; j++) {
      float y = (v[j] - mean) * inv;
      if (weight) y *= w[j];
      if (bias) y += b[j];
      v[j] = y;
    }
    store_pack<T, V>(out, row * dim + i, v);
  }
}

/**
 * Launches kernel<S, R> for `count` rows of `packs` packs (≤ kRowPacks): S the fewest lanes (8, 32, 64, 128
 * or 256) that hold the row in at most 4 packs each (R = 2 or 4).
 */
template <typename Launch>
void launch_row_kernel(int64_t count, int64_t packs, Launch launch) {
  auto go = [&](auto stag) {
    constexpr int S = decltype(stag)::value;
    const unsigned blocks = static_cast<unsigned>((count * S + kRowThreads - 1) / kRowThreads);
    if (packs <= 2 * S) launch(stag, std::integral_constant<int, 2>{}, blocks, unsigned(kRowThreads));
    else launch(stag, std::integral_constant<int, 4>{}, blocks, unsigned(kRowThreads));
  };
  if (packs <= 4 * 8) go(std::integral_constant<int, 8>{});
  else if (packs <= 4 * 32) go(std::integral_constant<int, 32>{});
  else if (packs <= 4 * 64) go(std::integral_constant<int, 64>{});
  else if (packs <= 4 * 128) go(std::integral_constant<int, 128>{});
  else go(std::integral_constant<int, 256>{});
}

// ---- one block per row: rows longer than kRowPacks packs, and softmax ----------------------------------------

/**
 * Each kernel keeps a thread's R packs of V values in registers between passes (one read of the row from
 * memory), for rows of up to 1024·R packs; R = 0 streams longer rows (vocabulary-sized softmax) from L2 on
 * every pass.
 */
#define LS_PACKS(R, len, ...)                                                  \
  _Pragma("unroll") for (int r = 0; r < (R); r++) {                           \
    const int64_t i = (int64_t(threadIdx.x) + int64_t(r) * blockDim.x) * V;   \
    if (i < (len)) {                                                           \
      __VA_ARGS__                                                              \
    }                                                                          \
  }
#define LS_STREAM(len, ...) \
  for (int64_t i = int64_t(threadIdx.x) * V; i < (len); i += int64_t(blockDim.x) * V) { __VA_ARGS__ }

/** One block per group of `groupSize` values; weight/gate optional. */
template <typename T, typename W, int V, int R>
__global__ void __launch_bounds__(1024) rms_norm_kernel(T *__restrict__ out, const T *__restrict__ x, const W *__restrict__ weight,
                                const T *__restrict__ gate, int64_t dim, int64_t groupSize, float eps,
                                bool normBeforeGate) {
  const int64_t base = int64_t(blockIdx.x) * groupSize;
  const int64_t wbase = base % dim;
  const bool gateFirst = gate && !normBeforeGate;
  constexpr int C = R > 0 ? R : 1;
  float z[C][V], g[C][V];
  float ss = 0.f;
  // A row held in one pack per thread also loads its weights before the reduction, so their latency overlaps
  // the row's instead of following the block barrier.
  constexpr bool kEarlyWeight = R == 1;
  float w0[V];
  if constexpr (kEarlyWeight) {
    const int64_t i = int64_t(threadIdx.x) * V;
    if (weight && i < groupSize) load_pack<W, V>(weight, wbase + i, w0);
  }
  // Pass 1: z = x (·silu(gate) when gating first), sum of squares.
  auto first = [&](int64_t i, float(&zz)[V], float(&gg)[V]) {
    load_pack<T, V>(x, base + i, zz);
    if (gate) load_pack<T, V>(gate, base + i, gg);
#pragma unroll
    for (int j = 0; j < V; j++) {
      if (gateFirst) zz[j] *= silu(gg[j]);
      ss += zz[j] * zz[j];
    }
  };
  if constexpr (R > 0) {
    LS_PACKS(R, groupSize, first(i, z[r], g[r]);)
  } else {
    LS_STREAM(groupSize, first(i, z[0], g[0]);)
  }
  const float inv = rsqrtf(block_sum(ss) / static_cast<float>(groupSize) + eps);
  auto second = [&](int64_t i, float(&zz)[V], const float(&gg)[V]) {
    float w[V];
    if constexpr (kEarlyWeight) {
#pragma unroll
      for (int j = 0; j < V; j++) w[j] = w0[j];
    } else if (weight) {
      load_pack<W, V>(weight, wbase + i, w);
    }
#pragma unroll
    for (int j = 0; j < V; j++) {
      float y = zz[j] * inv;
      if (weight) y *= w[j];
      if (gate && normBeforeGate) y *= silu(gg[j]);
      zz[j] = y;
    }
    store_pack<T, V>(out, base + i, zz);
  };
  if constexpr (R > 0) {
    LS_PACKS(R, groupSize, second(i, z[r], g[r]);)
  } else {
    LS_STREAM(groupSize, first(i, z[0], g[0]); second(i, z[0], g[0]);)
  }
}

template <typename T, typename W, int V, int R>
__global__ void __launch_bounds__(1024) layer_norm_kernel(T *__restrict__ out, const T *__restrict__ x, const W *__restrict__ weight,
                                  const W *__restrict__ bias, int64_t dim, float eps) {
  const int64_t base = int64_t(blockIdx.x) * dim;
  constexpr int C = R > 0 ? R : 1;
  float v[C][V];
  float s = 0.f;
  auto load = [&](int64_t i, float(&vv)[V]) { load_pack<T, V>(x, base + i, vv); };
  auto add = [&](const float(&vv)[V]) {
#pragma unroll
    for (int j = 0; j < V; j++) s += vv[j];
  };
  if constexpr (R > 0) {
    LS_PACKS(R, dim, load(i, v[r]); add(v[r]);)
  } else {
    LS_STREAM(dim, load(i, v[0]); add(v[0]);)
  }
  const float mean = block_sum(s) / static_cast<float>(dim);
  float q = 0.f;  // two-pass variance: no cancellation for rows with a large mean
  auto sq = [&](const float(&vv)[V]) {
#pragma unroll
    for (int j = 0; j < V; j++) q += (vv[j] - mean) * (vv[j] - mean);
  };
  if constexpr (R > 0) {
    LS_PACKS(R, dim, sq(v[r]);)
  } else {
    LS_STREAM(dim, load(i, v[0]); sq(v[0]);)
  }
  const float inv = rsqrtf(block_sum(q) / static_cast<float>(dim) + eps);
  auto write = [&](int64_t i, float(&vv)[V]) {
    float w[V], b[V];
    if (weight) load_pack<W, V>(weight, i, w);
    if (bias) load_pack<W, V>(bias, i, b);
#pragma unroll
    for (int j = 0; j < V; j++) {
      float y = (vv[j] - mean) * inv;
      if (weight) y *= w[j];
      if (bias) y += b[j];
      vv[j] = y;
    }
    store_pack<T, V>(out, base + i, vv);
  };
  if constexpr (R > 0) {
    LS_PACKS(R, dim, write(i, v[r]);)
  } else {
    LS_STREAM(dim, load(i, v[0]); write(i, v[0]);)
  }
}

template <typename T, int V, int R>
__global__ void __launch_bounds__(1024) softmax_kernel(T *__restrict__ out, const T *__restrict__ x, int64_t dim) {
  const int64_t base = int64_t(blockIdx.x) * dim;
  constexpr int C = R > 0 ? R : 1;
  float v[C][V];
  float m = -INFINITY;
  auto load = [&](int64_t i, float(&vv)[V]) { load_pack<T, V>(x, base + i, vv); };
  auto mx = [&](const float(&vv)[V]) {
#pragma unroll
    for (int j = 0; j < V; j++) m = fmaxf(m, vv[j]);
  };
  if constexpr (R > 0) {
    LS_PACKS(R, dim, load(i, v[r]); mx(v[r]);)
  } else {
    LS_STREAM(dim, load(i, v[0]); mx(v[0]);)
  }
  m = block_max(m);
  float s = 0.f;
  auto ex = [&](float(&vv)[V]) {
#pragma unroll
    for (int j = 0; j < V; j++) {
      vv[j] = expf(vv[j] - m);
      s += vv[j];
    }
  };
  if constexpr (R > 0) {
    LS_PACKS(R, dim, ex(v[r]);)
  } else {
    LS_STREAM(dim, load(i, v[0]); ex(v[0]);)
  }
  const float inv = 1.f / block_sum(s);
  auto write = [&](int64_t i, float(&vv)[V]) {
#pragma unroll
    for (int j = 0; j < V; j++) vv[j] *= inv;
    store_pack<T, V>(out, base + i, vv);
  };
  if constexpr (R > 0) {
    LS_PACKS(R, dim, write(i, v[r]);)
  } else {
    LS_STREAM(dim, load(i, v[0]); ex(v[0]); write(i, v[0]);)
  }
}

/** 16-byte packs when the row length and every pointer allow them, else one element at a time. */
template <typename T>
bool can_pack(int64_t len, std::initializer_list<const void *> ptrs) {
  if (len % kVec<T>) return false;
  for (const void *p : ptrs)
    if (p && !aligned_to(p, 16)) return false;
  return true;
}

/**
 * Launches kernel<V, R> for a row of `len` elements: registers hold the row when it has ≤ 4096 packs
 * (R = 1 up to 1024 packs, else 4), otherwise the streaming variant (R = 0) with 1024 threads.
 */
template <int V, typename Launch>
void launch_rows(int64_t len, Launch launch) {
  const int64_t packs = (len + V - 1) / V;
  auto threads = [](int64_t t) { return static_cast<unsigned>(t < 32 ? 32 : (t + 31) / 32 * 32); };
  if (packs <= 1024) launch(std::integral_constant<int, 1>{}, threads(packs));
  else if (packs <= 4096) launch(std::integral_constant<int, 4>{}, threads((packs + 3) / 4));
  else launch(std::integral_constant<int, 0>{}, 1024u);
}

/**
 * Calls run(W{}, V) with the parameters' type W (f32, or the input's T) and V values per access: 16-byte packs
 * when `packed`, else one.
 */
template <typename T, typename Run>
void with_param_and_pack(ET wt, bool packed, Run run) {
  auto pick = [&](auto wtag) {
    if (packed) run(wtag, std::integral_constant<int, kVec<T>>{});
    else run(wtag, std::integral_constant<int, 1>{});
  };
  if (wt == ET::F32) pick(float{});
  else pick(T{});
}

}  // namespace

void launch_rms_norm(void *out, const void *x, ET t, const void *weight, ET wt, const void *gate, int64_t rows,
                     int64_t dim, int64_t groupSize, float eps, bool normBeforeGate, const void *residual,
                     void *sumOut, cudaStream_t s) {
  if (rows == 0 || dim == 0) return;
  LS_REQUIRE(!residual == !sumOut, "rmsNorm: a residual needs its sum output and the other way round");
  LS_REQUIRE(wt == t || wt == ET::F32, "rmsNorm: weight must have the input's dtype or f32");
  const int64_t groups = rows * (dim / groupSize);
  LS_DISPATCH_FLOAT(t, T, {
    auto run = [&](auto wtag, auto vtag) {
      using W = decltype(wtag);
      constexpr int V = decltype(vtag)::value;
      const int64_t packs = (groupSize + V - 1) / V;
      if constexpr (V > 1) {  // (unpacked rows are rare shapes: the block kernels take them)
        auto rows_kernel = [&](auto mtag) {
          launch_row_kernel(groups, packs, [&](auto stag, auto rtag, unsigned blocks, unsigned threads) {
            constexpr RowMode M = decltype(mtag)::value;
            rms_norm_rows<T, W, V, decltype(stag)::value, decltype(rtag)::value, M, row_min_blocks(M),
                          rms_early_weight(M)><<<blocks, threads, 0, s>>>(
                static_cast<T *>(out), static_cast<const T *>(x), static_cast<const W *>(weight),
                static_cast<const T *>(gate), groups, dim, groupSize, eps, normBeforeGate,
                static_cast<const T *>(residual), static_cast<T *>(sumOut));
          });
        };
        if (packs <= kRowPacks) {
          if (gate) rows_kernel(std::integral_constant<RowMode, RowMode::Gated>{});
          else if (residual) rows_kernel(std::integral_constant<RowMode, RowMode::Residual>{});
          else rows_kernel(std::integral_constant<RowMode, RowMode::Plain>{});
          return;
        }
      }
      const T *in = block_norm_input<T>(x, residual, sumOut, rows * dim, t, s);
      launch_rows<V>(groupSize, [&](auto rtag, unsigned threads) {
        rms_norm_kernel<T, W, V, decltype(rtag)::value><<<static_cast<unsigned>(groups), threads, 0, s>>>(
            static_cast<T *>(out), in, static_cast<const W *>(weight), static_cast<const T *>(gate), dim,
            groupSize, eps, normBeforeGate);
      });
    };
    const bool packed = can_pack<T>(groupSize, {out, x, gate, residual, sumOut}) && (!weight || aligned_to(weight, 16));
    with_param_and_pack<T>(wt, packed, run);
    LS_CHECK_LAUNCH();
  });
}

void launch_layer_norm(void *out, const void *x, ET t, const void *weight, const void *bias, ET wt, int64_t rows,
                       int64_t dim, float eps, const void *residual, void *sumOut, cudaStream_t s) {
  if (rows == 0 || dim == 0) return;
  LS_REQUIRE(!residual == !sumOut, "layerNorm: a residual needs its sum output and the other way round");
  LS_REQUIRE(wt == t || wt == ET::F32, "layerNorm: weight/bias must have the input's dtype or f32");
  LS_DISPATCH_FLOAT(t, T, {
    auto run = [&](auto wtag, auto vtag) {
      using W = decltype(wtag);
      constexpr int V = decltype(vtag)::value;
      const int64_t packs = (dim + V - 1) / V;
      if constexpr (V > 1) {  // (unpacked rows are rare shapes: the block kernels take them)
        auto rows_kernel = [&](auto mtag) {
          launch_row_kernel(rows, packs, [&](auto stag, auto rtag, unsigned blocks, unsigned threads) {
            constexpr RowMode M = decltype(mtag)::value;
            layer_norm_rows<T, W, V, decltype(stag)::value, decltype(rtag)::value, M, row_min_blocks(M),
                            ln_early_weight(M)><<<blocks, threads, 0, s>>>(
                static_cast<T *>(out), static_cast<const T *>(x), static_cast<const W *>(weight),
                static_cast<const W *>(bias), rows, dim, eps, static_cast<const T *>(residual),
                static_cast<T *>(sumOut));
          });
        };
        if (packs <= kRowPacks) {
          if (residual) rows_kernel(std::integral_constant<RowMode, RowMode::Residual>{});
          else rows_kernel(std::integral_constant<RowMode, RowMode::Plain>{});
          return;
        }
      }
      const T *in = block_norm_input<T>(x, residual, sumOut, rows * dim, t, s);
      launch_rows<V>(dim, [&](auto rtag, unsigned threads) {
        layer_norm_kernel<T, W, V, decltype(rtag)::value><<<static_cast<unsigned>(rows), threads, 0, s>>>(
            static_cast<T *>(out), in, static_cast<const W *>(weight), static_cast<const W *>(bias), dim, eps);
      });
    };
    with_param_and_pack<T>(wt, can_pack<T>(dim, {out, x, weight, bias, residual, sumOut}), run);
    LS_CHECK_LAUNCH();
  });
}

void launch_softmax(void *out, const void *x, ET t, int64_t rows, int64_t dim, cudaStream_t s) {
  if (rows == 0 || dim == 0) return;
  LS_DISPATCH_FLOAT(t, T, {
    auto run = [&](auto vtag) {
      constexpr int V = decltype(vtag)::value;
      launch_rows<V>(dim, [&](auto rtag, unsigned threads) {
        softmax_kernel<T, V, decltype(rtag)::value>
            <<<static_cast<unsigned>(rows), threads, 0, s>>>(static_cast<T *>(out), static_cast<const T *>(x), dim);
      });
    };
    if (can_pack<T>(dim, {out, x})) run(std::integral_constant<int, kVec<T>>{});
    else run(std::integral_constant<int, 1>{});
    LS_CHECK_LAUNCH();
  });
}
