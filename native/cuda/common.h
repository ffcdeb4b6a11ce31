// Shared by every CUDA translation unit of the longshot addon: the dtype tag, error checking that throws,
// and bf16/f32 load/store helpers. Launch functions take raw device pointers, a DT tag and a stream, return
// void and report errors by throwing CudaError (the binding turns it into a JS exception).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

/** Element type of a floating-point tensor handed to a kernel. Accumulation is always f32. */
enum class DT { F32, BF16 };

/** A CUDA failure with a readable message ("file:line: call: error string"). */
struct CudaError : std::runtime_error {
  explicit CudaError(const std::string &msg, cudaError_t code = cudaErrorUnknown)
      : std::runtime_error(msg), code(code) {}
  cudaError_t code;
};

[[noreturn]] inline void ls_throw_cuda(cudaError_t e, const char *what, const char *file, int line) {
  throw CudaError(std::string(file) + ":" + std::to_string(line) + ": " + what + ": " + cudaGetErrorName(e) +
                      " (" + cudaGetErrorString(e) + ")",
                  e);
}

/** Evaluates a cudaError_t expression and throws CudaError when it is not cudaSuccess. */
#define LS_CUDA_CHECK(expr)                                                     \
  do {                                                                          \
    cudaError_t ls_err_ = (expr);                                               \
    if (ls_err_ != cudaSuccess) ls_throw_cuda(ls_err_, #expr, __FILE__, __LINE__); \
  } while (0)

/** Checks the last kernel launch (bad configuration, missing arch image). Use right after <<<...>>>. */
#define LS_CHECK_LAUNCH() LS_CUDA_CHECK(cudaGetLastError())

/** Throws std::invalid_argument with a message when a host-side precondition fails. */
#define LS_REQUIRE(cond, msg)                                                                 \
  do {                                                                                        \
    if (!(cond)) throw std::invalid_argument(std::string(__FILE__) + ": " + (msg)); \
  } while (0)

/**
 * Runs `...` with `T` bound to float (DT::F32) or __nv_bfloat16 (DT::BF16):
 *   LS_DISPATCH_DT(dt, T, { my_kernel<T><<<g, b, 0, stream>>>(...); });
 */
#define LS_DISPATCH_DT(dt, T, ...)       \
  do {                                   \
    if ((dt) == DT::F32) {               \
      using T = float;                   \
      __VA_ARGS__                        \
    } else {                             \
      using T = __nv_bfloat16;           \
      __VA_ARGS__                        \
    }                                    \
  } while (0)

inline constexpr size_t dt_bytes(DT dt) { return dt == DT::F32 ? 4 : 2; }

template <typename I>
__host__ __device__ inline constexpr I ceil_div(I a, I b) {
  return (a + b - 1) / b;
}

// ---- element conversion: storage type <-> f32 (compute type) ----------------------------------------------

__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T>
__device__ __forceinline__ T from_f32(float x);
template <>
__device__ __forceinline__ float from_f32<float>(float x) {
  return x;
}
/** Round-to-nearest-even, as torch and the CPU backend do. */
template <>
__device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

/** p[i] as f32. */
template <typename T>
__device__ __forceinline__ float load_f32(const T *p, size_t i) {
  return to_f32(p[i]);
}
/** p[i] = v rounded to T. */
template <typename T>
__device__ __forceinline__ void store_f32(T *p, size_t i, float v) {
  p[i] = from_f32<T>(v);
}

/** Two adjacent bf16 values (4-byte aligned) as f32, for vectorised loops. */
__device__ __forceinline__ float2 load_bf16x2(const __nv_bfloat16 *p) {
  return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(p));
}
__device__ __forceinline__ void store_bf16x2(__nv_bfloat16 *p, float a, float b) {
  *reinterpret_cast<__nv_bfloat162 *>(p) = __floats2bfloat162_rn(a, b);
}
