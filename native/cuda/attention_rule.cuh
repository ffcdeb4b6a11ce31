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
