// CPU emulation of the CUDA features the addon's kernels use, so that `kernels_test test` can run on a machine
// without a GPU (slowly: use it to check indexing, fragment layouts and synchronisation, never for timings).
// Every CUDA thread is a std::thread; blocks run one after another; __syncthreads is a barrier of the block and
// warp collectives (shuffles, ldmatrix, mma.sync in mma_util.cuh) exchange values through a per-warp slot
// array between two barriers of the warp. Shared memory starts as 0xff bytes (NaN in f32 and bf16), so a read of
// a tile nobody wrote shows up in the results. Force-included by run.sh.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>
using std::max;
using std::min;

namespace emu {
inline uint3 g_blockIdx;
inline dim3 g_blockDim, g_gridDim;
inline thread_local uint3 t_threadIdx;
inline unsigned char *g_smem = nullptr;  // dynamic shared memory of the running block

struct Warp {
  std::barrier<> bar{32};
  uint64_t slot[32][8];
  const void *ptr[32];
};
inline std::barrier<> *g_block = nullptr;
inline std::vector<std::unique_ptr<Warp>> g_warps;
inline Warp &warp() { return *g_warps[t_threadIdx.x / 32]; }
inline int lane() { return t_threadIdx.x % 32; }

/** `kernel<<<grid, block, smem, stream>>>(args)` becomes `emu::launch(kernel, grid, block, smem, stream)(args)`. */
template <typename K>
struct Launcher {
  K kernel;
  dim3 grid, block;
  template <typename... A>
  void operator()(A... args) {
    static std::vector<unsigned char> smem(232448);
    g_smem = smem.data();
    g_gridDim = grid;
    g_blockDim = block;
    const unsigned n = block.x * block.y * block.z;
    for (unsigned z = 0; z < grid.z; z++)
      for (unsigned y = 0; y < grid.y; y++)
        for (unsigned x = 0; x < grid.x; x++) {
          g_blockIdx = {x, y, z};
          std::fill(smem.begin(), smem.end(), 0xff);
          std::barrier<> blockBarrier(n);
          g_block = &blockBarrier;
          g_warps.clear();
          for (unsigned w = 0; w < (n + 31) / 32; w++) g_warps.push_back(std::make_unique<Warp>());
          std::vector<std::thread> threads;
          for (unsigned t = 0; t < n; t++)
            threads.emplace_back([&, t] {
              t_threadIdx = {t, 0, 0};
              kernel(args...);
            });
          for (auto &t : threads) t.join();
        }
  }
};
template <typename K>
Launcher<K> launch(K kernel, dim3 grid, dim3 block, size_t = 0, cudaStream_t = nullptr) {
  return {kernel, grid, block};
}

/** Lane `src`'s value of v (all 32 lanes call it together). */
template <typename T>
T exchange(T v, int src) {
  Warp &w = warp();
  std::memcpy(&w.slot[lane()][0], &v, sizeof(T));
  w.bar.arrive_and_wait();
  T r;
  std::memcpy(&r, &w.slot[src][0], sizeof(T));
  w.bar.arrive_and_wait();
  return r;
}
}  // namespace emu

#define threadIdx (emu::t_threadIdx)
#define blockIdx (emu::g_blockIdx)
#define blockDim (emu::g_blockDim)
#define gridDim (emu::g_gridDim)
#undef __shared__
#define __shared__ static  // blocks run one at a time, so a static is the block's shared variable
#undef __launch_bounds__
#define __launch_bounds__(...)
#undef __align__
#define __align__(n) alignas(n)

inline void __syncthreads() { emu::g_block->arrive_and_wait(); }
inline void __syncwarp(unsigned = 0xffffffffu) { emu::warp().bar.arrive_and_wait(); }
template <typename T>
T __ldg(const T *p) {
  return *p;
}
inline float __expf(float x) { return std::exp(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float x) { return 1.f / std::sqrt(x); }
template <typename T>
T __shfl_sync(unsigned, T v, int src) {
  return emu::exchange(v, src & 31);
}
template <typename T>
T __shfl_xor_sync(unsigned, T v, int o) {
  return emu::exchange(v, emu::lane() ^ o);
}
template <typename T>
T __shfl_up_sync(unsigned, T v, int o) {
  return emu::exchange(v, emu::lane() >= o ? emu::lane() - o : emu::lane());
}
