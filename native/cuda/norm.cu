// Row-wise kernels: RMSNorm (plain, gated, grouped), LayerNorm and softmax. One block per row (or per group
// of a row); statistics in f32. Each pass re-reads the row, which stays in L1/L2 for the sizes we meet.
#include "device_util.cuh"

namespace {

__device__ __forceinline__ float silu(float v) { return v / (1.f + __expf(-v)); }

/**
 * Each kernel keeps a thread's R packs of V values in registers between passes (one read of the row from
 * memory), for rows of up to 1024·R packs; R = 0 streams longer rows (vocabulary-sized softmax) from L2 on
 * every pass. `pack_index(r)` is the element offset of a thread's r-th pack.
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

}  // namespace

void launch_rms_norm(void *out, const void *x, ET t, const void *weight, ET wt, const void *gate, int64_t rows,
                     int64_t dim, int64_t groupSize, float eps, bool normBeforeGate, cudaStream_t s) {
  if (rows == 0 || dim == 0) return;
  LS_REQUIRE(wt == t || wt == ET::F32, "rmsNorm: weight must have the input's dtype or f32");
  const unsigned blocks = static_cast<unsigned>(rows * (dim / groupSize));
  LS_DISPATCH_FLOAT(t, T, {
    auto run = [&](auto wtag, auto vtag) {
      using W = decltype(wtag);
      constexpr int V = decltype(vtag)::value;
      launch_rows<V>(groupSize, [&](auto rtag, unsigned threads) {
        rms_norm_kernel<T, W, V, decltype(rtag)::value><<<blocks, threads, 0, s>>>(
            static_cast<T *>(out), static_cast<const T *>(x), static_cast<const W *>(weight),
            static_cast<const T *>(gate), dim, groupSize, eps, normBeforeGate);
      });
    };
    constexpr int V = kVec<T>;
    const bool packed = can_pack<T>(groupSize, {out, x, gate}) && (!weight || aligned_to(weight, 16));
    auto pick = [&](auto wtag) {
      if (packed) run(wtag, std::integral_constant<int, V>{});
      else run(wtag, std::integral_constant<int, 1>{});
    };
    if (wt == ET::F32) pick(float{});
    else pick(T{});
    LS_CHECK_LAUNCH();
  });
}

void launch_layer_norm(void *out, const void *x, ET t, const void *weight, const void *bias, ET wt, int64_t rows,
                       int64_t dim, float eps, cudaStream_t s) {
  if (rows == 0 || dim == 0) return;
  LS_REQUIRE(wt == t || wt == ET::F32, "layerNorm: weight/bias must have the input's dtype or f32");
  const unsigned blocks = static_cast<unsigned>(rows);
  LS_DISPATCH_FLOAT(t, T, {
    auto run = [&](auto wtag, auto vtag) {
      using W = decltype(wtag);
      constexpr int V = decltype(vtag)::value;
      launch_rows<V>(dim, [&](auto rtag, unsigned threads) {
        layer_norm_kernel<T, W, V, decltype(rtag)::value><<<blocks, threads, 0, s>>>(
            static_cast<T *>(out), static_cast<const T *>(x), static_cast<const W *>(weight),
            static_cast<const W *>(bias), dim, eps);
      });
    };
    constexpr int V = kVec<T>;
    const bool packed = can_pack<T>(dim, {out, x, weight, bias});
    auto pick = [&](auto wtag) {
      if (packed) run(wtag, std::integral_constant<int, V>{});
      else run(wtag, std::integral_constant<int, 1>{});
    };
    if (wt == ET::F32) pick(float{});
    else pick(T{});
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
