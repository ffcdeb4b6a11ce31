// Device helpers shared by the addon's kernels: f16 conversions, integer conversions, vector packs,
// block-wide reductions and a dtype dispatch over the three float storage types.
#pragma once

#include <cuda_fp16.h>

#include <cfloat>

#include "common.h"
#include "kernels.h"

__device__ __forceinline__ float to_f32(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_f32(int32_t x) { return static_cast<float>(x); }
__device__ __forceinline__ float to_f32(uint8_t x) { return static_cast<float>(x); }
template <>
__device__ __forceinline__ __half from_f32<__half>(float x) {
  return __float2half_rn(x);
}
/** Integers truncate toward zero, as the CPU backend's fromF32 does. */
template <>
__device__ __forceinline__ int32_t from_f32<int32_t>(float x) {
  return static_cast<int32_t>(truncf(x));
}
template <>
__device__ __forceinline__ uint8_t from_f32<uint8_t>(float x) {
  return static_cast<uint8_t>(static_cast<int32_t>(truncf(x)));
}

/** V elements of T moved with aligned accesses of up to 16 bytes (two for 8 f32 next to 8 bf16). */
template <typename T, int V>
struct alignas(sizeof(T) * V > 16 ? 16 : sizeof(T) * V) Pack {
  T v[V];
};

/** Elements per 16-byte access. */
template <typename T>
constexpr int kVec = 16 / sizeof(T);

/** p[i, i+V) as f32 (p + i must be aligned to the pack). */
template <typename T, int V>
__device__ __forceinline__ void load_pack(const T *p, int64_t i, float (&v)[V]) {
  const Pack<T, V> a = *reinterpret_cast<const Pack<T, V> *>(p + i);
#pragma unroll
  for (int j = 0; j < V; j++) v[j] = to_f32(a.v[j]);
}

/** p[i, i+V) = v rounded to T. */
template <typename T, int V>
__device__ __forceinline__ void store_pack(T *p, int64_t i, const float (&v)[V]) {
  Pack<T, V> a;
#pragma unroll
  for (int j = 0; j < V; j++) a.v[j] = from_f32<T>(v[j]);
  *reinterpret_cast<Pack<T, V> *>(p + i) = a;
}

inline bool aligned_to(const void *p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

/** Sum over a block (blockDim.x a multiple of 32, ≤ 1024); every thread gets the result. */
__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
template <bool IsMax>
__device__ __forceinline__ float block_reduce(float v) {
  __shared__ float partial[32];
  __shared__ float result;
  v = IsMax ? warp_max(v) : warp_sum(v);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    const int nw = blockDim.x >> 5;
    float w = lane < nw ? partial[lane] : (IsMax ? -INFINITY : 0.f);
    w = IsMax ? warp_max(w) : warp_sum(w);
    if (lane == 0) result = w;
  }
  __syncthreads();
  const float r = result;
  __syncthreads();  // partial/result may be reused by the next call
  return r;
}
__device__ __forceinline__ float block_sum(float v) { return block_reduce<false>(v); }
__device__ __forceinline__ float block_max(float v) { return block_reduce<true>(v); }

/** Runs `...` with T bound to the storage type of a float ET (f32, bf16, f16); throws for other types. */
#define LS_DISPATCH_FLOAT(et, T, ...)                                                              \
  do {                                                                                             \
    switch (et) {                                                                                  \
      case ET::F32: {                                                                              \
        using T = float;                                                                           \
        __VA_ARGS__ break;                                                                         \
      }                                                                                            \
      case ET::BF16: {                                                                             \
        using T = __nv_bfloat16;                                                                   \
        __VA_ARGS__ break;                                                                         \
      }                                                                                            \
      case ET::F16: {                                                                              \
        using T = __half;                                                                          \
        __VA_ARGS__ break;                                                                         \
      }                                                                                            \
      default:                                                                                     \
        throw std::invalid_argument(std::string(__func__) + ": expected a float dtype");           \
    }                                                                                              \
  } while (0)

/** Runs `...` with T bound to the storage type of any ET. */
#define LS_DISPATCH_ALL(et, T, ...)                  \
  do {                                               \
    switch (et) {                                    \
      case ET::I32: {                                \
        using T = int32_t;                           \
        __VA_ARGS__ break;                           \
      }                                              \
      case ET::U8: {                                 \
        using T = uint8_t;                           \
        __VA_ARGS__ break;                           \
      }                                              \
      default:                                       \
        LS_DISPATCH_FLOAT(et, T, __VA_ARGS__);       \
    }                                                \
  } while (0)

/** Grid size for n work items of `block` threads, capped so grid-stride loops take over. */
inline unsigned grid_for(size_t n, unsigned block) {
  const size_t g = (n + block - 1) / block;
  return static_cast<unsigned>(g < 65535u * 16 ? (g ? g : 1) : 65535u * 16);
}

/**
 * Lets kernel K launch with `bytes` of dynamic shared memory: past the default 48 KB a kernel must opt in, here
 * once for each new largest size asked (per kernel and process).
 */
template <auto K>
void allow_smem(size_t bytes) {
  static size_t allowed = 48 * 1024;
  if (bytes <= allowed) return;
  LS_CUDA_CHECK(cudaFuncSetAttribute(reinterpret_cast<const void *>(K), cudaFuncAttributeMaxDynamicSharedMemorySize,
                                     static_cast<int>(bytes)));
  allowed = bytes;
}
