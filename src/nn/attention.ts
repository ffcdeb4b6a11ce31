import * as ops from '../runtime/ops.js';
import { tidy } from '../runtime/scope.js';
import type { Tensor } from '../runtime/tensor.js';
import type { AttentionProbe } from './attention-probe.js';
import type { HybridCache } from './cache.js';
import { Linear } from './linear.js';
import type { ParamSpec, ParamStore } from './params.js';
import type { Rope } from './rotary.js';

export interface SelfAttentionConfig {
  hiddenSize: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  /** q/k/v projections have a bias (Qwen2: yes). */
  qkvBias: boolean;
  /** o_proj has a bias (Qwen2: no). */
  oBias: boolean;
}

export interface SelfAttentionInputs {
  /** cos/sin [seq, rotDim] for these tokens' positions (f32), or null for no rotary. */
  rope: Rope | null;
  /** Appends k/v to this cache layer and attends over the whole history. */
  cache?: { cache: HybridCache; layer: number } | null;
  /**
   * Batched decoding: row i of x is the next token of the sequence whose cache is rows[i] (its K/V are
   * appended there, not committed) and attends over that sequence's history only.
   */
  rows?: readonly { cache: HybridCache; layer: number }[] | null;
  causal?: boolean;
  /** Records where the last query looked (with a cache: over the whole history). */
  probe?: AttentionProbe;
  /**
   * No cache: x holds `batch` sequences of equal length one after another ([batch·seq, hidden]), each
   * attending only to itself (a training step's examples in one forward; rope is [seq, ·], shared).
   */
  batch?: number;
  /** The output times this (Vamba's α mixing), inside o_proj's GEMM. */
  outScale?: number;
  /**
   * One token's q‖k‖v already projected ([1, (heads + 2·kvHeads)·headDim]): Vamba projects its cross-attention
   * query in the same GEMV.
   */
  qkv?: Tensor | null;
}

/**
 * Multi-head self-attention with grouped-query K/V (q_proj, k_proj, v_proj, o_proj as in HF Llama/Qwen2):
 * softmax(q·kᵀ/√d)·v per head, query head h reading kv head ⌊h·hkv/hq⌋. Batch 1: x is [seq, hidden].
 */
export class SelfAttention implements Disposable {
  constructor(
    readonly config: SelfAttentionConfig,
    readonly q_proj: Linear,
    readonly k_proj: Linear,
    readonly v_proj: Linear,
    readonly o_proj: Linear,
    /** q_proj‖k_proj‖v_proj as one layer (they are views of it): a one-token step projects in one GEMM. */
    readonly qkv: Linear | null = null,
  ) {}

  static specs(prefix: string, c: SelfAttentionConfig): ParamSpec[] {
    return [
      ...Linear.specs(`${prefix}.q_proj`, c.hiddenSize, c.numHeads * c.headDim, c.qkvBias),
      ...Linear.specs(`${prefix}.k_proj`, c.hiddenSize, c.numKvHeads * c.headDim, c.qkvBias),
      ...Linear.specs(`${prefix}.v_proj`, c.hiddenSize, c.numKvHeads * c.headDim, c.qkvBias),
      ...Linear.specs(`${prefix}.o_proj`, c.numHeads * c.headDim, c.hiddenSize, c.oBias),
    ];
  }

  /** The four projections as stored (q, k, v, o). */
  static projections(
    p: ParamStore,
    prefix: string,
    c: SelfAttentionConfig,
  ): [Linear, Linear, Linear, Linear] {
    return [
      Linear.load(p, `${prefix}.q_proj`, c.qkvBias),
      Linear.load(p, `${prefix}.k_proj`, c.qkvBias),
      Linear.load(p, `${prefix}.v_proj`, c.qkvBias),
      Linear.load(p, `${prefix}.o_proj`, c.oBias),
    ];
  }

  static load(p: ParamStore, prefix: string, c: SelfAttentionConfig): SelfAttention {
    const [q, k, v, o] = SelfAttention.projections(p, prefix, c);
    const f = Linear.fuse([q, k, v]);
    return f
      ? new SelfAttention(c, f.parts[0], f.parts[1], f.parts[2], o, f.fused)
      : new SelfAttention(c, q, k, v, o);
  }

  forward(x: Tensor, inputs: SelfAttentionInputs): Tensor {
    const { numHeads, numKvHeads, headDim } = this.config;
    return tidy(() => {
      const seq = x.shape[0];
      const batch = inputs.batch ?? 1;
      if (batch > 1 && (inputs.cache || inputs.rows || inputs.probe || seq % batch))
        throw new RangeError(`SelfAttention: ${seq} rows in ${batch} sequences, with a cache or probe`);
      const { q, k, v, kv } =
        seq === 1 && (this.qkv || inputs.qkv)
          ? this.#projectOne(inputs.qkv ?? this.qkv!.forward(x), inputs.rope)
          : { ...this.#project(x, batch, inputs.rope), kv: null };
      const causal = inputs.causal ?? true;
      let out: Tensor;
      // A lone token over a segmented cache (a question continuing a prefix another one writes after) takes
      // the rows path too: it reads the prefix in place, where cache.write would join a copy of it every step.
      const lone = seq === 1 && !inputs.probe ? inputs.cache : null;
      const rows = inputs.rows ?? (lone?.cache.room(lone.layer, 1).prefix ? [lone] : null);
      if (rows) {
        // Each row's new K/V go into its own cache (one call for all rows), then each row attends to its history.
        const rooms = rows.map(({ cache, layer }) => cache.room(layer, 1));
        if (kv)
          ops.scatterRows(
            kv,
            [rooms[0].k, rooms[0].v].map((dst) => ({ dst, at: rooms[0].at })),
          );
        else {
          ops.scatterRows(
            k.reshape([seq, numKvHeads * headDim]),
            rooms.map((r) => ({ dst: r.k, at: r.at })),
          );
          ops.scatterRows(
            v.reshape([seq, numKvHeads * headDim]),
            rooms.map((r) => ({ dst: r.v, at: r.at })),
          );
        }
        out = ops.attentionRows(
          q.reshape([seq, numHeads, headDim]),
          rooms.map((r) => ({ k: r.k, v: r.v, length: r.at + 1, prefix: r.prefix })),
        );
      } else if (inputs.cache) {
        const offset = inputs.cache.cache.length;
        const cached = inputs.cache.cache.write(inputs.cache.layer, k, v, kv);
        inputs.probe?.record(q, cached.k, cached.kvLength);
        out = ops.attention(q, cached.k, cached.v, {
          causal,
          queryOffset: offset,
          kvLength: cached.kvLength,
        }).out;
      } else {
        inputs.probe?.record(q, k);
        out = ops.attention(q, k, v, { causal }).out;
      }
      return this.o_proj.forward(out.reshape([seq, numHeads * headDim]), inputs.outScale);
    });
  }

  /** q, k, v [batch, seq, heads, headDim] of x [batch·seq, hidden]. */
  #project(x: Tensor, batch: number, rope: Rope | null): { q: Tensor; k: Tensor; v: Tensor } {
    const { numHeads, numKvHeads, headDim } = this.config;
    const seq = x.shape[0] / batch;
    let q = this.q_proj.forward(x).reshape([batch, seq, numHeads, headDim]);
    let k = this.k_proj.forward(x).reshape([batch, seq, numKvHeads, headDim]);
    const v = this.v_proj.forward(x).reshape([batch, seq, numKvHeads, headDim]);
    if (rope) {
      q = ops.rotary(q, rope.cos, rope.sin);
      k = ops.rotary(k, rope.cos, rope.sin);
    }
    return { q, k, v };
  }

  /**
   * One token's q‖k‖v (one GEMM over the fused weight), q‖k rotated in place in one call (the heads of one
   * token are rows of one tensor, so the parts are views): two launches where #project takes five. `kv` is
   * k‖v as one block [2, hkv·headDim] (rows of that tensor), which the cache takes in one write.
   */
  #projectOne(qkv: Tensor, rope: Rope | null): { q: Tensor; k: Tensor; v: Tensor; kv: Tensor } {
    const { numHeads: hq, numKvHeads: hkv, headDim } = this.config;
    const y = qkv.reshape([hq + 2 * hkv, headDim]);
    if (rope) {
      const qk = y.narrow(0, hq + hkv).reshape([1, 1, hq + hkv, headDim]);
      ops.rotary(qk, rope.cos, rope.sin, { out: qk });
    }
    const heads = (from: number, to: number) => y.narrow(from, to).reshape([1, 1, to - from, headDim]);
    return {
      q: heads(0, hq),
      k: heads(hq, hq + hkv),
      v: heads(hq + hkv, hq + 2 * hkv),
      kv: y.narrow(hq, hq + 2 * hkv).reshape([2, hkv * headDim]),
    };
  }

  [Symbol.dispose](): void {
    for (const l of [this.q_proj, this.k_proj, this.v_proj, this.o_proj]) l[Symbol.dispose]();
    this.qkv?.[Symbol.dispose]();
  }
}
