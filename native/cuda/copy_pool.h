// A memcpy split over a few threads, for the pinned staging copies of large uploads (addon.cpp). Plain C++: its
// test builds with g++ alone (test/backends/copy_pool.test.ts).
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

/**
 * The host copy of a large upload holds the JS thread (a 128-video training batch of needle frames, 124 uploads of
 * 1.2 MB, took 24 ms of a step's host time copied by one thread). copy() splits it into page-aligned parts: the
 * caller copies the first, each worker one of the others, and copy() returns when all are done. Copies come from
 * one thread at a time (the JS thread).
 */
class CopyPool {
 public:
  static constexpr size_t kMinBytes = size_t(256) << 10;  // smaller copies stay on the caller's thread
  /** `workers` threads beside the caller (default: up to 4, leaving a core to the rest of the process). */
  explicit CopyPool(unsigned workers = default_workers()) {
    for (unsigned i = 0; i < workers; i++) threads_.emplace_back([this, i] { work(i + 1); });
  }
  ~CopyPool() {
    {
      std::lock_guard<std::mutex> lk(m_);
      stop_ = true;
      gen_++;
    }
    go_.notify_all();
    for (std::thread &t : threads_) t.join();
  }
  CopyPool(const CopyPool &) = delete;
  CopyPool &operator=(const CopyPool &) = delete;

  void copy(char *dst, const char *src, size_t n) {
    if (n < kMinBytes || threads_.empty()) {
      std::memcpy(dst, src, n);
      return;
    }
    const Job job{dst, src, n, (n / (threads_.size() + 1) + 4095) & ~size_t(4095)};
    {
      std::lock_guard<std::mutex> lk(m_);
      job_ = job;
      pending_ = threads_.size();
      gen_++;
    }
    go_.notify_all();
    part(job, 0);
    std::unique_lock<std::mutex> lk(m_);
    done_.wait(lk, [this] { return pending_ == 0; });
  }

  static unsigned default_workers() {
    const unsigned hw = std::thread::hardware_concurrency();
    return std::min(4u, hw > 1 ? hw - 1 : 0u);
  }

 private:
  struct Job {
    char *dst;
    const char *src;
    size_t n, slice;
  };
  static void part(const Job &j, size_t i) {
    const size_t off = i * j.slice;
    if (off < j.n) std::memcpy(j.dst + off, j.src + off, std::min(j.slice, j.n - off));
  }
  void work(size_t i) {
    size_t seen = 0;
    for (;;) {
      std::unique_lock<std::mutex> lk(m_);
      go_.wait(lk, [&] { return gen_ != seen; });
      seen = gen_;
      if (stop_) return;
      const Job j = job_;
      lk.unlock();
      part(j, i);
      lk.lock();
      if (--pending_ == 0) done_.notify_one();
    }
  }
  std::vector<std::thread> threads_;
  std::mutex m_;
  std::condition_variable go_, done_;
  Job job_{};
  size_t gen_ = 0, pending_ = 0;
  bool stop_ = false;
};
