// What layout.cu needs beyond emu.h and grad_atomic.h under the CPU emulation: a 64-bit atomicCAS, __fmul_rn and
// cudaMemcpyFromSymbolAsync on a host variable.
#pragma once
#include <atomic>
#include <cstring>

inline unsigned long long atomicCAS(unsigned long long *p, unsigned long long expected, unsigned long long v) {
  std::atomic_ref<unsigned long long>(*p).compare_exchange_strong(expected, v);
  return expected;
}
inline float __fmul_rn(float a, float b) { return a * b; }
template <typename T>
cudaError_t cudaMemcpyFromSymbolAsync(void *dst, const T &symbol, size_t n, size_t offset, cudaMemcpyKind,
                                      cudaStream_t) {
  std::memcpy(dst, reinterpret_cast<const char *>(&symbol) + offset, n);
  return cudaSuccess;
}
template <typename T>
cudaError_t cudaMemcpyToSymbolAsync(const T &symbol, const void *src, size_t n, size_t offset, cudaMemcpyKind,
                                    cudaStream_t) {
  std::memcpy(const_cast<char *>(reinterpret_cast<const char *>(&symbol)) + offset, src, n);
  return cudaSuccess;
}
