// Causal depthwise conv1d. Memory-bound, so the main kernel moves data in 8-byte packs of V adjacent channels:
// a thread owns one pack over TT consecutive tokens and loads all TT + 3 input packs its outputs read before
// any arithmetic, so it keeps TT + 3 loads in flight (a sliding window that loaded one pack per output kept one
// in flight: 25% of copy bandwidth). Threads are numbered pack-fastest over (batch, token tile, pack), so every
// load and store is coalesced and no thread idles at the end of a row. Other shapes (width > 4, channel counts
// or pointers that do not allow packs) take a one-thread-per-output kernel.
#include "conv1d.h"

#include "device_util.cuh"

namespace {

constexpr int kMaxPackedWidth = 4;
constexpr int kTileThreads = 128;

/**
 * y for tokens [t0, t0 + TT) of one pack: inputs t0 − 3 … t0 + TT − 1 of [state; x] (positions before
 * t0 − (width − 1) or past the end are zeros). The weights are right-aligned in 4 taps (tap k multiplies input
 * t − 3 + k; taps below 4 − width are zero), so every register index is a compile-time constant.
 */
template <typename T, typename W, int V, int TT>
__global__ void __launch_bounds__(kTileThreads) conv1d_tile_kernel(T *__restrict__ y, const T *__restrict__ x,
                                                                  const W *__restrict__ weight,
                                                                  const W *__restrict__ bias,
                                                                  const T *__restrict__ state, Conv1dDims d) {
  constexpr int K = kMaxPackedWidth, N = TT + K - 1;
  const int packs = d.channels / V, tiles = (d.len + TT - 1) / TT;
  const int64_t id = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (id >= int64_t(d.batch) * tiles * packs) return;
  const int c = static_cast<int>(id % packs) * V, tile = static_cast<int>(id / packs);
  const int b = tile / tiles, t0 = (tile % tiles) * TT;
  Pack<T, V> in[N];
#pragma unroll
  for (int j = 0; j < N; ++j) {
    const int idx = t0 - (K - 1) + j;
    const T *src = nullptr;
    if (idx >= d.len || idx < t0 - (d.width - 1)) src = nullptr;
    else if (idx >= 0) src = x + (int64_t(b) * d.len + idx) * d.channels + c;
    else if (state) src = state + (int64_t(b) * (d.width - 1) + d.width - 1 + idx) * d.channels + c;
    if (src) in[j] = *reinterpret_cast<const Pack<T, V> *>(src);
    else
#pragma unroll
      for (int e = 0; e < V; ++e) in[j].v[e] = from_f32<T>(0.f);
  }
  const int shift = K - d.width;
  float w[K][V], bv[V];
#pragma unroll
  for (int e = 0; e < V; ++e) {
    bv[e] = bias ? to_f32(bias[c + e]) : 0.f;
#pragma unroll
    for (int k = 0; k < K; ++k) w[k][e] = k >= shift ? to_f32(weight[(c + e) * d.width + k - shift]) : 0.f;
  }
#pragma unroll
  for (int i = 0; i < TT; ++i) {
    if (t0 + i >= d.len) break;
    float out[V];
#pragma unroll
    for (int e = 0; e < V; ++e) {
      float acc = bv[e];
#pragma unroll
      for (int k = 0; k < K; ++k) acc += w[k][e] * to_f32(in[i + k].v[e]);
      out[e] = d.silu ? __fdividef(acc, 1.f + __expf(-acc)) : acc;  // (the IEEE division made it issue-bound)
    }
    store_pack<T, V>(y, (int64_t(b) * d.len + t0 + i) * d.channels + c, out);
  }
}

template <typename T>
__device__ __forceinline__ float input_at(const T *x, const T *state, int b, int idx, int c, const Conv1dDims &d) {
  // idx is the position in x; negative positions come from the carried state (or zeros).
  if (idx >= 0) return to_f32(x[(static_cast<size_t>(b) * d.len + idx) * d.channels + c]);
  if (!state) return 0.f;
  return to_f32(state[(static_cast<size_t>(b) * (d.width - 1) + d.width - 1 + idx) * d.channels + c]);
}

template <typename T, typename W>
__global__ void conv1d_kernel(T *y, const T *x, const W *weight, const W *bias, const T *state, Conv1dDims d) {
  const int t = blockIdx.x, b = blockIdx.z, c = blockIdx.y * blockDim.x + threadIdx.x;
  if (c >= d.channels) return;
  const size_t i = (static_cast<size_t>(b) * d.len + t) * d.channels + c;
  float acc = bias ? to_f32(bias[c]) : 0.f;
  const W *w = weight + static_cast<size_t>(c) * d.width;
  for (int k = 0; k < d.width; ++k) acc += to_f32(w[k]) * input_at<T>(x, state, b, t - (d.width - 1) + k, c, d);
  if (d.silu) acc = acc / (1.f + __expf(-acc));
  store_f32(y, i, acc);
}

template <typename T>
__global__ void conv1d_state_kernel(T *stateOut, const T *x, const T *state, Conv1dDims d) {
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int keep = d.width - 1;
  if (i >= static_cast<size_t>(d.batch) * keep * d.channels) return;
  const int c = static_cast<int>(i % d.channels);
  const int j = static_cast<int>((i / d.channels) % keep);
  const int b = static_cast<int>(i / (static_cast<size_t>(d.channels) * keep));
  stateOut[i] = from_f32<T>(input_at<T>(x, state, b, d.len - keep + j, c, d));
}

}  // namespace

void conv1d(void *y, void *stateOut, const void *x, const void *weight, const void *bias, const void *state,
            const Conv1dDims &d, DT dtype, DT wDtype, cudaStream_t stream) {
  LS_REQUIRE(d.width >= 1, "conv1d: width must be at least 1");
  LS_REQUIRE(!stateOut || stateOut != state, "conv1d: stateOut must not alias state");
  const size_t n = static_cast<size_t>(d.batch) * d.len * d.channels;
  const size_t ns = static_cast<size_t>(d.batch) * (d.width - 1) * d.channels;
  LS_DISPATCH_DT(dtype, T, {
    if (n > 0) {
      LS_DISPATCH_DT(wDtype, W, {
        constexpr int V = 8 / sizeof(T);  // 16-byte packs need twice the registers: 45% at best
        const bool packed = d.width <= kMaxPackedWidth && d.channels % V == 0 && aligned_to(x, 8) &&
                            aligned_to(y, 8) && (!state || aligned_to(state, 8));
        if (packed) {
          constexpr int TT = 16;  // swept on an H200: 16 tokens of 8-byte packs, 64% of copy bandwidth
          const int64_t threads = int64_t(d.batch) * ceil_div(d.len, TT) * (d.channels / V);
          conv1d_tile_kernel<T, W, V, TT><<<static_cast<unsigned>(ceil_div<int64_t>(threads, kTileThreads)),
                                            kTileThreads, 0, stream>>>(
              static_cast<T *>(y), static_cast<const T *>(x), static_cast<const W *>(weight),
              static_cast<const W *>(bias), static_cast<const T *>(state), d);
        } else {
          const dim3 grid(d.len, ceil_div(d.channels, 256), d.batch);
          conv1d_kernel<T, W><<<grid, 256, 0, stream>>>(
              static_cast<T *>(y), static_cast<const T *>(x), static_cast<const W *>(weight),
              static_cast<const W *>(bias), static_cast<const T *>(state), d);
        }
        LS_CHECK_LAUNCH();
      });
    }
    if (stateOut && ns > 0) {
      conv1d_state_kernel<T><<<static_cast<unsigned>(ceil_div<size_t>(ns, 256)), 256, 0, stream>>>(
          static_cast<T *>(stateOut), static_cast<const T *>(x), static_cast<const T *>(state), d);
      LS_CHECK_LAUNCH();
    }
  });
}
