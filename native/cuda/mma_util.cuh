// Thin wrappers over the Ampere+ PTX used by the hand-written tensor-core kernels (attention, SSD):
// cp.async global→shared copies, ldmatrix and mma.sync m16n8k16 (bf16 in, f32 accumulate).
#pragma once

#include "common.h"

/** 16-byte async copy; `srcBytes` 0 zero-fills the destination without reading `src`. */
__device__ __forceinline__ void cp_async16(void *dst, const void *src, int srcBytes) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(src), "r"(srcBytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

/** Four 8×8 b16 matrices; lanes 8m..8m+7 address the rows of matrix m. */
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void *p) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(s));
}
/** As ldmatrix_x4 but each matrix is transposed on the way (row-major V read as the col-major B operand). */
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void *p) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(s));
}

/** c += a·b for one m16n8k16 tile: a row-major 16×16 bf16 (4 regs), b col-major 16×8 (2 regs), c f32. */
__device__ __forceinline__ void mma_bf16_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/** Two f32 → one register of two bf16 (lo in the low half, as the mma fragments expect). */
__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t *>(&v);
}

/** 2^x with the SFU (ex2.approx.ftz): ~2 ulp, 2^−∞ = 0. */
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

/** Multiprocessor count of the current device (split-K planning); queried once per process. */
inline int current_sm_count() {
  static const int n = [] {
    int dev = 0, count = 0;
    LS_CUDA_CHECK(cudaGetDevice(&dev));
    LS_CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, dev));
    return count;
  }();
  return n;
}

/** Raises kernel K's dynamic shared-memory limit to `bytes`, once per kernel and process. */
template <auto K>
void allow_smem_once(size_t bytes) {
  static const bool done = [&] {
    LS_CUDA_CHECK(cudaFuncSetAttribute(K, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
    return true;
  }();
  (void)done;
}

/** Rounds a byte count up so that consecutive workspace regions stay 256-byte aligned. */
inline size_t align256(size_t n) { return (n + 255) & ~static_cast<size_t>(255); }
