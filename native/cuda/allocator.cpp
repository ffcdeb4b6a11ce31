#include "allocator.h"

#include <cuda_runtime.h>

#include "common.h"

namespace {
std::string mib(size_t b) { return std::to_string((b + (1 << 19)) >> 20) + " MiB"; }
}  // namespace

OutOfMemory::OutOfMemory(size_t requested, size_t freeBytes, size_t heldBytes, size_t totalBytes)
    : std::runtime_error("CUDA out of memory: requested " + mib(requested) + ", the GPU has " + mib(freeBytes) +
                         " free of " + mib(totalBytes) + " and this process holds " + mib(heldBytes) +
                         ". Use fewer frames or tokens, a smaller model, or free other GPU processes."),
      requested(requested),
      freeBytes(freeBytes),
      heldBytes(heldBytes),
      totalBytes(totalBytes) {}

size_t size_class(size_t bytes) {
  constexpr size_t kSmall = 512, kLarge = size_t(2) << 20, kSplit = size_t(1) << 20;
  return bytes < kSplit ? ceil_div(bytes, kSmall) * kSmall : ceil_div(bytes, kLarge) * kLarge;
}

void *CachingAllocator::allocate(size_t bytes) {
  if (bytes == 0) return nullptr;
  const size_t cls = size_class(bytes);
  void *p = nullptr;
  auto it = free_.find(cls);
  if (it != free_.end() && !it->second.empty()) {
    p = it->second.back();
    it->second.pop_back();
  } else {
    cudaError_t e = cudaMalloc(&p, cls);
    if (e == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();  // clear the (non-sticky) error before retrying
      emptyCache();
      e = cudaMalloc(&p, cls);
    }
    if (e == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      size_t freeB = 0, total = 0;
      (void)cudaMemGetInfo(&freeB, &total);
      throw OutOfMemory(bytes, freeB, reserved_, total);
    }
    LS_CUDA_CHECK(e);
    reserved_ += cls;
  }
  live_[p] = {cls, bytes};
  current_ += bytes;
  if (current_ > peak_) peak_ = current_;
  return p;
}

void CachingAllocator::release(void *p) {
  if (!p) return;
  auto it = live_.find(p);
  LS_REQUIRE(it != live_.end(), "release of a pointer this allocator does not own");
  current_ -= it->second.requested;
  free_[it->second.classBytes].push_back(p);
  live_.erase(it);
}

void CachingAllocator::emptyCache() {
  for (auto &[cls, blocks] : free_) {
    for (void *p : blocks) {
      LS_CUDA_CHECK(cudaFree(p));
      reserved_ -= cls;
    }
  }
  free_.clear();
}
