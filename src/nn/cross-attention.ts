/**
 * Cross-attention of text (instruction) tokens to vision tokens (`Qwen2VLCrossAttention` of Vamba, TimeViper's
 * TransV): every query attends to every key, no mask, GQA, scale 1/√d, the four projections named as in
 * self-attention. How its output joins the text stream (Vamba's α balancing, TransV's tanh(α) gate) is the
 * caller's. Its K/V depend only on the vision tokens, so `keysValues` can run once per video and every
 * question reuse the result (Vamba's official code caches them too, research/vamba.md §2.7).
 */
import * as ops from '../runtime/ops.js';
import { tidy } from '../runtime/scope.js';
import type { Tensor } from '../runtime/tensor.js';
import { SelfAttention, type SelfAttentionConfig } from './attention.js';
import type { AttentionProbe } from './attention-probe.js';
import type { Linear } from './linear.js';
import type { ParamSpec, ParamStore } from './params.js';
import type { Rope } from './rotary.js';

/** One layer's video keys/values, [1, videoTokens, kvHeads, headDim] each ([batch, …] for a training batch). */
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
    return new CrossAttention(c, ...SelfAttention.projections(p, prefix, c));
  }

  /**
   * K/V of vision tokens V [n, hidden]. With `rope` (Vamba's cross_attn_use_position_embeddings) the keys are
   * rotated by the tokens' (t, h, w) grid positions; Vamba's official code caches keys before RoPE and
   * rotates them on every step, which gives the same keys. `batch` videos of equal length one after another
   * in V give K/V [batch, n / batch, …] (rope: one video's).
   */
  keysValues(V: Tensor, rope: Rope | null, batch = 1): CrossKV {
    const { numKvHeads, headDim } = this.config;
    return tidy(() => {
      const n = V.shape[0] / batch;
      let k = this.k_proj.forward(V).reshape([batch, n, numKvHeads, headDim]);
      if (rope) k = ops.rotary(k, rope.cos, rope.sin);
      return { k, v: this.v_proj.forward(V).reshape([batch, n, numKvHeads, headDim]) };
    });
  }

  /**
   * x [seq, hidden] (already normalised) attends to `kv`; `rope` rotates the queries by text positions. With
   * one K/V per row (batched decoding over several videos), row i attends to kv[i] only. A `probe` records
   * where the last query looked (one K/V only). K/V of a training batch ([batch, …]): x is that many
   * sequences of equal length one after another, each attending to its own video. The output is times
   * `opts.outScale` (Vamba's α mixing), inside o_proj's GEMM.
   */
  forward(
    x: Tensor,
    kv: CrossKV | readonly CrossKV[],
    rope: Rope | null,
    probe?: AttentionProbe,
    opts: {
      outScale?: number;
      /** q_proj(x) already computed (Vamba projects one token's query in its self-attention's GEMV). */
      q?: Tensor | null;
    } = {},
  ): Tensor {
    const { numHeads, headDim } = this.config;
    return tidy(() => {
      const seq = x.shape[0];
      const batch = 'k' in kv ? kv.k.shape[0] : 1;
      if (seq % batch)
        throw new RangeError(`CrossAttention: ${seq} rows do not split into ${batch} sequences`);
      let q = (opts.q ?? this.q_proj.forward(x)).reshape([batch, seq / batch, numHeads, headDim]);
      if (rope) q = ops.rotary(q, rope.cos, rope.sin);
      if ('k' in kv) probe?.record(q, kv.k);
      const out =
        'k' in kv
          ? ops.attention(q, kv.k, kv.v).out
          : ops.attentionRows(
              q.reshape([seq, numHeads, headDim]),
              kv.map((r) => ({ k: r.k, v: r.v, length: r.k.shape[1] })),
            );
      return this.o_proj.forward(out.reshape([seq, numHeads * headDim]), opts.outScale);
    });
  }

  [Symbol.dispose](): void {
    for (const l of [this.q_proj, this.k_proj, this.v_proj, this.o_proj]) l[Symbol.dispose]();
  }
}
