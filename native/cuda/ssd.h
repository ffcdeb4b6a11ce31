// Mamba-2 SSD (Backend.ssdScan / Backend.ssmStep). Layouts follow SsdDesc in src/runtime/backend.ts:
// x, y [batch, len, heads, headDim]; dt [batch, len, heads] f32 (after softplus); A [heads] f32;
// B, C [batch, len, groups, dState]; D [heads] or null; states [batch, heads, headDim, dState] f32.
// x, B, C and y share the dtype `dtype`; D has its own tag `dDt` (parameters may be stored as f32).
#pragma once

#include "common.h"

struct SsdDims {
  int batch, len, heads, headDim, groups, dState, chunkSize;
};

/**
 * Preferred scratch bytes for `ssd_scan` (chunk cumsums and per-chunk f32 states for a run of chunks, ≤ ~256 MiB).
 * Any smaller workspace that still holds one chunk works: it only shortens the runs of chunks.
 */
size_t ssd_scan_workspace_bytes(const SsdDims &dims, DT dtype);

/**
 * Chunked SSD scan: s_t = exp(dt_t·A)·s_{t−1} + dt_t·x_t ⊗ B_t, y_t = s_t·C_t + D·x_t, starting from
 * `stateIn` (null: zeros) and writing the final state to `stateOut` (may be null). Chunks of
 * `chunkSize` (rounded to a multiple of 64 in [64, 256]; the result does not depend on it beyond rounding).
 * Requires headDim ≤ 128 and dState ≤ 256. Throws on error.
 */
void ssd_scan(void *y, float *stateOut, const void *x, const float *dt, const float *A, const void *B,
              const void *C, const void *D, DT dDt, const float *stateIn, const SsdDims &dims, DT dtype,
              void *workspace, size_t workspaceBytes, cudaStream_t stream);

/**
 * One token (dims.len must be 1): state ← exp(dt·A)·state + dt·x ⊗ B in place, y = state·C + D·x.
 * x, y [batch, heads, headDim]; dt [batch, heads]; B, C [batch, groups, dState].
 */
void ssm_step(void *y, float *state, const void *x, const float *dt, const float *A, const void *B,
              const void *C, const void *D, DT dDt, const SsdDims &dims, DT dtype, cudaStream_t stream);
