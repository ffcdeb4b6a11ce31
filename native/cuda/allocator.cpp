#include "allocator.h"

#include <cuda_runtime.h>

#include "common.h"

void *CudaMemory::get(size_t bytes) {
  void *p = nullptr;
  const cudaError_t e = cudaMalloc(&p, bytes);
  if (e == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();  // clear the (non-sticky) error: the caller empties its cache and retries
    return nullptr;
  }
  LS_CUDA_CHECK(e);
  return p;
}

void CudaMemory::put(void *p) { LS_CUDA_CHECK(cudaFree(p)); }

void CudaMemory::info(size_t *freeBytes, size_t *totalBytes) {
  *freeBytes = *totalBytes = 0;
  (void)cudaMemGetInfo(freeBytes, totalBytes);
}
