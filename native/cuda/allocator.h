// A caching device allocator: freed blocks go to per-size-class free lists and are reused without calling
// cudaFree (which synchronises the device). All work runs on one stream, so a block released after its
// last kernel was enqueued can be handed to the next allocation at once.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

/** Device memory exhausted even after emptying the cache; carries the numbers for the message. */
struct OutOfMemory : std::runtime_error {
  OutOfMemory(size_t requested, size_t freeBytes, size_t heldBytes, size_t totalBytes);
  size_t requested, freeBytes, heldBytes, totalBytes;
};

struct MemoryStats {
  size_t current;   // bytes requested by live allocations
  size_t peak;      // high-water mark of current since the last resetPeak
  size_t reserved;  // bytes obtained from cudaMalloc (live + cached)
};

class CachingAllocator {
 public:
  /** A block of at least `bytes`; nullptr for 0 bytes. Throws OutOfMemory. */
  void *allocate(size_t bytes);
  /** Returns a block to its free list (nullptr is ignored). */
  void release(void *p);
  /** cudaFree every cached block. */
  void emptyCache();
  MemoryStats stats() const { return {current_, peak_, reserved_}; }
  void resetPeak() { peak_ = current_; }

 private:
  struct Block {
    size_t classBytes;
    size_t requested;
  };
  std::unordered_map<size_t, std::vector<void *>> free_;  // size class → cached blocks
  std::unordered_map<void *, Block> live_;
  size_t current_ = 0, peak_ = 0, reserved_ = 0;
};

/** The size class of a request: 512-byte steps below 1 MiB, 2 MiB steps above (bounded waste, few classes). */
size_t size_class(size_t bytes);
