// Fused scaled dot-product attention (Backend.attention). Layouts follow AttentionDesc in
// src/runtime/backend.ts: q [batch, sq, hq, d], k [batch, skv, hkv, d], v [batch, skv, hkv, dv],
// out [batch, sq, hq, dv]; query head h reads kv head h / (hq / hkv).
#pragma once

#include "common.h"

struct AttentionDims {
  int batch, sq, skv, kvLength, hq, hkv, d, dv;
  float scale;
  bool causal;
  int queryOffset;
  /** Number of segments (boundaries = numSegments + 1) or 0 when attention is not block-diagonal. */
  int numSegments;
  /** Leading dim of the additive f32 mask [maskBatch, sq, kvLength]: 0 (no mask), 1 or batch. */
  int maskBatch;
  /** A weights output [batch, hq, sq, kvLength] (f32) is requested. */
  bool weights;
};

/** Scratch bytes `attention` needs for these dims (split-K partials, the uploaded segment table). */
size_t attention_workspace_bytes(const AttentionDims &dims, DT dt);

/**
 * out = softmax(q·kᵀ·scale + mask) · v with the masking rules of AttentionDesc (causal with queryOffset,
 * kvLength, segments, additive mask). `segmentsHost` is a host array of numSegments + 1 boundaries (copied
 * into the workspace on `stream`); `mask` (f32) and `weights` (f32) are device pointers or null. Rows that
 * see no key at all produce zeros. q/k/v/out share dtype `dt`. Throws on error.
 */
void attention(void *out, const void *q, const void *k, const void *v, const float *mask, float *weights,
               const int32_t *segmentsHost, const AttentionDims &dims, DT dt, void *workspace,
               size_t workspaceBytes, cudaStream_t stream);

/**
 * Split-K partials of the attention above for callers that merge them with other keys' partials (attention_rows:
 * rows sharing keys): opart [splits, batch·sq·hq, d] (each normalised over its key range), lse [splits,
 * batch·sq·hq] in log2 units of the scaled scores (−inf where a range holds no key). Supported: bf16, d == dv in
 * {32, 48, 64, 80, 96, 128}, neither mask nor segments nor causal rule, 16-byte aligned q/k/v (tensor-core tiles).
 */
bool attention_partials_supported(const AttentionDims &dims, DT dt, const void *q, const void *k, const void *v);

/** The key splits attention_partials should take to fill the GPU. */
int attention_partials_splits(const AttentionDims &dims);

void attention_partials(float *opart, float *lse, int splits, const void *q, const void *k, const void *v,
                        const AttentionDims &dims, cudaStream_t stream);

