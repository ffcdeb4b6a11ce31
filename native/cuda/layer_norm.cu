// LayerNorm with an optional fused residual add; the row kernels of norm_rows.cuh up to kRowPacks packs, one
// block per row beyond. The variance is a second pass over the row (no cancellation for rows with a large mean).
#include "norm_rows.cuh"

namespace {

/** Weights loaded before the reduction (see row_min_blocks). */
constexpr bool ln_early_weight(RowMode m) { return m == RowMode::Residual; }

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

}  // namespace

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
