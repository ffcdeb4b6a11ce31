/**
 * The Vamba decoder layer (research/vamba.md §2.3). Two streams: text H (the prompt tokens only) and video V
 * (the merger output, never inside the text sequence).
 *
 *   x = RMSNorm(H)
 *   H ← H + α·SelfAttn(x) + (1−α)·CrossAttn(x → V)          α clamped to [0, 1]; without α both weights are 1
 *   V ← V + Mamba2(RMSNorm_1e-5(V))                          (for the next layer)
 *   H ← H + MLP(RMSNorm(H))                                  (text only)
 *
 * The video update depends on nothing textual, so it runs once per video (`advanceVideo`), keeping only this
 * layer's cross-attention K/V; `forward` is the text half and is all a question costs.
 */

import { SelfAttention } from '../../nn/attention.js';
import type { AttentionProbe } from '../../nn/attention-probe.js';
import { type Caches, layerCaches } from '../../nn/cache.js';
import { CrossAttention, type CrossKV } from '../../nn/cross-attention.js';
import { Linear } from '../../nn/linear.js';
import { Mamba2Block, type Mamba2Config, type Mamba2State } from '../../nn/mamba2.js';
import { GatedMLP } from '../../nn/mlp.js';
import { RMSNorm } from '../../nn/norm.js';
import type { ParamSpec, ParamStore } from '../../nn/params.js';
import type { Rope } from '../../nn/rotary.js';
import { active } from '../../runtime/grad-hook.js';
import * as ops from '../../runtime/ops.js';
import { keep, tidy } from '../../runtime/scope.js';
import type { Tensor } from '../../runtime/tensor.js';
import type { Qwen2VLConfig } from '../qwen2vl/config.js';
import { textAttentionConfig } from '../qwen2vl/weights.js';
import { VIDEO_NORM_EPS } from './config.js';

export interface VambaSwitches {
  /** `use_alpha_balancing`: a learnt per-layer α mixes self- and cross-attention. */
  alpha: boolean;
  /** `cross_attn_use_position_embeddings`: M-RoPE on cross-attention queries (text) and keys (video grid). */
  crossRope: boolean;
  /** `cross_attn_use_layer_norm`: V is replaced by input_layernorm(V) before the cross-attention. */
  crossNorm: boolean;
}

export const switchesOf = (c: Qwen2VLConfig): VambaSwitches => ({
  alpha: c.use_alpha_balancing,
  crossRope: c.cross_attn_use_position_embeddings,
  crossNorm: c.cross_attn_use_layer_norm,
});

/** The tensors a Vamba layer adds to a Qwen2 layer (official names). */
export function vambaLayerSpecs(
  prefix: string,
  config: Qwen2VLConfig,
  attn: ConstructorParameters<typeof CrossAttention>[0],
  mixer: Mamba2Config | null,
): ParamSpec[] {
  const specs = CrossAttention.specs(`${prefix}.cross_attn`, attn);
  if (mixer) specs.push(...Mamba2Block.specs(`${prefix}.vision_mixer`, mixer));
  if (config.use_alpha_balancing) specs.push({ name: `${prefix}.alpha`, shape: [1] });
  return specs;
}

/** What the text half of a layer reads besides the stream. */
export interface VambaTextInputs {
  rope: Rope;
  cache: Caches;
  layer: number;
  kv: CrossKV | readonly CrossKV[];
  probe?: AttentionProbe;
  /** No cache: H holds this many sequences of equal length (a training batch; kv is [batch, …]). */
  batch?: number;
}

export class VambaDecoderLayer implements Disposable {
  constructor(
    readonly switches: VambaSwitches,
    readonly input_layernorm: RMSNorm,
    readonly self_attn: SelfAttention,
    readonly cross_attn: CrossAttention,
    readonly post_attention_layernorm: RMSNorm,
    readonly mlp: GatedMLP,
    readonly vision_mixer: Mamba2Block | null,
    /** The stored α (may lie slightly outside [0, 1]); null without α balancing. */
    readonly alpha: number | null,
    /**
     * Self-attention's q‖k‖v and the cross-attention's q_proj as one layer (they are views of it): a one-token
     * step projects all four in one GEMV.
     */
    readonly projections: Linear | null = null,
  ) {}

  static async load(p: ParamStore, prefix: string, config: Qwen2VLConfig, mixer: Mamba2Config | null) {
    let alpha: number | null = null;
    if (config.use_alpha_balancing) {
      const a = p.take(`${prefix}.alpha`);
      alpha = await a.item();
      a.dispose();
    }
    return VambaDecoderLayer.build(p, prefix, config, mixer, alpha);
  }

  /**
   * The layer from its parameters with α already read (`alpha`; the store's α is not taken): synchronous, so
   * a training step can build the model inside the autograd recording (src/train/vamba.ts).
   */
  static build(
    p: ParamStore,
    prefix: string,
    config: Qwen2VLConfig,
    mixer: Mamba2Config | null,
    alpha: number | null,
  ): VambaDecoderLayer {
    const t = config.text;
    const attn = textAttentionConfig(config);
    const block = mixer ? Mamba2Block.load(p, `${prefix}.vision_mixer`, mixer, VIDEO_NORM_EPS) : null;
    const [q, k, v, o] = SelfAttention.projections(p, `${prefix}.self_attn`, attn);
    const cross = SelfAttention.projections(p, `${prefix}.cross_attn`, attn);
    // Both attentions read the same normed token: q, k, v and the cross query as one weight.
    const f = Linear.fuse([q, k, v, cross[0]]);
    const [sq, sk, sv, cq] = f ? f.parts : [q, k, v, cross[0]];
    const qkv = f ? f.fused.rows(0, sq.outFeatures + sk.outFeatures + sv.outFeatures) : null;
    if (qkv) keep(qkv.weight);
    if (qkv?.bias) keep(qkv.bias);
    return new VambaDecoderLayer(
      switchesOf(config),
      RMSNorm.load(p, `${prefix}.input_layernorm`, t.rms_norm_eps),
      new SelfAttention(attn, sq, sk, sv, o, qkv),
      new CrossAttention(attn, cq, cross[1], cross[2], cross[3]),
      RMSNorm.load(p, `${prefix}.post_attention_layernorm`, t.rms_norm_eps),
      GatedMLP.load(p, `${prefix}.mlp`, t.hidden_act),
      block,
      alpha,
      f?.fused ?? null,
    );
  }

  /**
   * The video half: this layer's cross-attention K/V from V [n, hidden], and V for the next layer (skipped
   * for the last layer, whose video update nothing reads). V is consumed: it may be updated in place and
   * returned, or disposed. The Mamba block runs `chunkLen` tokens at a time, continuing from `state` (the
   * scan after earlier video tokens, for a video that grows; zeros when null) and returning the state after
   * these tokens (null when the block did not run). `batch` videos of equal length, one after another in V
   * (a training batch), are scanned as separate sequences.
   */
  advanceVideo(
    V: Tensor,
    opts: { rope: Rope | null; last: boolean; chunkLen: number; state?: Mamba2State | null; batch?: number },
  ): { kv: CrossKV; V: Tensor | null; state: Mamba2State | null } {
    const batch = opts.batch ?? 1;
    let v = V;
    if (this.switches.crossNorm) {
      v = this.input_layernorm.forward(V);
      V.dispose();
    }
    const kv = this.cross_attn.keysValues(v, opts.rope, batch);
    if (opts.last || !this.vision_mixer) {
      if (opts.last) v.dispose();
      return { kv, V: opts.last ? null : v, state: null };
    }
    const n = v.shape[0];
    const seq = v.reshape([batch, n / batch, v.shape[1]]);
    // In place, except while autograd records (the tape keeps the chunks it read for backward).
    const inPlace = !active;
    const r = this.vision_mixer.prefillChunked(seq, opts.chunkLen, opts.state ?? null, { inPlace });
    seq.dispose();
    if (inPlace) return { kv, V: v, state: r.state };
    const y = r.y.reshape([n, v.shape[1]]);
    r.y.dispose();
    v.dispose();
    return { kv, V: y, state: r.state };
  }

  /**
   * The text half: H [seq, hidden] at the cache's next positions, attending to the video through `kv`; or, in
   * batched decoding, row i one token of caches[i]'s sequence attending to its video's kv[i]. A `probe`
   * records the cross-attention of the last position over the video.
   */
  forward(H: Tensor, inputs: VambaTextInputs): Tensor {
    return tidy(() => {
      const o = this.forwardResidual(H, null, inputs);
      return ops.add(o.x, o.r);
    });
  }

  /**
   * `forward` on the stream H + r, where r (the previous layer's MLP output) is still to be added: the add
   * happens in this layer's input norm pass (one launch fewer per layer). Returns the stream after the
   * attention (H + r + mixed attention) and this layer's MLP output, to be added by the next norm.
   */
  forwardResidual(H: Tensor, r: Tensor | null, inputs: VambaTextInputs): { x: Tensor; r: Tensor } {
    return tidy(() => {
      const a = this.input_layernorm.addForward(H, r);
      // One token: self q‖k‖v and the cross query from one GEMV, its row's parts are views.
      const all = a.out.shape[0] === 1 && this.projections ? this.projections.forward(a.out) : null;
      const part = (from: number, to: number) =>
        all
          ?.reshape([all.size])
          .narrow(from, to)
          .reshape([1, to - from]) ?? null;
      const nSelf = this.self_attn.qkv?.outFeatures ?? 0;
      // α·self + (1−α)·cross, each weight inside its o_proj's GEMM; without α both weights are 1.
      const w = this.alpha === null ? null : Math.min(1, Math.max(0, this.alpha));
      const sa = this.self_attn.forward(a.out, {
        rope: inputs.rope,
        batch: inputs.batch,
        outScale: w ?? 1,
        qkv: part(0, nSelf),
        ...layerCaches(inputs.cache, inputs.layer),
      });
      const ca = this.cross_attn.forward(
        a.out,
        inputs.kv,
        this.switches.crossRope ? inputs.rope : null,
        inputs.probe,
        { outScale: w === null ? 1 : 1 - w, q: all && part(nSelf, all.size) },
      );
      // The residual add and the post-attention norm in one pass.
      const h = this.post_attention_layernorm.addForward(a.sum, ops.add(sa, ca));
      return { x: h.sum, r: this.mlp.forward(h.out) };
    });
  }

  [Symbol.dispose](): void {
    for (const m of [
      this.input_layernorm,
      this.self_attn,
      this.cross_attn,
      this.post_attention_layernorm,
      this.mlp,
    ])
      m[Symbol.dispose]();
    this.vision_mixer?.[Symbol.dispose]();
    this.projections?.[Symbol.dispose]();
  }
}
