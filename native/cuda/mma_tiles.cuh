// Warp-level tile products of the FlashAttention-style kernels (attention.cu's forward, grad.cu's backward) on
// mma.sync m16n8k16: a warp's 16 rows against a shared-memory tile of N rows of D bf16 values (row stride D + 8,
// so ldmatrix rows fall in distinct banks). Scores come out in the accumulator layout, which is also the layout of
// the A operand of the next product: a tile of probabilities or score gradients never leaves registers.
#pragma once

#include "mma_util.cuh"

/** s[n] = A·tileᵀ (8 tile rows per n): the warp's 16 rows (A fragments, D/16 steps of 16 columns) against the tile's N rows. */
template <int D, int N>
__device__ __forceinline__ void mma_scores(float (&s)[N / 8][4], const uint32_t (&a)[D / 16][4],
                                           const __nv_bfloat16 *tile) {
  constexpr int LDS = D + 8;
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int n = 0; n < N / 8; n++) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
  for (int kk = 0; kk < D / 16; kk++)
#pragma unroll
    for (int n = 0; n < N / 8; n += 2) {
      uint32_t r[4];
      ldmatrix_x4(r, tile + (8 * n + (lane >> 4) * 8 + (lane & 7)) * LDS + kk * 16 + ((lane >> 3) & 1) * 8);
      mma_bf16_16816(s[n], a[kk], r[0], r[1]);
      mma_bf16_16816(s[n + 1], a[kk], r[2], r[3]);
    }
}

/** x less its bf16 rounding: what a second bf16 product adds back (hi + lo carries about 16 bits of x). */
__device__ __forceinline__ float bf16_residual(float x) { return x - __bfloat162float(__float2bfloat16_rn(x)); }

/**
 * acc += W·tile: W the warp's 16 × N weights in the score layout (rounded to bf16 here), tile N rows of D values.
 * Split: W as the sum of two bf16 parts, two products (the backward's dS and P, whose rounding would otherwise
 * move dq, dk, dv by ~0.4% of their largest entry).
 */
template <int D, int N, bool Split = false>
__device__ __forceinline__ void mma_weights(float (&acc)[D / 8][4], const float (&w)[N / 8][4],
                                            const __nv_bfloat16 *tile) {
  constexpr int LDS = D + 8;
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int kb = 0; kb < N / 16; kb++) {
    const uint32_t a[4] = {pack_bf16x2(w[2 * kb][0], w[2 * kb][1]), pack_bf16x2(w[2 * kb][2], w[2 * kb][3]),
                           pack_bf16x2(w[2 * kb + 1][0], w[2 * kb + 1][1]),
                           pack_bf16x2(w[2 * kb + 1][2], w[2 * kb + 1][3])};
    uint32_t lo[4] = {0, 0, 0, 0};
    if constexpr (Split) {
      lo[0] = pack_bf16x2(bf16_residual(w[2 * kb][0]), bf16_residual(w[2 * kb][1]));
      lo[1] = pack_bf16x2(bf16_residual(w[2 * kb][2]), bf16_residual(w[2 * kb][3]));
      lo[2] = pack_bf16x2(bf16_residual(w[2 * kb + 1][0]), bf16_residual(w[2 * kb + 1][1]));
      lo[3] = pack_bf16x2(bf16_residual(w[2 * kb + 1][2]), bf16_residual(w[2 * kb + 1][3]));
    }
#pragma unroll
    for (int n = 0; n < D / 8; n += 2) {
      uint32_t r[4];
      ldmatrix_x4_trans(r, tile + (16 * kb + (lane & 15)) * LDS + 8 * n + (lane >> 4) * 8);
      mma_bf16_16816(acc[n], a, r[0], r[1]);
      mma_bf16_16816(acc[n + 1], a, r[2], r[3]);
      if constexpr (Split) {
        mma_bf16_16816(acc[n], lo, r[0], r[1]);
        mma_bf16_16816(acc[n + 1], lo, r[2], r[3]);
      }
    }
  }
}
