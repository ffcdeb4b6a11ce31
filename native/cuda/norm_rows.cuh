// Shared by the row-wise kernels (rms_norm.cu, layer_norm.cu, softmax.cu): rows of up to kRowPacks 16-byte packs
// take the row kernels, where S lanes own one row (or group), each holding R ≤ 4 of its packs raw in registers
// with all their loads in flight at once, reduce with warp shuffles (and, for S > 32, one shared-memory exchange
// between the row's warps) and write the result in the same pass — one read and one write of the row. Longer
// rows and softmax use one block per row (launch_rows), keeping a thread's packs in registers between passes up
// to 4096 packs and streaming them from L2 beyond. Statistics are in f32.
#pragma once

#include "device_util.cuh"
#include "kernels.h"

constexpr int kRowThreads = 256;
/** Longest row (in packs) of the row kernels: 256 lanes × 4 packs. */
constexpr int64_t kRowPacks = kRowThreads * 4;

/**
 * What a row kernel does besides normalising: nothing, gating (RMSNorm) or adding a residual first. A
 * compile-time choice, so each kernel holds registers only for the operands it reads.
 */
enum class RowMode { Plain, Gated, Residual };
/**
 * Blocks per SM a row kernel's register budget must allow. Swept on an H200 with whether a kernel loads its
 * weights before the reduction (rms_early_weight, ln_early_weight; docs/cuda-kernels.md): the gated RMSNorm
 * gains from both (65 → 73% of copy bandwidth), the residual LayerNorm from early weights; elsewhere they cost
 * up to a third.
 */
constexpr int row_min_blocks(RowMode m) { return m == RowMode::Gated ? 4 : 1; }

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
