// Causal depthwise conv1d (Backend.conv1d) over x [batch, len, channels] (channels last) with weight
// [channels, width] and optional bias [channels]; state [batch, width−1, channels] holds the inputs that
// precede x (null: zeros) and stateOut receives the last width−1 inputs of [state; x].
#pragma once

#include "common.h"

struct Conv1dDims {
  int batch, len, channels, width;
  bool silu;
};

/**
 * y[b, t, c] = bias[c] + Σ_k weight[c, k]·[state; x][b, t + k, c] (then SiLU when dims.silu), accumulated in
 * f32. x, y, state and stateOut have dtype `dtype`; weight and bias `wDtype`. stateOut must not alias state.
 */
void conv1d(void *y, void *stateOut, const void *x, const void *weight, const void *bias, const void *state,
            const Conv1dDims &dims, DT dtype, DT wDtype, cudaStream_t stream);
