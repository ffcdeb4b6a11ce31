/**
 * Vamba's cross-attention (`Qwen2VLCrossAttention`): text queries attend to every video token, no mask, GQA,
 * scale 1/√d. Its K/V depend only on the video, so `keysValues` runs once per video and every question
 * reuses the result (the official code caches them too, research/vamba.md §2.7).
 */
import { SelfAttention, type SelfAttentionConfig } from '../../nn/attention.js';
import type { Linear } from '../../nn/linear.js';
import type { ParamSpec, ParamStore } from '../../nn/params.js';
import * as ops from '../../runtime/ops.js';
import { tidy } from '../../runtime/scope.js';
import type { Tensor } from '../../runtime/tensor.js';

export interface Rope {
  cos: Tensor;
  sin: Tensor;
}

/** One layer's video keys/values, [1, videoTokens, kvHeads, headDim] each. */
export interface CrossKV {
  k: Tensor;
  v: Tensor;
}

export class CrossAttention implements Disposable {
  constructor(
    readonly config: SelfAttentionConfig,
    readonly q_proj: Linear,
    readonly k_proj: Linear,
    readonly v_proj: Linear,
    readonly o_proj: Linear,
  ) {}

  /** The same four projections (and names) as self-attention. */
  static specs = (prefix: string, c: SelfAttentionConfig): ParamSpec[] => SelfAttention.specs(prefix, c);

  static load(p: ParamStore, prefix: string, c: SelfAttentionConfig): CrossAttention {
    const s = SelfAttention.load(p, prefix, c);
    return new CrossAttention(c, s.q_proj, s.k_proj, s.v_proj, s.o_proj);
  }

  /**
   * K/V of video tokens V [n, hidden]. With `rope` (cross_attn_use_position_embeddings) the keys are rotated
   * by the tokens' (t, h, w) grid positions; the official code caches keys before RoPE and rotates them on
   * every step, which gives the same keys.
   */
  keysValues(V: Tensor, rope: Rope | null): CrossKV {
    const { numKvHeads, headDim } = this.config;
    return tidy(() => {
      const n = V.shape[0];
      let k = this.k_proj.forward(V).reshape([1, n, numKvHeads, headDim]);
      if (rope) k = ops.rotary(k, rope.cos, rope.sin);
      return { k, v: this.v_proj.forward(V).reshape([1, n, numKvHeads, headDim]) };
    });
  }

  /** x [seq, hidden] (already normalised) attends to `kv`; `rope` rotates the queries by text positions. */
  forward(x: Tensor, kv: CrossKV, rope: Rope | null): Tensor {
    const { numHeads, headDim } = this.config;
    return tidy(() => {
      const seq = x.shape[0];
      let q = this.q_proj.forward(x).reshape([1, seq, numHeads, headDim]);
      if (rope) q = ops.rotary(q, rope.cos, rope.sin);
      const { out } = ops.attention(q, kv.k, kv.v);
      return this.o_proj.forward(out.reshape([seq, numHeads * headDim]));
    });
  }

  [Symbol.dispose](): void {
    for (const l of [this.q_proj, this.k_proj, this.v_proj, this.o_proj]) l[Symbol.dispose]();
  }
}
