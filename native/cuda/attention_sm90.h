// Hopper flash-attention forward (attention_sm90.cu): the bf16 path of `attention` on sm_90 devices for the
// prefill shapes (no mask, no weights). Semantics are those of attention.h.
#pragma once

#include "attention.h"

/**
 * Whether attention_sm90 runs these dims on the current device: an sm_90 GPU (checked once), bf16,
 * d == dv ∈ {64, 80, 96, 128}, no mask, no weights, kvLength > 0, a positive scale
 * (the row max is taken before scaling) and at least 128 (query, head) rows per kv
 * head. LONGSHOT_ATTN_SM90=0 in the environment keeps the mma.sync kernel (A/B timing).
 */
bool attention_sm90_supported(const AttentionDims &a, DT dt);

/** Workspace bytes attention_sm90 needs (the per-CTA row ranges of block-diagonal attention). */
size_t attention_sm90_workspace_bytes(const AttentionDims &a);

/**
 * As `attention` for dims accepted by attention_sm90_supported. `segDevice` is the device copy of the
 * segment boundaries (null without segments), `segmentsHost` the same on the host; q/k/v/out are 16-byte
 * aligned; `workspace` holds attention_sm90_workspace_bytes(a).
 */
void attention_sm90(void *out, const void *q, const void *k, const void *v, const int32_t *segmentsHost,
                    const int *segDevice, const AttentionDims &a, void *workspace, cudaStream_t stream);
