// Causal depthwise conv1d: one thread per output element on a (token, channel block, batch) grid, consecutive
// threads on consecutive channels so every load and store is coalesced; the width−1 reuses of each input hit
// L1. Memory-bound by design.
#include "conv1d.h"

namespace {

template <typename T, typename W>
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
  for (int k = 0; k < d.width; ++k) acc += to_f32(w[k]) * input_at<T, W>(x, state, b, t - (d.width - 1) + k, c, d);
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
  stateOut[i] = from_f32<T>(input_at<T, T>(x, state, b, d.len - keep + j, c, d));
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
        const dim3 grid(d.len, ceil_div(d.channels, 256), d.batch);
        conv1d_kernel<T, W><<<grid, 256, 0, stream>>>(
            static_cast<T *>(y), static_cast<const T *>(x), static_cast<const W *>(weight),
            static_cast<const W *>(bias), static_cast<const T *>(state), d);
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
