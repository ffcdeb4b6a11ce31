// Which keys a query may see (AttentionDesc's causal/kvLength/segments rules), shared by the attention kernels.
#pragma once

#include "common.h"

constexpr float kLog2e = 1.4426950408889634f;

struct RowRule {
  int kvLength, causal, queryOffset, nseg;
  const int *seg;  // device copy of the segment boundaries, or null

  /** Keys [lo, hi) that query i may see. Both ends are non-decreasing in i. */
  __device__ __forceinline__ void range(int i, int &lo, int &hi) const {
    lo = 0;
    hi = kvLength;
    if (causal) hi = min(hi, queryOffset + i + 1);
    if (nseg > 0) {
      int a = 0, b = nseg;  // largest s with seg[s] <= i
      while (a < b) {
        const int mid = (a + b + 1) >> 1;
        if (seg[mid] <= i) a = mid;
        else b = mid - 1;
      }
      const int s = min(a, nseg - 1);
      lo = seg[s];
      hi = min(hi, seg[s + 1]);
    }
  }
};

/**
 * Split-K partials of one output element merged by their log2-sum-exp: opart [splits, rows, d] holds each
 * split's normalised value at row r, column c, and lse [splits, rows] its log2-sum-exp (−inf: the split saw no
 * key). Returns Σ_s 2^(lse_s − max)·O_s / Σ_s 2^(lse_s − max) (0 when no split saw a key) and, through lseOut
 * when given, the merged log2-sum-exp.
 */
__device__ __forceinline__ float merge_log2_partials(const float *opart, const float *lse, int splits, size_t rows,
                                                     size_t r, int d, int c, float *lseOut = nullptr) {
  float mx = -INFINITY;
  for (int s = 0; s < splits; ++s) mx = fmaxf(mx, lse[s * rows + r]);
  float num = 0.f, den = 0.f;
  if (mx != -INFINITY)
    for (int s = 0; s < splits; ++s) {
      const float w = exp2f(lse[s * rows + r] - mx);
      num += w * opart[(s * rows + r) * d + c];
      den += w;
    }
  if (lseOut) *lseOut = den > 0.f ? mx + log2f(den) : -INFINITY;
  return den > 0.f ? num / den : 0.f;
}

