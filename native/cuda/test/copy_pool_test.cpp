// copy_pool.h against plain memcpy: sizes below, at and past the threshold, odd and page-straddling ones, with 0
// to 4 workers, many copies in a row (each returns only when its bytes are all there) and the pool torn down.
// Built and run by test/backends/copy_pool.test.ts (g++ -pthread).
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "../copy_pool.h"

int main() {
  std::mt19937 rng(7);
  const size_t sizes[] = {0, 1, 4095, CopyPool::kMinBytes - 1, CopyPool::kMinBytes, CopyPool::kMinBytes + 1,
                          1234567, (size_t(5) << 20) + 3, size_t(9) << 20};
  int failures = 0, copies = 0;
  for (unsigned workers = 0; workers <= 4; workers++) {
    CopyPool pool(workers);
    for (int round = 0; round < 5; round++)
      for (size_t n : sizes) {
        std::vector<char> src(n + 64), dst(n + 64, 0x5a);
        uint32_t v = rng();
        for (char &c : src) c = static_cast<char>((v = v * 1664525u + 1013904223u) >> 24);
        const size_t at = rng() % 64, from = rng() % 64;  // unaligned ends
        const size_t len = n - std::min(n, std::max(at, from));
        pool.copy(dst.data() + at, src.data() + from, len);
        copies++;
        bool ok = std::memcmp(dst.data() + at, src.data() + from, len) == 0;
        for (size_t i = 0; i < at && ok; i++) ok = dst[i] == 0x5a;  // nothing written before the target
        for (size_t i = at + len; i < dst.size() && ok; i++) ok = dst[i] == 0x5a;  // nor after it
        if (!ok) {
          failures++;
          std::printf("FAIL workers %u size %zu (from %zu to %zu)\n", workers, len, from, at);
        }
      }
  }
  std::printf("%s: %d copies, %d failure(s)\n", failures ? "FAILED" : "PASSED", copies, failures);
  return failures ? 1 : 0;
}
