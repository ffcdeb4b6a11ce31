// Causal depthwise conv1d. Memory-bound, so the main kernel moves data in 16-byte packs: a thread owns V
// adjacent channels (one pack) over kTileT consecutive tokens, keeps the last `width` input packs in registers
// as a sliding window (each input is read once per tile instead of `width` times) and its weights in registers
// for the whole tile. Consecutive threads take consecutive packs, so every load and store is coalesced.
// Other shapes (width > 4, channel counts or pointers that do not allow packs) take a one-thread-per-output
// kernel.
#include "conv1d.h"

#include "device_util.cuh"

namespace {

constexpr int kMaxPackedWidth = 4;
constexpr int kTileT = 16;  // tokens per thread: the window's width − 1 re-reads cost (width − 1)/kTileT extra

/** Input pack at position idx of [state; x] (negative idx: the carried state, or zeros without one). */
template <typename T, int V>
__device__ __forceinline__ void input_pack(const T *x, const T *state, int b, int idx, int c, const Conv1dDims &d,
                                           float (&v)[V]) {
  if (idx >= 0) {
    load_pack<T, V>(x, (static_cast<int64_t>(b) * d.len + idx) * d.channels + c, v);
  } else if (state) {
    load_pack<T, V>(state, (static_cast<int64_t>(b) * (d.width - 1) + d.width - 1 + idx) * d.channels + c, v);
  } else {
#pragma unroll
    for (int j = 0; j < V; ++j) v[j] = 0.f;
  }
}

template <typename T, typename W, int V>
__global__ void __launch_bounds__(128) conv1d_packed_kernel(T *__restrict__ y, const T *__restrict__ x,
                                                            const W *__restrict__ weight, const W *__restrict__ bias,
                                                            const T *__restrict__ state, Conv1dDims d) {
  const int c = (blockIdx.y * blockDim.x + threadIdx.x) * V, b = blockIdx.z;
  const int t0 = blockIdx.x * kTileT;
  if (c >= d.channels) return;
  float w[kMaxPackedWidth][V], bv[V];
#pragma unroll
  for (int j = 0; j < V; ++j) {
    bv[j] = bias ? to_f32(bias[c + j]) : 0.f;
#pragma unroll
    for (int k = 0; k < kMaxPackedWidth; ++k) w[k][j] = k < d.width ? to_f32(weight[(c + j) * d.width + k]) : 0.f;
  }
  // win[k] holds input position t − (width − 1) + k for the output t being computed (k < width).
  float win[kMaxPackedWidth][V] = {};  // slots ≥ width stay 0 (their weights are 0 too)
#pragma unroll
  for (int k = 0; k < kMaxPackedWidth - 1; ++k)
    if (k < d.width - 1) input_pack<T, V>(x, state, b, t0 - (d.width - 1) + k, c, d, win[k]);
  const int tEnd = min(kTileT, d.len - t0);
#pragma unroll
  for (int i = 0; i < kTileT; ++i) {
    if (i >= tEnd) break;
    const int t = t0 + i;
    // The newest input goes to slot width − 1 (a compile-time index per width, so the window stays in registers).
#pragma unroll
    for (int k = 0; k < kMaxPackedWidth; ++k)
      if (k == d.width - 1) load_pack<T, V>(x, (static_cast<int64_t>(b) * d.len + t) * d.channels + c, win[k]);
    float out[V];
#pragma unroll
    for (int j = 0; j < V; ++j) {
      float acc = bv[j];
#pragma unroll
      for (int k = 0; k < kMaxPackedWidth; ++k) acc += w[k][j] * win[k][j];  // w is 0 beyond width
      out[j] = d.silu ? acc / (1.f + __expf(-acc)) : acc;
    }
    store_pack<T, V>(y, (static_cast<int64_t>(b) * d.len + t) * d.channels + c, out);
#pragma unroll
    for (int k = 0; k + 1 < kMaxPackedWidth; ++k)
#pragma unroll
      for (int j = 0; j < V; ++j) win[k][j] = win[k + 1][j];
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
        constexpr int V = kVec<T>;
        const bool packed = d.width <= kMaxPackedWidth && d.channels % V == 0 && aligned_to(x, 16) &&
                            aligned_to(y, 16) && (!state || aligned_to(state, 16));
        if (packed) {
          const unsigned threads = 128;
          const dim3 grid(ceil_div(d.len, kTileT), ceil_div<unsigned>(d.channels / V, threads), d.batch);
          conv1d_packed_kernel<T, W, V><<<grid, threads, 0, stream>>>(
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
