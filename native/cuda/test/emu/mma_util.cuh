// CPU stand-ins for native/cuda/mma_util.cuh (emu.h): the same functions with the PTX instructions' semantics —
// ldmatrix fragments and the m16n8k16 product assembled from all 32 lanes through the warp's exchange slots.
#pragma once
#include "common.h"
/**
 * cp.async as PTX defines it: copies are held per thread until a wait retires their group (commit_group closes
 * a group; wait_group N completes all but the N most recent), so a read of a tile before its wait sees the
 * NaN fill of emu.h.
 */
struct EmuCopy {
  void *dst;
  const void *src;
  int bytes;
};
inline thread_local std::vector<EmuCopy> t_openCopies;
inline thread_local std::vector<std::vector<EmuCopy>> t_copyGroups;
inline void cp_async16(void *dst, const void *src, int srcBytes) { t_openCopies.push_back({dst, src, srcBytes}); }
inline void cp_async_commit() {
  t_copyGroups.push_back(std::move(t_openCopies));
  t_openCopies.clear();
}
template <int N>
inline void cp_async_wait() {
  while (t_copyGroups.size() > N) {
    for (const EmuCopy &c : t_copyGroups.front()) {
      std::memset(c.dst, 0, 16);
      if (c.bytes) std::memcpy(c.dst, c.src, c.bytes);
    }
    t_copyGroups.erase(t_copyGroups.begin());
  }
}

inline uint16_t emu_b16(const void *p, int i) {
  uint16_t v;
  std::memcpy(&v, static_cast<const char *>(p) + 2 * i, 2);
  return v;
}
inline uint32_t emu_pack(uint16_t lo, uint16_t hi) { return uint32_t(lo) | (uint32_t(hi) << 16); }

template <bool Trans>
inline void emu_ldmatrix(uint32_t (&r)[4], const void *p) {
  auto &w = emu::warp();
  const int T = emu::lane();
  w.ptr[T] = p;
  w.bar.arrive_and_wait();
  for (int m = 0; m < 4; m++) {
    if (!Trans) {
      const void *row = w.ptr[8 * m + T / 4];
      r[m] = emu_pack(emu_b16(row, 2 * (T % 4)), emu_b16(row, 2 * (T % 4) + 1));
    } else {
      r[m] = emu_pack(emu_b16(w.ptr[8 * m + 2 * (T % 4)], T / 4), emu_b16(w.ptr[8 * m + 2 * (T % 4) + 1], T / 4));
    }
  }
  w.bar.arrive_and_wait();
}
inline void ldmatrix_x4(uint32_t (&r)[4], const void *p) { emu_ldmatrix<false>(r, p); }
inline void ldmatrix_x4_trans(uint32_t (&r)[4], const void *p) { emu_ldmatrix<true>(r, p); }

inline float emu_bf(uint32_t reg, int half) {
  const uint32_t bits = (half ? reg >> 16 : reg & 0xffff) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
/** c += a·b (m16n8k16, row.col), computed from every lane's fragments. */
inline void mma_bf16_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  auto &w = emu::warp();
  const int T = emu::lane();
  uint32_t mine[6] = {a[0], a[1], a[2], a[3], b0, b1};
  std::memcpy(&w.slot[T][0], mine, sizeof(mine));
  w.bar.arrive_and_wait();
  float A[16][16], B[16][8];
  for (int L = 0; L < 32; L++) {
    uint32_t f[6];
    std::memcpy(f, &w.slot[L][0], sizeof(f));
    const int g = L / 4, t4 = L % 4;
    for (int j = 0; j < 2; j++) {
      A[g][2 * t4 + j] = emu_bf(f[0], j);
      A[g + 8][2 * t4 + j] = emu_bf(f[1], j);
      A[g][8 + 2 * t4 + j] = emu_bf(f[2], j);
      A[g + 8][8 + 2 * t4 + j] = emu_bf(f[3], j);
      B[2 * t4 + j][g] = emu_bf(f[4], j);
      B[8 + 2 * t4 + j][g] = emu_bf(f[5], j);
    }
  }
  w.bar.arrive_and_wait();
  const int g = T / 4, c0 = 2 * (T % 4);
  for (int e = 0; e < 4; e++) {
    const int row = g + (e >> 1) * 8, col = c0 + (e & 1);
    float s = c[e];
    for (int k = 0; k < 16; k++) s += A[row][k] * B[k][col];
    c[e] = s;
  }
}
inline uint32_t pack_bf16x2(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  uint32_t r;
  std::memcpy(&r, &v, 4);
  return r;
}
inline float fast_exp2(float x) { return std::exp2(x); }
inline int current_sm_count() { return 132; }
template <auto K>
void allow_smem_once(size_t) {}
inline size_t align256(size_t n) { return (n + 255) & ~static_cast<size_t>(255); }
