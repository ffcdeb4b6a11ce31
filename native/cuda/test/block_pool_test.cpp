// The caching allocator's bookkeeping (block_pool.h) on a fake device with a capacity, on the CPU:
//   g++ -std=c++17 -O1 -I native/cuda native/cuda/test/block_pool_test.cpp -o block_pool_test && ./block_pool_test
// Prints one line per check and exits 1 on the first failure (test/native/block_pool.test.ts runs it).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>

#include "block_pool.h"

namespace {

/** A device of `capacity` bytes: addresses from a counter (never dereferenced), outstanding allocations tracked. */
struct FakeMemory {
  static inline size_t capacity = size_t(1) << 40, used = 0, next = 4096;
  static inline std::map<size_t, size_t> outstanding;  // address → bytes
  static void *get(size_t bytes) {
    if (used + bytes > capacity) return nullptr;
    used += bytes;
    const size_t at = next;
    next += bytes + 4096;  // a gap: neighbouring device allocations are never contiguous by accident
    outstanding[at] = bytes;
    return reinterpret_cast<void *>(at);
  }
  static void put(void *p) {
    auto it = outstanding.find(reinterpret_cast<size_t>(p));
    if (it == outstanding.end()) fail("put of an address the device never gave");
    used -= it->second;
    outstanding.erase(it);
  }
  static void info(size_t *freeBytes, size_t *total) {
    *freeBytes = capacity - used;
    *total = capacity;
  }
  [[noreturn]] static void fail(const char *what) {
    std::printf("FAIL %s\n", what);
    std::exit(1);
  }
};

constexpr size_t MiB = size_t(1) << 20;

void check(bool ok, const char *what) {
  if (!ok) FakeMemory::fail(what);
  std::printf("ok   %s\n", what);
}

void reset(size_t capacity) {
  FakeMemory::capacity = capacity;
  FakeMemory::used = 0;
  FakeMemory::outstanding.clear();
}

void freed_memory_is_merged_and_split() {
  reset(size_t(1) << 40);
  BlockPool<FakeMemory> pool;
  void *a = pool.allocate(100 * MiB), *b = pool.allocate(100 * MiB);
  pool.release(a);
  pool.release(b);
  check(pool.stats().reserved == 200 * MiB, "two freed blocks stay reserved (200 MiB)");
  // Two separate device allocations cannot merge: a 150 MiB request needs a new one.
  void *c = pool.allocate(150 * MiB);
  check(pool.stats().reserved == 350 * MiB, "blocks of different device allocations are not merged");
  pool.release(c);
  // Within one allocation: split a 300 MiB block into 50 + 250, free both, get the 300 back whole.
  reset(size_t(1) << 40);
  BlockPool<FakeMemory> one;
  one.release(one.allocate(300 * MiB));
  void *x = one.allocate(50 * MiB), *y = one.allocate(250 * MiB);
  check(one.stats().reserved == 300 * MiB, "a freed block serves two smaller requests (split)");
  check(static_cast<char *>(y) == static_cast<char *>(x) + 50 * MiB, "the split pieces are adjacent");
  one.release(x);
  one.release(y);
  void *z = one.allocate(300 * MiB);
  check(one.stats().reserved == 300 * MiB && z == x, "released neighbours merge back into one block");
  one.release(z);
  // The middle piece is freed last: it must merge with both neighbours.
  void *p = one.allocate(100 * MiB), *q = one.allocate(100 * MiB), *r = one.allocate(100 * MiB);
  one.release(p);
  one.release(r);
  one.release(q);
  check(one.allocate(300 * MiB) == p, "a block freed between two free neighbours merges with both");
  one.emptyCache();
  check(one.stats().reserved == 300 * MiB, "emptyCache keeps a device allocation that is in use");
}

void empty_cache_and_out_of_memory() {
  reset(1000 * MiB);
  BlockPool<FakeMemory> pool;
  void *a = pool.allocate(600 * MiB);
  pool.release(a);
  void *s = pool.allocate(1000);  // small: its own cached class
  pool.release(s);
  // 700 MiB do not fit beside the cached 600 MiB block: the pool empties its cache and retries.
  void *b = pool.allocate(700 * MiB);
  check(pool.stats().reserved == 700 * MiB && FakeMemory::used == 700 * MiB, "a full device empties the cache, then succeeds");
  bool threw = false;
  try {
    pool.allocate(400 * MiB);
  } catch (const OutOfMemory &e) {
    threw = e.requested == 400 * MiB && e.heldBytes == 700 * MiB && e.totalBytes == 1000 * MiB;
  }
  check(threw, "an impossible request throws OutOfMemory with the numbers");
  pool.release(b);
  pool.emptyCache();
  check(pool.stats().reserved == 0 && FakeMemory::outstanding.empty(), "emptyCache returns everything when nothing is live");
  threw = false;
  try {
    pool.release(reinterpret_cast<void *>(12345));
  } catch (const std::invalid_argument &) {
    threw = true;
  }
  check(threw, "releasing a foreign pointer is refused");
}

/** Random allocations and releases: live blocks never overlap, and the statistics add up. */
void random_sequences() {
  for (unsigned seed = 1; seed <= 20; ++seed) {
    reset(size_t(1) << 40);  // the fake device never fills: this checks the bookkeeping, not fragmentation
    std::mt19937 rng(seed);
    BlockPool<FakeMemory> pool;
    std::map<char *, size_t> live;  // address → requested bytes
    size_t requested = 0;
    for (int step = 0; step < 3000; ++step) {
      if (!live.empty() && rng() % 100 < 50) {
        auto it = live.begin();
        std::advance(it, rng() % live.size());
        requested -= it->second;
        pool.release(it->first);
        live.erase(it);
      } else {
        const size_t bytes = rng() % 3 ? 1 + rng() % (3 * MiB) : 1 + rng() % (300 * MiB);
        char *p = static_cast<char *>(pool.allocate(bytes));
        auto next = live.lower_bound(p);
        if (next != live.end() && p + bytes > next->first) FakeMemory::fail("a block overlaps the next live one");
        if (next != live.begin() && std::prev(next)->first + std::prev(next)->second > p)
          FakeMemory::fail("a block overlaps the previous live one");
        live[p] = bytes;
        requested += bytes;
      }
      if (step % 500 == 499) pool.emptyCache();
      const MemoryStats s = pool.stats();
      if (s.current != requested) FakeMemory::fail("current differs from the live requests");
      if (s.reserved != FakeMemory::used) FakeMemory::fail("reserved differs from what the device gave");
      if (s.peak < s.current) FakeMemory::fail("peak below current");
    }
    for (auto &[p, n] : live) pool.release(p);
    pool.emptyCache();
    if (pool.stats().reserved != 0 || !FakeMemory::outstanding.empty())
      FakeMemory::fail("memory left with the device after releasing everything");
  }
  check(true, "20 random sequences of 3,000 steps: no overlap, statistics exact, nothing leaked");
}

}  // namespace

int main() {
  std::setvbuf(stdout, nullptr, _IONBF, 0);
  freed_memory_is_merged_and_split();
  empty_cache_and_out_of_memory();
  random_sequences();
  std::printf("PASSED\n");
  return 0;
}
