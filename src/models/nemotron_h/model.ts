/**
 * Nemotron-H (transformers' `NemotronHModel` / `NemotronHForCausalLM`): token embeddings, the block stack of
 * the pattern, `norm_f` and an untied `lm_head`. Decoding state lives in a HybridCache holding K/V for the
 * attention blocks and the conv + SSM state for the Mamba-2 blocks (MLP blocks keep none), so a prompt can be
 * fed in pieces of any length, then token by token, and a prefix snapshot can be resumed by many sessions.
 */
import { InputError, ModelError } from '../../errors.js';
import { type GeneratedToken, type GenerateOptions, generate } from '../../generate/generate.js';
import type { CausalLM } from '../../generate/types.js';
import { Checkpoint } from '../../io/checkpoint.js';
import { type GenerationConfig, readGenerationConfig } from '../../io/generation-config.js';
import {
  type CacheLayer,
  type CacheSnapshot,
  type Caches,
  commitCaches,
  HybridCache,
  layerCaches,
} from '../../nn/cache.js';
import { Linear } from '../../nn/linear.js';
import { RMSNorm } from '../../nn/norm.js';
import type { ParamStore } from '../../nn/params.js';
import type { Backend, DeviceName } from '../../runtime/backend.js';
import { getBackend } from '../../runtime/device.js';
import type { DType } from '../../runtime/dtype.js';
import * as ops from '../../runtime/ops.js';
import { tidy } from '../../runtime/scope.js';
import type { Tensor } from '../../runtime/tensor.js';
import { cast, NemotronHBlock } from './block.js';
import { type BlockChar, type NemotronHConfig, readNemotronHConfig } from './config.js';
import { EMBEDDINGS, loadNemotronHParams, nemotronHParamCount } from './weights.js';

export interface NemotronHLoadOptions {
  /** A backend instance, or a device name (default 'cpu'). */
  backend?: Backend;
  device?: DeviceName;
  /** Dtype of the weights and activations; default f32 on the CPU, bf16 elsewhere. */
  dtype?: DType;
}

/** The backbone: embeddings → blocks → norm_f. */
export class NemotronHModel implements Disposable {
  /** Each block's layer in the cache (null for MLP blocks, which keep no state). */
  readonly cacheIndex: (number | null)[];
  /** Layout of a cache for this stack. */
  readonly cacheLayers: CacheLayer[] = [];
  /** The residual stream's dtype: f32 with `residual_in_fp32`, else the weights'. */
  readonly residualDtype: DType;

  constructor(
    readonly config: NemotronHConfig,
    readonly embeddings: Tensor,
    readonly layers: NemotronHBlock[],
    readonly norm_f: RMSNorm,
  ) {
    this.cacheIndex = layers.map((b) => {
      if (b.kind === '-') return null;
      this.cacheLayers.push(
        b.kind === '*'
          ? { kind: 'attention', kvHeads: config.num_key_value_heads, headDim: config.head_dim }
          : { kind: 'mamba' },
      );
      return this.cacheLayers.length - 1;
    });
    this.residualDtype = config.residual_in_fp32 ? 'f32' : embeddings.dtype;
  }

  static load(p: ParamStore, c: NemotronHConfig): NemotronHModel {
    const layers = [...c.hybrid_override_pattern].map((ch, i) =>
      NemotronHBlock.load(p, `backbone.layers.${i}`, ch as BlockChar, c),
    );
    return new NemotronHModel(
      c,
      p.take(EMBEDDINGS),
      layers,
      RMSNorm.load(p, 'backbone.norm_f', c.layer_norm_epsilon),
    );
  }

  /** Token embeddings [n, hidden] of ids (checked against the vocabulary). */
  embed(ids: ArrayLike<number>): Tensor {
    const vocab = this.config.vocab_size;
    for (let i = 0; i < ids.length; i++)
      if (!Number.isInteger(ids[i]) || ids[i] < 0 || ids[i] >= vocab)
        throw new InputError(`token id ${ids[i]} is outside the vocabulary (0..${vocab - 1})`);
    const backend = this.embeddings.backend;
    return tidy(() =>
      ops.embedding(this.embeddings, ops.tensor(backend, Int32Array.from(ids), [ids.length], 'i32')),
    );
  }

  /**
   * Runs the blocks over embeddings x [n, hidden] placed after the `cache.length` tokens already in `cache`
   * (which they join; no cache: a whole sequence; a list of caches: row i is one token of caches[i]'s
   * sequence). Returns the final-normed hidden states of the last `keep` rows (all when null), in the weights'
   * dtype. No cache: x may hold `batch` sequences of one length one after another, each on its own.
   */
  forward(x: Tensor, cache: Caches, keep: number | null = null, batch = 1): Tensor {
    const n = x.shape[0];
    if (!n) throw new InputError('Nemotron-H: no tokens to run');
    const out = tidy(() => {
      // The stream is h + r: each block's output r is added inside the next norm's pass (forwardResidual).
      let h = cast(x, this.residualDtype);
      let r: Tensor | null = null;
      this.layers.forEach((block, i) => {
        const layer = this.cacheIndex[i];
        const at = layerCaches(cache, layer);
        const next = block.forwardResidual(h, r, at.cache, at.rows, batch);
        if (h !== x && h !== next.x) h.dispose();
        r?.dispose();
        h = next.x;
        r = next.r;
      });
      const last = (t: Tensor) => (keep === null || keep >= n ? t : t.narrow(n - keep, n));
      const dtype = this.norm_f.weight.dtype;
      if (r && h.dtype === dtype) return this.norm_f.addForward(last(h), last(r)).out;
      return this.norm_f.forward(cast(r ? ops.add(last(h), last(r)) : last(h), dtype));
    });
    commitCaches(cache, n);
    return out;
  }

  /** An empty cache for this stack, with room for `capacity` tokens of K/V (it grows on demand). */
  newCache(capacity = 256): HybridCache {
    return new HybridCache(this.embeddings.backend, {
      layers: this.cacheLayers,
      dtype: this.embeddings.dtype,
      capacity,
    });
  }

  [Symbol.dispose](): void {
    for (const l of this.layers) l[Symbol.dispose]();
    this.norm_f[Symbol.dispose]();
    this.embeddings.dispose();
  }
}

export class NemotronHForCausalLM implements Disposable {
  constructor(
    readonly config: NemotronHConfig,
    readonly backbone: NemotronHModel,
    readonly lm_head: Linear,
    readonly generationConfig: GenerationConfig | null = null,
  ) {}

  /** Loads a checkpoint directory (config.json, single or sharded safetensors, generation_config.json). */
  static async load(dir: string, opts: NemotronHLoadOptions = {}): Promise<NemotronHForCausalLM> {
    const backend = opts.backend ?? (await getBackend(opts.device ?? 'cpu'));
    const dtype = opts.dtype ?? (backend.name === 'cpu' ? 'f32' : 'bf16');
    const config = await readNemotronHConfig(dir);
    const generationConfig = await readGenerationConfig(dir);
    const checkpoint = await Checkpoint.open(dir);
    try {
      const params = await loadNemotronHParams(checkpoint, config, backend, dtype, dir);
      return NemotronHForCausalLM.fromParams(config, params, generationConfig);
    } finally {
      await checkpoint.close();
    }
  }

  static fromParams(
    config: NemotronHConfig,
    params: ParamStore,
    generationConfig: GenerationConfig | null = null,
  ): NemotronHForCausalLM {
    const backbone = NemotronHModel.load(params, config);
    const head = Linear.load(params, 'lm_head', false);
    const left = params.remaining();
    if (left.length) throw new ModelError(`Nemotron-H: parameters loaded but not used: ${left.join(', ')}`);
    return new NemotronHForCausalLM(config, backbone, head, generationConfig);
  }

  get paramCount(): number {
    return nemotronHParamCount(this.config);
  }

  /** Stop tokens: generation_config.json's eos ids, else config.json's. */
  get stopTokens(): number[] {
    const g = this.generationConfig?.eos_token_id ?? [];
    return g.length ? g : this.config.eos_token_id;
  }

  newCache(capacity = 256): HybridCache {
    return this.backbone.newCache(capacity);
  }

  /**
   * Logits [ids.length, vocab] (f32) for `ids` placed after the tokens already in `cache` (which they join), or
   * of a whole sequence without a cache; only the last row with `lastOnly`.
   */
  forward(ids: ArrayLike<number>, cache: Caches = null, opts: { lastOnly?: boolean } = {}): Tensor {
    return tidy(() => {
      const h = this.backbone.forward(this.backbone.embed(ids), cache, opts.lastOnly ? 1 : null);
      const logits = this.lm_head.forward(h);
      return logits.dtype === 'f32' ? logits : ops.cast(logits, 'f32');
    });
  }

  /** A decoding session: a fresh cache, or one continuing from a prefix snapshot. */
  session(opts: { capacity?: number; from?: CacheSnapshot } = {}): NemotronHSession {
    return new NemotronHSession(
      this,
      opts.from ? opts.from.resume(opts.capacity) : this.newCache(opts.capacity),
    );
  }

  /** Generates after the prompt ids (greedy unless asked otherwise), stopping at the checkpoint's stop tokens. */
  async *generate(ids: ArrayLike<number>, opts: GenerateOptions = {}): AsyncGenerator<GeneratedToken> {
    using session = this.session({ capacity: ids.length + (opts.maxNewTokens ?? 256) });
    yield* generate(session, ids, { stopTokens: this.stopTokens, promptIds: ids, ...opts });
  }

  [Symbol.dispose](): void {
    this.lm_head[Symbol.dispose]();
    this.backbone[Symbol.dispose]();
  }
}

/** Prompt pieces then one token per step through one cache; `generate` drives it. */
export class NemotronHSession implements CausalLM<ArrayLike<number>>, Disposable {
  constructor(
    readonly model: NemotronHForCausalLM,
    readonly cache: HybridCache,
  ) {}

  /** Runs ids after what the cache holds; returns the logits [1, vocab] of the last one. */
  prefill(ids: ArrayLike<number>): Tensor {
    if (!ids.length) throw new InputError('prefill: the prompt is empty');
    return this.model.forward(ids, this.cache, { lastOnly: true });
  }

  step(token: number): Tensor {
    if (!this.cache.length) throw new InputError('step: call prefill first');
    return this.model.forward([token], this.cache, { lastOnly: true });
  }

  get batchKey(): NemotronHForCausalLM {
    return this.model;
  }

  /** One token for each session (all of this model, prefilled) in one forward: logits [n, vocab]. */
  stepMany(sessions: readonly CausalLM<ArrayLike<number>>[], tokens: readonly number[]): Tensor {
    const caches = sessions.map((s) => {
      if (!(s instanceof NemotronHSession) || s.model !== this.model)
        throw new TypeError('stepMany: sessions of another model');
      if (!s.cache.length) throw new InputError('step: call prefill first');
      return s.cache;
    });
    return this.model.forward(tokens, caches);
  }

  [Symbol.dispose](): void {
    this.cache[Symbol.dispose]();
  }
}
