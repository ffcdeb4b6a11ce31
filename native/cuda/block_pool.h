// The caching allocator's bookkeeping, independent of CUDA so that it is tested on the CPU
// (native/cuda/test/block_pool_test.cpp). `Memory` supplies the device: static `void *get(size_t)` (nullptr when
// the device is out of memory), `void put(void *)` and `void info(size_t *free, size_t *total)`.
//
// Requests under 1 MiB are rounded to 512 bytes and cached per size. Larger ones are rounded to 2 MiB and
// served best-fit from freed blocks, which are split when they are larger by 2 MiB or more, and merged with
// their free neighbours of the same device allocation when released: memory freed by one phase of a long video
// serves the next phase's differently sized buffers instead of staying reserved beside them.
#pragma once

#include <cstddef>
#include <map>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

/** Device memory exhausted even after emptying the cache; carries the numbers for the message. */
struct OutOfMemory : std::runtime_error {
  OutOfMemory(size_t requested, size_t freeBytes, size_t heldBytes, size_t totalBytes)
      : std::runtime_error("CUDA out of memory: requested " + mib(requested) + ", the GPU has " + mib(freeBytes) +
                           " free of " + mib(totalBytes) + " and this process holds " + mib(heldBytes) +
                           ". Use fewer frames or tokens, a smaller model, or free other GPU processes."),
        requested(requested),
        freeBytes(freeBytes),
        heldBytes(heldBytes),
        totalBytes(totalBytes) {}
  size_t requested, freeBytes, heldBytes, totalBytes;

 private:
  static std::string mib(size_t b) { return std::to_string((b + (1 << 19)) >> 20) + " MiB"; }
};

struct MemoryStats {
  size_t current;   // bytes requested by live allocations
  size_t peak;      // high-water mark of current since the last resetPeak
  size_t reserved;  // bytes obtained from the device (live + cached)
};

constexpr size_t kSmallLimit = size_t(1) << 20, kSmallStep = 512, kLargeStep = size_t(2) << 20;

/** The size class of a request: 512-byte steps below 1 MiB, 2 MiB steps above (bounded waste, few classes). */
inline size_t size_class(size_t bytes) {
  const size_t step = bytes < kSmallLimit ? kSmallStep : kLargeStep;
  return (bytes + step - 1) / step * step;
}

template <typename Memory>
class BlockPool {
 public:
  BlockPool() = default;
  BlockPool(const BlockPool &) = delete;
  BlockPool &operator=(const BlockPool &) = delete;
  ~BlockPool() {
    for (auto &[p, b] : large_) delete b;
  }

  /** A block of at least `bytes`; nullptr for 0 bytes. Throws OutOfMemory. */
  void *allocate(size_t bytes) {
    if (bytes == 0) return nullptr;
    const size_t cls = size_class(bytes);
    void *p = cls < kSmallLimit ? takeSmall(cls) : takeLarge(cls);
    live_[p] = {cls, bytes};
    current_ += bytes;
    if (current_ > peak_) peak_ = current_;
    return p;
  }

  /** Returns a block to the cache (nullptr is ignored). */
  void release(void *p) {
    if (!p) return;
    auto it = live_.find(p);
    if (it == live_.end()) throw std::invalid_argument("release of a pointer this allocator does not own");
    current_ -= it->second.requested;
    if (it->second.cls < kSmallLimit) small_[it->second.cls].push_back(p);
    else giveLarge(large_.at(static_cast<char *>(p)));
    live_.erase(it);
  }

  /** Gives back to the device every cached small block and every large allocation that is wholly free. */
  void emptyCache() {
    for (auto &[cls, blocks] : small_) {
      for (void *p : blocks) {
        Memory::put(p);
        reserved_ -= cls;
      }
    }
    small_.clear();
    for (auto it = free_.begin(); it != free_.end();) {
      Block *b = it->second;
      if (b->prev || b->next) {
        ++it;
        continue;
      }
      Memory::put(b->ptr);
      reserved_ -= b->size;
      large_.erase(b->ptr);
      delete b;
      it = free_.erase(it);
    }
  }

  MemoryStats stats() const { return {current_, peak_, reserved_}; }
  void resetPeak() { peak_ = current_; }

 private:
  /** A piece of one device allocation; prev/next are its neighbours in that allocation. */
  struct Block {
    char *ptr;
    size_t size;
    Block *prev, *next;
    bool free;
    typename std::multimap<size_t, Block *>::iterator slot;  // its entry in free_ while free
  };
  struct Live {
    size_t cls, requested;
  };

  void *takeSmall(size_t cls) {
    auto &list = small_[cls];
    if (!list.empty()) {
      void *p = list.back();
      list.pop_back();
      return p;
    }
    void *p = fromDevice(cls);
    reserved_ += cls;
    return p;
  }

  void *takeLarge(size_t cls) {
    auto it = free_.lower_bound(cls);
    if (it == free_.end()) {
      Block *b = new Block{static_cast<char *>(fromDevice(cls)), cls, nullptr, nullptr, false, {}};
      reserved_ += cls;
      large_[b->ptr] = b;
      return b->ptr;
    }
    Block *b = it->second;
    free_.erase(it);
    b->free = false;
    if (b->size - cls >= kLargeStep) {  // split: the tail stays cached
      Block *rest = new Block{b->ptr + cls, b->size - cls, b, b->next, true, {}};
      if (b->next) b->next->prev = rest;
      b->next = rest;
      b->size = cls;
      large_[rest->ptr] = rest;
      rest->slot = free_.emplace(rest->size, rest);
    }
    return b->ptr;
  }

  void giveLarge(Block *b) {
    b->free = true;
    if (Block *n = b->next; n && n->free) {  // absorb the next block
      free_.erase(n->slot);
      b->size += n->size;
      b->next = n->next;
      if (n->next) n->next->prev = b;
      large_.erase(n->ptr);
      delete n;
    }
    if (Block *q = b->prev; q && q->free) {  // let the previous block absorb this one
      free_.erase(q->slot);
      q->size += b->size;
      q->next = b->next;
      if (b->next) b->next->prev = q;
      large_.erase(b->ptr);
      delete b;
      b = q;
    }
    b->slot = free_.emplace(b->size, b);
  }

  /** Device memory, emptying the cache once when the device is full. */
  void *fromDevice(size_t bytes) {
    void *p = Memory::get(bytes);
    if (!p) {
      emptyCache();
      p = Memory::get(bytes);
    }
    if (!p) {
      size_t freeB = 0, total = 0;
      Memory::info(&freeB, &total);
      throw OutOfMemory(bytes, freeB, reserved_, total);
    }
    return p;
  }

  std::unordered_map<size_t, std::vector<void *>> small_;  // size class → cached blocks
  std::multimap<size_t, Block *> free_;                    // free large blocks by size
  std::unordered_map<char *, Block *> large_;              // every large block by address
  std::unordered_map<void *, Live> live_;
  size_t current_ = 0, peak_ = 0, reserved_ = 0;
};
