// Elementwise kernels: cast, fill, unary activations, broadcast binary ops and affine. Contiguous inputs go
// through 16-byte packed loads when every pointer allows it; broadcasts index through merged strides.
#include <cmath>
#include <cstring>

#include "device_util.cuh"

size_t et_bytes(ET t) {
  switch (t) {
    case ET::F32:
    case ET::I32:
      return 4;
    case ET::BF16:
    case ET::F16:
      return 2;
    case ET::U8:
      return 1;
  }
  return 0;
}

namespace {

constexpr unsigned kBlock = 256;

/** out[i] = f(x[i]) computed in f32, V elements per access; the last n % V elements one by one. */
template <typename TO, typename TI, int V, typename F>
__global__ void map_kernel(TO *__restrict__ out, const TI *__restrict__ x, size_t n, F f) {
  const size_t packs = n / V;
  const size_t stride = size_t(gridDim.x) * blockDim.x;
  const size_t tid = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  for (size_t i = tid; i < packs; i += stride) {
    const Pack<TI, V> a = reinterpret_cast<const Pack<TI, V> *>(x)[i];
    Pack<TO, V> o;
#pragma unroll
    for (int j = 0; j < V; j++) o.v[j] = from_f32<TO>(f(to_f32(a.v[j])));
    reinterpret_cast<Pack<TO, V> *>(out)[i] = o;
  }
  for (size_t i = packs * V + tid; i < n; i += stride) out[i] = from_f32<TO>(f(to_f32(x[i])));
}

template <typename TO, typename TI, typename F>
void run_map(void *out, const void *x, size_t n, F f, cudaStream_t s) {
  if (n == 0) return;
  constexpr int V = kVec<TI> < kVec<TO> ? kVec<TI> : kVec<TO>;
  auto o = static_cast<TO *>(out);
  auto i = static_cast<const TI *>(x);
  if (aligned_to(o, sizeof(TO) * V) && aligned_to(i, sizeof(TI) * V))
    map_kernel<TO, TI, V><<<grid_for(ceil_div<size_t>(n, V), kBlock), kBlock, 0, s>>>(o, i, n, f);
  else
    map_kernel<TO, TI, 1><<<grid_for(n, kBlock), kBlock, 0, s>>>(o, i, n, f);
  LS_CHECK_LAUNCH();
}

struct Identity {
  __device__ float operator()(float v) const { return v; }
};

struct Affine {
  float scale, shift;
  __device__ float operator()(float v) const { return fmaf(v, scale, shift); }
};

// __expf (a few ulp) keeps the logistic activations memory-bound; the error stays far below 1e-5 relative.
__device__ __forceinline__ float sigmoidf(float v) { return 1.f / (1.f + __expf(-v)); }

__device__ __forceinline__ float apply_unary(UnaryOp op, float v) {
  switch (op) {
    case UnaryOp::Neg:
      return -v;
    case UnaryOp::Exp:
      return expf(v);
    case UnaryOp::Log:
      return logf(v);
    case UnaryOp::Sqrt:
      return sqrtf(v);
    case UnaryOp::Rsqrt:
      return 1.f / sqrtf(v);
    case UnaryOp::Abs:
      return fabsf(v);
    case UnaryOp::Sigmoid:
      return sigmoidf(v);
    case UnaryOp::Tanh:
      return tanhf(v);
    case UnaryOp::Relu:
      return v > 0.f ? v : 0.f;
    case UnaryOp::Relu2: {
      const float r = v > 0.f ? v : 0.f;
      return r * r;
    }
    case UnaryOp::Silu:
      return v / (1.f + __expf(-v));
    // Both GELUs in forms without the cancellation of 1 + erf / 1 + tanh for negative v (which gives 0 where
    // the value is still ~1e-9·v): Φ(v) = erfc(−v/√2)/2 and (1 + tanh u)/2 = σ(2u).
    case UnaryOp::Gelu:
      return 0.5f * v * erfcf(v * -0.70710678118654752f);
    case UnaryOp::GeluTanh:
      return v * sigmoidf(1.5957691216057308f * (v + 0.044715f * v * v * v));
    case UnaryOp::QuickGelu:
      return v * sigmoidf(1.702f * v);
    case UnaryOp::Softplus:
      return v > 20.f ? v : log1pf(expf(v));
  }
  return v;
}

/** The op is a template argument so that each activation compiles to its own branch-free loop. */
template <UnaryOp OP>
struct Unary {
  __device__ float operator()(float v) const { return apply_unary(OP, v); }
};

__device__ __forceinline__ float apply_binary(BinaryOp op, float a, float b) {
  switch (op) {
    case BinaryOp::Add:
      return a + b;
    case BinaryOp::Sub:
      return a - b;
    case BinaryOp::Mul:
      return a * b;
    case BinaryOp::Div:
      return a / b;
    case BinaryOp::Max:
      return fmaxf(a, b);
    case BinaryOp::Min:
      return fminf(a, b);
    case BinaryOp::SiluMul:
      return a / (1.f + __expf(-a)) * b;
  }
  return 0.f;
}

template <typename T, int V>
__global__ void binary_contiguous(T *__restrict__ out, const T *__restrict__ a, const T *__restrict__ b, size_t n,
                                  BinaryOp op) {
  const size_t packs = n / V;
  const size_t stride = size_t(gridDim.x) * blockDim.x;
  const size_t tid = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  for (size_t i = tid; i < packs; i += stride) {
    const Pack<T, V> x = reinterpret_cast<const Pack<T, V> *>(a)[i];
    const Pack<T, V> y = reinterpret_cast<const Pack<T, V> *>(b)[i];
    Pack<T, V> o;
#pragma unroll
    for (int j = 0; j < V; j++) o.v[j] = from_f32<T>(apply_binary(op, to_f32(x.v[j]), to_f32(y.v[j])));
    reinterpret_cast<Pack<T, V> *>(out)[i] = o;
  }
  for (size_t i = packs * V + tid; i < n; i += stride)
    out[i] = from_f32<T>(apply_binary(op, to_f32(a[i]), to_f32(b[i])));
}

struct Strides {
  int rank;
  uint32_t shape[kMaxRank];
  uint32_t a[kMaxRank], b[kMaxRank];
};

/** Broadcast case; 32-bit index math (the host checks that every index fits). */
template <typename T>
__global__ void binary_strided(T *__restrict__ out, const T *__restrict__ a, const T *__restrict__ b, uint32_t n,
                               Strides g, BinaryOp op) {
  for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    uint32_t r = i, ia = 0, ib = 0;
#pragma unroll
    for (int d = kMaxRank - 1; d >= 0; d--) {
      if (d >= g.rank) continue;
      const uint32_t c = r % g.shape[d];
      r /= g.shape[d];
      ia += c * g.a[d];
      ib += c * g.b[d];
    }
    out[i] = from_f32<T>(apply_binary(op, to_f32(a[ia]), to_f32(b[ib])));
  }
}

/**
 * Broadcast whose innermost axis is contiguous or broadcast in each input (bias rows, per-row scales): one
 * index computation per pack of V outputs, then plain (packed) loads along the row.
 */
template <typename T, int V>
__global__ void binary_rows(T *__restrict__ out, const T *__restrict__ a, const T *__restrict__ b, uint32_t packs,
                            uint32_t packsPerRow, Strides g, bool aInner, bool bInner, BinaryOp op) {
  for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < packs; i += gridDim.x * blockDim.x) {
    const uint32_t row = i / packsPerRow, c = (i - row * packsPerRow) * V;
    uint32_t r = row;
    size_t ia = 0, ib = 0;
    // Unrolled with constant indices so the stride tables stay in the parameter bank (a runtime index would
    // copy them to local memory).
#pragma unroll
    for (int d = kMaxRank - 1; d >= 0; d--) {
      if (d >= g.rank) continue;
      const uint32_t k = r % g.shape[d];
      r /= g.shape[d];
      ia += size_t(k) * g.a[d];
      ib += size_t(k) * g.b[d];
    }
    float x[V], y[V];
    if (aInner) {
      load_pack<T, V>(a, ia + c, x);
    } else {
#pragma unroll
      for (int j = 0; j < V; j++) x[j] = to_f32(a[ia]);
    }
    if (bInner) {
      load_pack<T, V>(b, ib + c, y);
    } else {
#pragma unroll
      for (int j = 0; j < V; j++) y[j] = to_f32(b[ib]);
    }
#pragma unroll
    for (int j = 0; j < V; j++) x[j] = apply_binary(op, x[j], y[j]);
    store_pack<T, V>(out, size_t(i) * V, x);
  }
}

template <typename T>
__global__ void fill_kernel(T *out, size_t n, T v) {
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    out[i] = v;
}

}  // namespace

void launch_cast(void *out, ET to, const void *x, ET from, size_t n, cudaStream_t s) {
  if (to == from) {
    if (n) LS_CUDA_CHECK(cudaMemcpyAsync(out, x, n * et_bytes(to), cudaMemcpyDeviceToDevice, s));
    return;
  }
  LS_DISPATCH_ALL(to, TO, { LS_DISPATCH_ALL(from, TI, { run_map<TO, TI>(out, x, n, Identity{}, s); }); });
}

void launch_fill(void *out, ET t, size_t n, double value, cudaStream_t s) {
  if (n == 0) return;
  // The element's bit pattern is computed on the host with the same rounding as the CPU backend.
  uint32_t bits = 0;
  const float f = static_cast<float>(value);
  switch (t) {
    case ET::F32:
      std::memcpy(&bits, &f, 4);
      break;
    case ET::BF16: {
      const __nv_bfloat16 h = __float2bfloat16_rn(f);
      std::memcpy(&bits, &h, 2);
      break;
    }
    case ET::F16: {
      const __half h = __float2half_rn(f);
      std::memcpy(&bits, &h, 2);
      break;
    }
    case ET::I32:
      bits = static_cast<uint32_t>(static_cast<int32_t>(std::trunc(value)));
      break;
    case ET::U8:
      bits = static_cast<uint8_t>(static_cast<int64_t>(std::trunc(value)));
      break;
  }
  const unsigned g = grid_for(n, kBlock);
  switch (et_bytes(t)) {
    case 4:
      fill_kernel<uint32_t><<<g, kBlock, 0, s>>>(static_cast<uint32_t *>(out), n, bits);
      break;
    case 2:
      fill_kernel<uint16_t><<<g, kBlock, 0, s>>>(static_cast<uint16_t *>(out), n, static_cast<uint16_t>(bits));
      break;
    default:
      fill_kernel<uint8_t><<<g, kBlock, 0, s>>>(static_cast<uint8_t *>(out), n, static_cast<uint8_t>(bits));
  }
  LS_CHECK_LAUNCH();
}

void launch_unary(void *out, const void *x, ET t, size_t n, UnaryOp op, cudaStream_t s) {
#define LS_UNARY_CASE(OP)                                                            \
  case UnaryOp::OP:                                                                  \
    LS_DISPATCH_FLOAT(t, T, { run_map<T, T>(out, x, n, Unary<UnaryOp::OP>{}, s); }); \
    break;
  switch (op) {
    LS_UNARY_CASE(Neg)
    LS_UNARY_CASE(Exp)
    LS_UNARY_CASE(Log)
    LS_UNARY_CASE(Sqrt)
    LS_UNARY_CASE(Rsqrt)
    LS_UNARY_CASE(Abs)
    LS_UNARY_CASE(Sigmoid)
    LS_UNARY_CASE(Tanh)
    LS_UNARY_CASE(Relu)
    LS_UNARY_CASE(Relu2)
    LS_UNARY_CASE(Silu)
    LS_UNARY_CASE(Gelu)
    LS_UNARY_CASE(GeluTanh)
    LS_UNARY_CASE(QuickGelu)
    LS_UNARY_CASE(Softplus)
    default:
      throw std::invalid_argument("unary: unknown op");
  }
#undef LS_UNARY_CASE
}

void launch_affine(void *out, const void *x, ET t, size_t n, float scale, float shift, cudaStream_t s) {
  LS_DISPATCH_FLOAT(t, T, { run_map<T, T>(out, x, n, Affine{scale, shift}, s); });
}

void launch_binary(void *out, const void *a, const void *b, ET t, BinaryOp op, int rank, const int64_t *shape,
                   const int64_t *aStrides, const int64_t *bStrides, cudaStream_t s) {
  // Merge axes that are contiguous in both inputs and drop size-1 axes: most broadcasts become rank ≤ 2.
  int64_t sh[kMaxRank], as[kMaxRank], bs[kMaxRank];
  int r = 0;
  size_t n = 1;
  for (int d = 0; d < rank; d++) {
    n *= static_cast<size_t>(shape[d]);
    if (shape[d] == 1) continue;
    if (r > 0 && as[r - 1] == aStrides[d] * shape[d] && bs[r - 1] == bStrides[d] * shape[d]) {
      sh[r - 1] *= shape[d];
      as[r - 1] = aStrides[d];
      bs[r - 1] = bStrides[d];
      continue;
    }
    LS_REQUIRE(r < kMaxRank, "binary: too many axes after merging");
    sh[r] = shape[d];
    as[r] = aStrides[d];
    bs[r] = bStrides[d];
    r++;
  }
  if (n == 0) return;
  const bool contiguous = r <= 1 && (r == 0 || (as[0] == 1 && bs[0] == 1));
  LS_DISPATCH_FLOAT(t, T, {
    auto o = static_cast<T *>(out);
    auto x = static_cast<const T *>(a);
    auto y = static_cast<const T *>(b);
    constexpr int V = kVec<T>;
    if (contiguous && aligned_to(o, 16) && aligned_to(x, 16) && aligned_to(y, 16)) {
      binary_contiguous<T, V><<<grid_for(ceil_div<size_t>(n, V), kBlock), kBlock, 0, s>>>(o, x, y, n, op);
    } else if (contiguous) {
      binary_contiguous<T, 1><<<grid_for(n, kBlock), kBlock, 0, s>>>(o, x, y, n, op);
    } else {
      LS_REQUIRE(n < (size_t(1) << 32), "binary: broadcast of more than 2^32 elements");
      const bool rows = (as[r - 1] <= 1) && (bs[r - 1] <= 1);  // innermost axis contiguous or broadcast
      Strides g{};
      g.rank = rows ? r - 1 : r;
      bool packable = rows && sh[r - 1] % V == 0 && aligned_to(o, 16) && aligned_to(x, 16) && aligned_to(y, 16);
      for (int d = 0; d < g.rank; d++) {
        g.shape[d] = static_cast<uint32_t>(sh[d]);
        g.a[d] = static_cast<uint32_t>(as[d]);
        g.b[d] = static_cast<uint32_t>(bs[d]);
        // Row starts must stay pack-aligned in every input that is read along the row.
        if ((as[r - 1] == 1 && as[d] % V) || (bs[r - 1] == 1 && bs[d] % V)) packable = false;
      }
      if (rows && packable) {
        const uint32_t ppr = static_cast<uint32_t>(sh[r - 1] / V), packs = static_cast<uint32_t>(n / V);
        binary_rows<T, V><<<grid_for(packs, kBlock), kBlock, 0, s>>>(o, x, y, packs, ppr, g, as[r - 1] == 1,
                                                                     bs[r - 1] == 1, op);
      } else if (rows) {
        binary_rows<T, 1><<<grid_for(n, kBlock), kBlock, 0, s>>>(o, x, y, static_cast<uint32_t>(n),
                                                                 static_cast<uint32_t>(sh[r - 1]), g,
                                                                 as[r - 1] == 1, bs[r - 1] == 1, op);
      } else {
        binary_strided<T><<<grid_for(n, kBlock), kBlock, 0, s>>>(o, x, y, static_cast<uint32_t>(n), g, op);
      }
    }
    LS_CHECK_LAUNCH();
  });
}
