/**
 * The Vamba language model: token embeddings, the two-stream layers, the final norm and lm_head. The video
 * enters once through `encodeVideo` (merger output → per-layer cross-attention K/V); text then runs through
 * `forward` as often as wanted, at text positions 0..L−1 (the video takes no positions, §2.5).
 */
import type { AttentionProbe } from '../../nn/attention-probe.js';
import { attentionLayers, type Caches, HybridCache } from '../../nn/cache.js';
import type { CrossKV } from '../../nn/cross-attention.js';
import { Linear } from '../../nn/linear.js';
import { disposeState, type Mamba2Config, type Mamba2State } from '../../nn/mamba2.js';
import { RMSNorm } from '../../nn/norm.js';
import type { ParamStore } from '../../nn/params.js';
import { mrope, type Rope, rope1d, rotaryTensors } from '../../nn/rotary.js';
import type { Backend } from '../../runtime/backend.js';
import * as ops from '../../runtime/ops.js';
import { disposeAll, tidy } from '../../runtime/scope.js';
import type { Tensor } from '../../runtime/tensor.js';
import type { Pieces } from '../family.js';
import type { Qwen2VLConfig } from '../qwen2vl/config.js';
import { VambaDecoderLayer } from './layer.js';

/** Video tokens per Mamba chunk when encoding: bounds the in_proj/SSD temporaries (≈ 4·hidden per token). */
export const DEFAULT_VIDEO_CHUNK = 4096;

export class VambaLanguageModel implements Disposable {
  constructor(
    readonly config: Qwen2VLConfig,
    readonly embed_tokens: Tensor,
    readonly layers: VambaDecoderLayer[],
    readonly norm: RMSNorm,
    readonly lm_head: Linear,
  ) {}

  static async load(
    p: ParamStore,
    config: Qwen2VLConfig,
    mixer: Mamba2Config | null,
  ): Promise<VambaLanguageModel> {
    const alphas: (number | null)[] = [];
    for (let i = 0; i < config.text.num_hidden_layers; i++) {
      const a = config.use_alpha_balancing ? p.take(`model.layers.${i}.alpha`) : null;
      alphas.push(a ? await a.item() : null);
      a?.dispose();
    }
    return VambaLanguageModel.build(p, config, mixer, alphas);
  }

  /** The model with every layer's α already read (see VambaDecoderLayer.build): synchronous. */
  static build(
    p: ParamStore,
    config: Qwen2VLConfig,
    mixer: Mamba2Config | null,
    alphas: readonly (number | null)[],
  ): VambaLanguageModel {
    const t = config.text;
    const embed = p.take('model.embed_tokens.weight');
    const layers: VambaDecoderLayer[] = [];
    for (let i = 0; i < t.num_hidden_layers; i++)
      layers.push(VambaDecoderLayer.build(p, `model.layers.${i}`, config, mixer, alphas[i]));
    const norm = RMSNorm.load(p, 'model.norm', t.rms_norm_eps);
    const head = t.tie_word_embeddings ? new Linear(embed) : Linear.load(p, 'lm_head', false);
    return new VambaLanguageModel(config, embed, layers, norm, head);
  }

  /**
   * Per-layer cross-attention K/V for video tokens V [n, hidden] (the merger output, consumed). `grid` is the
   * merged token grid [t, h, w] (needed only with cross_attn_use_position_embeddings).
   */
  encodeVideo(
    V: Tensor,
    grid: readonly [number, number, number],
    opts: { chunkLen?: number; batch?: number } = {},
  ): CrossKV[] {
    const r = this.appendVideo(V, grid, { ...opts, states: null });
    for (const s of r.states) if (s) disposeState(s);
    return r.kvs;
  }

  /**
   * `encodeVideo` in pieces of whole temporal groups of about `pieces.tokens` tokens (chunked prefill),
   * awaiting `pieces.pause()` between two: each piece continues from the Mamba states the pieces before it
   * left (`appendVideo`, as a live video grows), its K/V rows written into buffers for the whole video.
   */
  async encodeVideoInPieces(
    V: Tensor,
    grid: readonly [number, number, number],
    opts: { chunkLen?: number; pieces: Pieces },
  ): Promise<CrossKV[]> {
    const [t, h, w] = grid;
    const perGroup = h * w;
    const step = Math.max(1, Math.floor(opts.pieces.tokens / perGroup));
    if (step >= t) return this.encodeVideo(V, grid, opts);
    const out: CrossKV[] = [];
    let states: (Mamba2State | null)[] | null = null;
    try {
      for (let t0 = 0; t0 < t; t0 += step) {
        if (t0) await opts.pieces.pause();
        const t1 = Math.min(t, t0 + step);
        const r = this.appendVideo(V.narrow(t0 * perGroup, t1 * perGroup), [t1 - t0, h, w], {
          chunkLen: opts.chunkLen,
          states,
          tOffset: t0,
        });
        for (const s of states ?? []) if (s) disposeState(s);
        states = r.states;
        try {
          r.kvs.forEach((kv, i) => {
            const whole = (x: Tensor) =>
              ops.empty(x.backend, [1, t * perGroup, ...x.shape.slice(2)], x.dtype);
            out[i] ??= { k: whole(kv.k), v: whole(kv.v) };
            ops.writeSlice(out[i].k, kv.k, 1, t0 * perGroup);
            ops.writeSlice(out[i].v, kv.v, 1, t0 * perGroup);
          });
        } finally {
          disposeAll(r.kvs);
        }
      }
      return out;
    } catch (e) {
      disposeAll(out);
      throw e;
    } finally {
      for (const s of states ?? []) if (s) disposeState(s);
      V.dispose();
    }
  }

  /**
   * Video tokens V [n, hidden] (consumed) that follow `tOffset` temporal groups already encoded: the K/V of
   * these tokens for every layer, and every layer's Mamba state after them. `states` are the states after
   * the earlier tokens (null: none came before); they are left untouched. Appending a video piece by piece
   * this way gives the K/V of encoding it at once (the video stream is causal: research/vamba.md §2.3).
   * `batch`: V is that many videos of grid `grid` one after another (a training step's examples), each
   * scanned on its own; K/V come as [batch, …].
   */
  appendVideo(
    V: Tensor,
    grid: readonly [number, number, number],
    opts: {
      chunkLen?: number;
      states: readonly (Mamba2State | null)[] | null;
      tOffset?: number;
      batch?: number;
    },
  ): { kvs: CrossKV[]; states: (Mamba2State | null)[] } {
    const t = this.config.text;
    const batch = opts.batch ?? 1;
    const chunkLen = opts.chunkLen ?? DEFAULT_VIDEO_CHUNK;
    const rope = this.config.cross_attn_use_position_embeddings
      ? videoRope(V.backend, V.shape[0] / batch, grid, this.config, opts.tOffset ?? 0)
      : null;
    const kvs: CrossKV[] = [];
    const states: (Mamba2State | null)[] = [];
    let v: Tensor | null = V;
    try {
      for (let i = 0; i < t.num_hidden_layers; i++) {
        const r = this.layers[i].advanceVideo(v!, {
          rope,
          last: i === t.num_hidden_layers - 1,
          chunkLen,
          state: opts.states?.[i] ?? null,
          batch,
        });
        kvs.push(r.kv);
        states.push(r.state);
        v = r.V;
      }
    } catch (e) {
      disposeAll(kvs);
      for (const s of states) if (s) disposeState(s);
      v?.dispose();
      throw e;
    } finally {
      if (rope) disposeAll(rope);
    }
    return { kvs, states };
  }

  newCache(capacity = 256): HybridCache {
    const t = this.config.text;
    return new HybridCache(this.embed_tokens.backend, {
      layers: attentionLayers(t.num_hidden_layers, t.num_key_value_heads, t.head_dim),
      dtype: this.embed_tokens.dtype,
      capacity,
    });
  }

  /**
   * Logits for `ids` appended after the `cache.length` tokens already in the cache (which they join):
   * [ids.length, vocab] f32, or only the last row with `lastOnly`. A `probe` records every layer's
   * cross-attention of the last position.
   */
  forward(
    ids: ArrayLike<number>,
    kvs: readonly CrossKV[],
    cache: HybridCache,
    opts: { lastOnly?: boolean; probe?: AttentionProbe } = {},
  ): Tensor {
    const positions = Array.from({ length: ids.length }, (_, i) => cache.length + i);
    const logits = this.#run(ids, positions, cache, (i) => kvs[i], opts.lastOnly ?? false, opts.probe);
    cache.commit(ids.length);
    return logits;
  }

  /**
   * A training forward without a cache: ids holds `batch` sequences of equal length one after another (pad
   * the shorter ones at the end: attention is causal, so padding changes no earlier row), sequence i
   * attending to its video's K/V (`kvs` from encodeVideo with the same batch). Logits [ids.length, vocab] f32.
   */
  forwardBatch(ids: ArrayLike<number>, batch: number, kvs: readonly CrossKV[]): Tensor {
    if (ids.length % batch) throw new RangeError(`${ids.length} ids do not split into ${batch} sequences`);
    const positions = Array.from({ length: ids.length / batch }, (_, i) => i);
    return this.#run(ids, positions, null, (i) => kvs[i], false, undefined, batch);
  }

  /**
   * Batched decoding: token i joins caches[i]'s sequence, whose video is videos[i] (each layer's K/V); logits
   * [n, vocab] f32.
   */
  stepRows(
    tokens: readonly number[],
    videos: readonly (readonly CrossKV[])[],
    caches: readonly HybridCache[],
  ): Tensor {
    const logits = this.#run(
      tokens,
      caches.map((c) => c.length),
      caches,
      (i) => videos.map((v) => v[i]),
      false,
    );
    for (const c of caches) c.commit(1);
    return logits;
  }

  #run(
    ids: ArrayLike<number>,
    positions: number[],
    cache: Caches,
    kvOf: (layer: number) => CrossKV | readonly CrossKV[],
    lastOnly: boolean,
    probe?: AttentionProbe,
    batch?: number,
  ): Tensor {
    const t = this.config.text;
    const backend = this.embed_tokens.backend;
    const seq = ids.length;
    return tidy(() => {
      // Text positions are equal on the three M-RoPE rows, where M-RoPE is plain 1-D RoPE.
      const rope = rotaryTensors(backend, rope1d(positions, t.head_dim, t.rope_theta));
      let h = ops.embedding(this.embed_tokens, ops.tensor(backend, Int32Array.from(ids), [seq], 'i32'));
      // The stream is h + r: each layer's MLP output r is added inside the next norm's pass.
      let r: Tensor | null = null;
      for (let i = 0; i < this.layers.length; i++) {
        const next = this.layers[i].forwardResidual(h, r, {
          rope,
          cache,
          layer: i,
          kv: kvOf(i),
          probe,
          batch,
        });
        // Added into next.x: two fewer activations live through the later layers.
        h.dispose();
        r?.dispose();
        ({ x: h, r } = next);
      }
      const last = (t: Tensor) => (lastOnly && seq > 1 ? t.narrow(seq - 1, seq) : t);
      const logits = this.lm_head.forward(this.norm.addForward(last(h), r && last(r)).out);
      return logits.dtype === 'f32' ? logits : ops.cast(logits, 'f32');
    });
  }

  [Symbol.dispose](): void {
    for (const l of this.layers) l[Symbol.dispose]();
    this.norm[Symbol.dispose]();
    if (this.lm_head.weight !== this.embed_tokens) this.lm_head[Symbol.dispose]();
    this.embed_tokens.dispose();
  }
}

/**
 * M-RoPE tables for the video tokens at their merged grid indices (t, h, w) from 0 (get_encoder_position_ids);
 * a piece of a growing video starts at temporal index `tOffset`.
 */
function videoRope(
  backend: Backend,
  tokens: number,
  [gt, gh, gw]: readonly [number, number, number],
  config: Qwen2VLConfig,
  tOffset: number,
): Rope {
  const n = gt * gh * gw;
  if (n !== tokens)
    throw new RangeError(`video grid ${gt}×${gh}×${gw} does not match ${tokens} video tokens`);
  const rows = [new Int32Array(n), new Int32Array(n), new Int32Array(n)] as const;
  for (let i = 0; i < n; i++) {
    rows[0][i] = tOffset + Math.floor(i / (gh * gw));
    rows[1][i] = Math.floor(i / gw) % gh;
    rows[2][i] = i % gw;
  }
  const t = config.text;
  return rotaryTensors(backend, mrope(rows, t.head_dim, t.rope_theta, t.mrope_section));
}
