// Batched decoding: one token for each of N sequences whose caches live in their own buffers, addressed by
// pointer tables (one entry per sequence) that the host builds per step and uploads with the launch. Each
// function replaces N launches of the single-sequence kernels with one or two (docs/cuda-kernels.md).
#pragma once

#include "common.h"

/**
 * One sequence's keys/values for attention_rows: the first `prefixLength` rows of pk/pv (a shared prefix; null
 * when 0), then the first `length` rows of k/v; each [rows, hkv, d].
 */
struct RowKV {
  const void *k, *v;
  int length;
  const void *pk, *pv;
  int prefixLength;
};

struct AttentionRowsDims {
  int rows, hq, hkv, d, dv;
  float scale;
};

/** Scratch bytes attention_rows needs for these rows and q (the uploaded task table, split-K partials). */
size_t attention_rows_workspace_bytes(const AttentionRowsDims &a, const RowKV *kvsHost, const void *q, DT dt);

/**
 * out [rows, hq, dv] = softmax(q·kᵀ·scale)·v with query row i (q [rows, hq, d]) over its own keys (prefix, then
 * own rows). `kvsHost` is a host table; the work planned from it is copied into the workspace on `stream`.
 * Rows reading the same keys (a prefix, or own keys in one buffer: pointers and length) read each tile once
 * for all of them; in bf16 with head dims 32/48/64/80/96/128 such keys go through flash_fwd's tensor-core tiles with
 * the rows as its queries (a step of many questions on one video is then not bound by scalar f32 math).
 */
void attention_rows(void *out, const void *q, const RowKV *kvsHost, const AttentionRowsDims &a, DT dt,
                    void *workspace, size_t workspaceBytes, cudaStream_t stream);

/** Copies row i of x (rowBytes each, 4-byte multiples) to dsts[i] (device addresses in a host array). */
void scatter_rows(const void *x, void *const *dsts, int rows, size_t rowBytes, cudaStream_t stream);

/** One sequence's Mamba-2 state: conv [width−1, convDim] (in the activations' dtype), ssm [H, P, N] f32. */
struct MambaRowState {
  void *conv;
  float *ssm;
};

struct MambaStepDims {
  int rows, dInner, groups, dState, heads, headDim, width;
  float dtMin, dtMax;  // clamp of softplus(dt + dt_bias); 0 / +inf when unset
};

size_t mamba_step_rows_workspace_bytes(const MambaStepDims &d, DT dt);

/**
 * One Mamba-2 decode step of `rows` sequences: causal conv (+ bias, SiLU) over [state; x‖bc] advancing each
 * conv state, dt = clamp(softplus(dt + dtBias)), the SSM update of each state in place, y [rows, dInner] =
 * s·C + D·x (before the gate). x [rows, dInner], bc [rows, 2·groups·dState], dtRaw [rows, heads] share `dt`;
 * conv weight [convDim, width] and bias in `wDt`; dtBias, A f32; D in `dDt` or null.
 */
void mamba_step_rows(void *y, const void *x, const void *bc, const void *dtRaw, const void *convWeight,
                     const void *convBias, DT wDt, const float *dtBias, const float *A, const void *D, DT dDt,
                     const MambaRowState *statesHost, const MambaStepDims &d, DT dt, void *workspace,
                     size_t workspaceBytes, cudaStream_t stream);
