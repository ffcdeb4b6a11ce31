// The relevance probe's kernel (Backend.attentionMass): one query position's softmax mass per key, summed
// over the query heads, without the attention output. q [hq, d], k [skv, hkv, d] (batch 1; query head h
// reads kv head h / (hq / hkv)); keys [0, kvLength) are valid.
#pragma once

#include "common.h"

struct AttentionMassDims {
  int skv, kvLength, hq, hkv, d;
  /** The keys whose mass is returned: out [to − from]. */
  int from, to;
  float scale;
};

/**
 * out[j − from] = Σ_h softmax_j(scale · q_h · k_j) over the valid keys, for j in [from, to), in f32.
 * `scores` is f32 scratch [hq, kvLength] and `stats` f32 scratch [hq, 2]; q/k share dtype `dt`. Three
 * launches on `stream`: the scores (one warp per key and kv head, all the query heads that read it), each
 * head's max and sum of exponentials, and the mass per key. Throws on bad dims.
 */
void attention_mass(float *out, float *scores, float *stats, const void *q, const void *k,
                    const AttentionMassDims &dims, DT dt, cudaStream_t stream);
