/**
 * The Qwen2 decoder of Qwen2-VL: pre-norm layers x += SelfAttn(RMSNorm(x)); x += SwiGLU(RMSNorm(x)) with
 * GQA attention (q/k/v bias, no o bias) rotated by M-RoPE, a final RMSNorm and the lm_head (or the tied
 * embedding matrix).
 */

import { SelfAttention } from '../../nn/attention.js';
import type { AttentionProbe } from '../../nn/attention-probe.js';
import { type Caches, commitCaches, type LayerCaches, layerCaches } from '../../nn/cache.js';
import { GatedMLP } from '../../nn/mlp.js';
import { RMSNorm } from '../../nn/norm.js';
import type { ParamStore } from '../../nn/params.js';
import type { Rope } from '../../nn/rotary.js';
import * as ops from '../../runtime/ops.js';
import { tidy } from '../../runtime/scope.js';
import type { Tensor } from '../../runtime/tensor.js';
import type { Qwen2VLConfig } from './config.js';
import { textAttentionConfig } from './weights.js';

class Qwen2DecoderLayer implements Disposable {
  constructor(
    readonly input_layernorm: RMSNorm,
    readonly self_attn: SelfAttention,
    readonly post_attention_layernorm: RMSNorm,
    readonly mlp: GatedMLP,
  ) {}

  /**
   * One layer on the residual stream x + r, where r (the previous layer's MLP output) is still to be added:
   * each residual add happens inside the next RMSNorm's pass. Returns the stream and this layer's r. Given
   * an r, x and r are the previous layer's outputs and are disposed once added (two fewer activations live
   * through the MLP).
   */
  forward(
    x: Tensor,
    r: Tensor | null,
    rope: Rope,
    caches: LayerCaches,
    probe?: AttentionProbe,
    batch = 1,
  ): { x: Tensor; r: Tensor } {
    return tidy(() => {
      const a = this.input_layernorm.addForward(x, r);
      if (r) {
        x.dispose();
        r.dispose();
      }
      const attn = this.self_attn.forward(a.out, { rope, ...caches, causal: true, probe, batch });
      const b = this.post_attention_layernorm.addForward(a.sum, attn);
      return { x: b.sum, r: this.mlp.forward(b.out) };
    });
  }

  [Symbol.dispose](): void {
    for (const m of [this.input_layernorm, this.self_attn, this.post_attention_layernorm, this.mlp])
      m[Symbol.dispose]();
  }
}

export class Qwen2Decoder implements Disposable {
  constructor(
    readonly embed_tokens: Tensor,
    readonly layers: Qwen2DecoderLayer[],
    readonly norm: RMSNorm,
    /** [vocab, hidden]; the embedding matrix itself when tied. */
    readonly lm_head: Tensor,
  ) {}

  static load(p: ParamStore, config: Qwen2VLConfig): Qwen2Decoder {
    const t = config.text;
    const attn = textAttentionConfig(config);
    const layers: Qwen2DecoderLayer[] = [];
    for (let i = 0; i < t.num_hidden_layers; i++) {
      const l = `model.layers.${i}`;
      layers.push(
        new Qwen2DecoderLayer(
          RMSNorm.load(p, `${l}.input_layernorm`, t.rms_norm_eps),
          SelfAttention.load(p, `${l}.self_attn`, attn),
          RMSNorm.load(p, `${l}.post_attention_layernorm`, t.rms_norm_eps),
          GatedMLP.load(p, `${l}.mlp`, t.hidden_act),
        ),
      );
    }
    const embed = p.take('model.embed_tokens.weight');
    const norm = RMSNorm.load(p, 'model.norm', t.rms_norm_eps);
    const lmHead = t.tie_word_embeddings ? embed : p.take('lm_head.weight');
    return new Qwen2Decoder(embed, layers, norm, lmHead);
  }

  /** Token embeddings [n, hidden] of i32 ids. */
  embed(ids: Tensor): Tensor {
    return ops.embedding(this.embed_tokens, ids);
  }

  /**
   * Runs the layers over embeddings x [n, hidden] at the rotary table's positions, appending to `cache` when
   * given (and committing the n tokens; a list of caches: row i is one token of caches[i]'s sequence). Returns
   * the final-normed hidden states of the last `keep` rows (all when null). A `probe` records every layer's
   * attention of the last position. No cache: x may hold `batch` sequences of one length one after another,
   * each attending to itself only, all at the rotary table's positions (a training step's padded examples).
   */
  forward(
    x: Tensor,
    rope: Rope,
    cache: Caches,
    keep: number | null = null,
    probe?: AttentionProbe,
    batch = 1,
  ): Tensor {
    return tidy(() => {
      let h = x;
      let r: Tensor | null = null;
      this.layers.forEach((layer, i) => {
        ({ x: h, r } = layer.forward(h, r, rope, layerCaches(cache, i), probe, batch));
      });
      commitCaches(cache, x.shape[0]);
      const n = h.shape[0];
      const rows = (t: Tensor) => (keep === null || keep >= n ? t : t.narrow(n - keep, n));
      return this.norm.addForward(rows(h), r && rows(r)).out;
    });
  }

  /** Logits [n, vocab] of final hidden states. */
  logits(hidden: Tensor): Tensor {
    return ops.linear(hidden, this.lm_head);
  }

  [Symbol.dispose](): void {
    for (const l of this.layers) l[Symbol.dispose]();
    this.norm[Symbol.dispose]();
    this.embed_tokens.dispose();
    if (this.lm_head !== this.embed_tokens) this.lm_head.dispose();
  }
}
