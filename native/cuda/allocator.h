// The caching device allocator: freed memory is kept and reused without calling cudaFree (which synchronises
// the device); the bookkeeping is block_pool.h. All work runs on one stream, so a block released after its last
// kernel was enqueued can be handed to the next allocation at once.
#pragma once

#include <cstddef>

#include "block_pool.h"

/** cudaMalloc / cudaFree for BlockPool: get returns nullptr when the device is out of memory. */
struct CudaMemory {
  static void *get(size_t bytes);
  static void put(void *p);
  static void info(size_t *freeBytes, size_t *totalBytes);
};

using CachingAllocator = BlockPool<CudaMemory>;
