// Row-wise kernels: RMSNorm (plain, gated, grouped), LayerNorm and softmax. One block per row (or per group
// of a row); statistics in f32. Each pass re-reads the row, which stays in L1/L2 for the sizes we meet.
#include "device_util.cuh"

namespace {

__device__ __forceinline__ float silu(float v) { return v / (1.f + expf(-v)); }

/** Threads for a row of `len` elements moved V at a time. */
unsigned threads_for(int64_t len, int V, unsigned cap) {
  const int64_t packs = (len + V - 1) / V;
  const int64_t t = (packs + 31) / 32 * 32;
  return static_cast<unsigned>(t < 32 ? 32 : (t > cap ? cap : t));
}

template <typename T, int V>
__device__ __forceinline__ void load_pack(const T *p, int64_t i, float (&v)[V]) {
  const Pack<T, V> a = *reinterpret_cast<const Pack<T, V> *>(p + i);
#pragma unroll
  for (int j = 0; j < V; j++) v[j] = to_f32(a.v[j]);
}

template <typename T, int V>
__device__ __forceinline__ void store_pack(T *p, int64_t i, const float (&v)[V]) {
  Pack<T, V> a;
#pragma unroll
  for (int j = 0; j < V; j++) a.v[j] = from_f32<T>(v[j]);
  *reinterpret_cast<Pack<T, V> *>(p + i) = a;
}

/** One block per group of `groupSize` values; weight/gate optional. */
template <typename T, typename W, int V>
__global__ void rms_norm_kernel(T *__restrict__ out, const T *__restrict__ x, const W *__restrict__ weight,
                                const T *__restrict__ gate, int64_t dim, int64_t groupSize, float eps,
                                bool normBeforeGate) {
  const int64_t base = int64_t(blockIdx.x) * groupSize;
  const int64_t wbase = base % dim;
  const bool gateFirst = gate && !normBeforeGate;
  float ss = 0.f;
  for (int64_t i = threadIdx.x * V; i < groupSize; i += blockDim.x * V) {
    float v[V];
    load_pack<T, V>(x, base + i, v);
    if (gateFirst) {
      float g[V];
      load_pack<T, V>(gate, base + i, g);
#pragma unroll
      for (int j = 0; j < V; j++) v[j] *= silu(g[j]);
    }
#pragma unroll
    for (int j = 0; j < V; j++) ss += v[j] * v[j];
  }
  const float r = rsqrtf(block_sum(ss) / static_cast<float>(groupSize) + eps);
  for (int64_t i = threadIdx.x * V; i < groupSize; i += blockDim.x * V) {
    float v[V], g[V], w[V];
    load_pack<T, V>(x, base + i, v);
    if (gate) load_pack<T, V>(gate, base + i, g);
    if (weight) load_pack<W, V>(weight, wbase + i, w);
#pragma unroll
    for (int j = 0; j < V; j++) {
      float y = v[j];
      if (gateFirst) y *= silu(g[j]);
      y *= r;
      if (weight) y *= w[j];
      if (gate && normBeforeGate) y *= silu(g[j]);
      v[j] = y;
    }
    store_pack<T, V>(out, base + i, v);
  }
}

template <typename T, typename W, int V>
__global__ void layer_norm_kernel(T *__restrict__ out, const T *__restrict__ x, const W *__restrict__ weight,
                                  const W *__restrict__ bias, int64_t dim, float eps) {
  const int64_t base = int64_t(blockIdx.x) * dim;
  float s = 0.f;
  for (int64_t i = threadIdx.x * V; i < dim; i += blockDim.x * V) {
    float v[V];
    load_pack<T, V>(x, base + i, v);
#pragma unroll
    for (int j = 0; j < V; j++) s += v[j];
  }
  const float mean = block_sum(s) / static_cast<float>(dim);
  float q = 0.f;  // two-pass variance: no cancellation for rows with a large mean
  for (int64_t i = threadIdx.x * V; i < dim; i += blockDim.x * V) {
    float v[V];
    load_pack<T, V>(x, base + i, v);
#pragma unroll
    for (int j = 0; j < V; j++) q += (v[j] - mean) * (v[j] - mean);
  }
  const float r = rsqrtf(block_sum(q) / static_cast<float>(dim) + eps);
  for (int64_t i = threadIdx.x * V; i < dim; i += blockDim.x * V) {
    float v[V], w[V], b[V];
    load_pack<T, V>(x, base + i, v);
    if (weight) load_pack<W, V>(weight, i, w);
    if (bias) load_pack<W, V>(bias, i, b);
#pragma unroll
    for (int j = 0; j < V; j++) {
      float y = (v[j] - mean) * r;
      if (weight) y *= w[j];
      if (bias) y += b[j];
      v[j] = y;
    }
    store_pack<T, V>(out, base + i, v);
  }
}

template <typename T, int V>
__global__ void softmax_kernel(T *__restrict__ out, const T *__restrict__ x, int64_t dim) {
  const int64_t base = int64_t(blockIdx.x) * dim;
  float m = -INFINITY;
  for (int64_t i = threadIdx.x * V; i < dim; i += blockDim.x * V) {
    float v[V];
    load_pack<T, V>(x, base + i, v);
#pragma unroll
    for (int j = 0; j < V; j++) m = fmaxf(m, v[j]);
  }
  m = block_max(m);
  float s = 0.f;
  for (int64_t i = threadIdx.x * V; i < dim; i += blockDim.x * V) {
    float v[V];
    load_pack<T, V>(x, base + i, v);
#pragma unroll
    for (int j = 0; j < V; j++) s += expf(v[j] - m);
  }
  const float inv = 1.f / block_sum(s);
  for (int64_t i = threadIdx.x * V; i < dim; i += blockDim.x * V) {
    float v[V];
    load_pack<T, V>(x, base + i, v);
#pragma unroll
    for (int j = 0; j < V; j++) v[j] = expf(v[j] - m) * inv;
    store_pack<T, V>(out, base + i, v);
  }
}

/** 16-byte packs when the row length and every pointer allow them, else one element at a time. */
template <typename T>
bool can_pack(int64_t len, std::initializer_list<const void *> ptrs, size_t rowBytes) {
  constexpr int V = kVec<T>;
  if (len % V) return false;
  for (const void *p : ptrs)
    if (p && !aligned_to(p, 16)) return false;
  return rowBytes % 16 == 0;
}

}  // namespace

void launch_rms_norm(void *out, const void *x, ET t, const void *weight, ET wt, const void *gate, int64_t rows,
                     int64_t dim, int64_t groupSize, float eps, bool normBeforeGate, cudaStream_t s) {
  if (rows == 0 || dim == 0) return;
  LS_REQUIRE(wt == t || wt == ET::F32, "rmsNorm: weight must have the input's dtype or f32");
  const unsigned blocks = static_cast<unsigned>(rows * (dim / groupSize));
  LS_DISPATCH_FLOAT(t, T, {
    auto run = [&](auto wtag) {
      using W = decltype(wtag);
      constexpr int V = kVec<T> < kVec<W> ? kVec<T> : kVec<W>;
      if (groupSize % V == 0 && can_pack<T>(groupSize, {out, x, gate}, groupSize * sizeof(T)) &&
          (!weight || aligned_to(weight, sizeof(W) * V)))
        rms_norm_kernel<T, W, V><<<blocks, threads_for(groupSize, V, 256), 0, s>>>(
            static_cast<T *>(out), static_cast<const T *>(x), static_cast<const W *>(weight),
            static_cast<const T *>(gate), dim, groupSize, eps, normBeforeGate);
      else
        rms_norm_kernel<T, W, 1><<<blocks, threads_for(groupSize, 1, 256), 0, s>>>(
            static_cast<T *>(out), static_cast<const T *>(x), static_cast<const W *>(weight),
            static_cast<const T *>(gate), dim, groupSize, eps, normBeforeGate);
    };
    if (wt == ET::F32) run(float{}); else run(T{});
    LS_CHECK_LAUNCH();
  });
}

void launch_layer_norm(void *out, const void *x, ET t, const void *weight, const void *bias, ET wt, int64_t rows,
                       int64_t dim, float eps, cudaStream_t s) {
  if (rows == 0 || dim == 0) return;
  LS_REQUIRE(wt == t || wt == ET::F32, "layerNorm: weight/bias must have the input's dtype or f32");
  const unsigned blocks = static_cast<unsigned>(rows);
  LS_DISPATCH_FLOAT(t, T, {
    auto run = [&](auto wtag) {
      using W = decltype(wtag);
      constexpr int V = kVec<T> < kVec<W> ? kVec<T> : kVec<W>;
      if (dim % V == 0 && can_pack<T>(dim, {out, x}, dim * sizeof(T)) &&
          (!weight || aligned_to(weight, sizeof(W) * V)) && (!bias || aligned_to(bias, sizeof(W) * V)))
        layer_norm_kernel<T, W, V><<<blocks, threads_for(dim, V, 256), 0, s>>>(
            static_cast<T *>(out), static_cast<const T *>(x), static_cast<const W *>(weight),
            static_cast<const W *>(bias), dim, eps);
      else
        layer_norm_kernel<T, W, 1><<<blocks, threads_for(dim, 1, 256), 0, s>>>(
            static_cast<T *>(out), static_cast<const T *>(x), static_cast<const W *>(weight),
            static_cast<const W *>(bias), dim, eps);
    };
    if (wt == ET::F32) run(float{}); else run(T{});
    LS_CHECK_LAUNCH();
  });
}

void launch_softmax(void *out, const void *x, ET t, int64_t rows, int64_t dim, cudaStream_t s) {
  if (rows == 0 || dim == 0) return;
  LS_DISPATCH_FLOAT(t, T, {
    constexpr int V = kVec<T>;
    if (can_pack<T>(dim, {out, x}, dim * sizeof(T)))
      softmax_kernel<T, V><<<static_cast<unsigned>(rows), threads_for(dim, V, 1024), 0, s>>>(
          static_cast<T *>(out), static_cast<const T *>(x), dim);
    else
      softmax_kernel<T, 1><<<static_cast<unsigned>(rows), threads_for(dim, 1, 1024), 0, s>>>(
          static_cast<T *>(out), static_cast<const T *>(x), dim);
    LS_CHECK_LAUNCH();
  });
}
