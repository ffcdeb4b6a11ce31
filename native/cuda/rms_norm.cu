// RMSNorm: plain, gated (Mamba-2's norm before or after the SiLU gate) and grouped, with an optional fused
// residual add; the row kernels of norm_rows.cuh up to kRowPacks packs, one block per group beyond.
#include "norm_rows.cuh"

namespace {

// __fdividef (2 ulp): the IEEE division made the gated RMSNorm issue-bound.
__device__ __forceinline__ float silu(float v) { return __fdividef(v, 1.f + __expf(-v)); }

/** Weights loaded before the reduction (see row_min_blocks). */
constexpr bool rms_early_weight(RowMode m) { return m == RowMode::Gated; }

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
