// Softmax over the last dimension: one block per row (norm_rows.cuh's launch_rows), max and sum in f32.
#include "norm_rows.cuh"

namespace {

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

}  // namespace

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
