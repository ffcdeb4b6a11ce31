/**
 * TSTAR's LLM behind one seam: embeddings of ids, a cache, and the next-token logits of embeddings placed after
 * what the cache holds. Qwen2 is Qwen2-VL's decoder with every prompt position the same on the three M-RoPE rows
 * (plain 1-D RoPE: the compressed video tokens are a flat run, as in LLaVA); Nemotron-H is its own stack.
 */
import { InputError } from '../../errors.js';
import { attentionLayers, HybridCache } from '../../nn/cache.js';
import type { ParamStore } from '../../nn/params.js';
import { mrope, rotaryTensors } from '../../nn/rotary.js';
import * as ops from '../../runtime/ops.js';
import { tidy } from '../../runtime/scope.js';
import type { Tensor } from '../../runtime/tensor.js';
import { NemotronHForCausalLM } from '../nemotron_h/model.js';
import type { Qwen2VLConfig } from '../qwen2vl/config.js';
import { Qwen2Decoder } from '../qwen2vl/text.js';
import type { TstarText } from './config.js';

export interface TstarLanguageModel extends Disposable {
  /** Token embeddings [n, hidden] of ids (checked against the vocabulary). */
  embed(ids: ArrayLike<number>): Tensor;
  newCache(capacity: number): HybridCache;
  /** Embeddings x [n, hidden] after the cache's tokens (which they join) → logits [1, vocab] of the last one. */
  next(x: Tensor, cache: HybridCache): Tensor;
  /**
   * Embeddings x [n, hidden] of a whole sequence (no cache: training) → logits [n, vocab] f32 of every row; or of
   * `batch` sequences of one length one after another, each on its own at positions from 0.
   */
  sequence(x: Tensor, batch?: number): Tensor;
}

const f32 = (t: Tensor): Tensor => (t.dtype === 'f32' ? t : ops.cast(t, 'f32'));

/** The LLM `text` describes, from parameters under its own names (`model.*` / `backbone.*`, `lm_head`). */
export function loadLanguageModel(p: ParamStore, text: TstarText): TstarLanguageModel {
  if (text.kind === 'nemotron_h') {
    const lm = NemotronHForCausalLM.fromParams(text.config, p);
    const logits = (x: Tensor, cache: HybridCache | null, keep: number | null, batch = 1) =>
      tidy(() => f32(lm.lm_head.forward(lm.backbone.forward(x, cache, keep, batch))));
    return {
      embed: (ids) => lm.backbone.embed(ids),
      newCache: (capacity) => lm.newCache(capacity),
      next: (x, cache) => logits(x, cache, 1),
      sequence: (x, batch) => logits(x, null, null, batch),
      [Symbol.dispose]: () => lm[Symbol.dispose](),
    };
  }
  return qwen2LanguageModel(Qwen2Decoder.load(p, text.config), text.config);
}

/** Qwen2 as TSTAR's LLM: Qwen2-VL's decoder (e.g. one a Qwen2-VL model holds) at 1-D positions. */
export function qwen2LanguageModel(decoder: Qwen2Decoder, c: Qwen2VLConfig): TstarLanguageModel {
  const t = c.text;
  const backend = decoder.embed_tokens.backend;
  /**
   * Logits of the last `keep` rows (all when null) of x placed after the cache's tokens (none without one);
   * without a cache x may hold `batch` sequences, each from position 0.
   */
  const logits = (x: Tensor, cache: HybridCache | null, keep: number | null, batch = 1) => {
    const from = cache?.length ?? 0;
    const pos = Array.from({ length: x.shape[0] / batch }, (_, j) => from + j);
    return tidy(() => {
      const rope = rotaryTensors(backend, mrope([pos, pos, pos], t.head_dim, t.rope_theta, t.mrope_section));
      return decoder.logits(decoder.forward(x, rope, cache, keep, undefined, batch));
    });
  };
  return {
    embed(ids) {
      for (let i = 0; i < ids.length; i++)
        if (!Number.isInteger(ids[i]) || ids[i] < 0 || ids[i] >= t.vocab_size)
          throw new InputError(`token id ${ids[i]} is outside the vocabulary (0..${t.vocab_size - 1})`);
      return tidy(() => decoder.embed(ops.tensor(backend, Int32Array.from(ids), [ids.length], 'i32')));
    },
    newCache: (capacity) =>
      new HybridCache(backend, {
        layers: attentionLayers(t.num_hidden_layers, t.num_key_value_heads, t.head_dim),
        dtype: decoder.embed_tokens.dtype,
        capacity,
      }),
    next(x, cache) {
      cache.reserve(x.shape[0]);
      return logits(x, cache, 1);
    },
    sequence: (x, batch) => tidy(() => f32(logits(x, null, null, batch))),
    [Symbol.dispose]: () => decoder[Symbol.dispose](),
  };
}
