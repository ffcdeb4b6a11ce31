/**
 * Qwen2VLForConditionalGeneration: vision encoder + Qwen2 decoder. Image/video pad tokens in the prompt are
 * replaced by the merged vision tokens (in order), positions come from M-RoPE (`getRopeIndex`), and decoding
 * continues at position n + ropeDelta.
 */
import { InputError, ModelError } from '../../errors.js';
import type { CausalLM } from '../../generate/types.js';
import { Checkpoint } from '../../io/checkpoint.js';
import { type GenerationConfig, readGenerationConfig } from '../../io/generation-config.js';
import { KVCache } from '../../nn/kv-cache.js';
import type { ParamStore } from '../../nn/params.js';
import { mrope, rotaryTensors } from '../../nn/rotary.js';
import type { Backend, DeviceName } from '../../runtime/backend.js';
import { getBackend } from '../../runtime/device.js';
import type { DType } from '../../runtime/dtype.js';
import * as ops from '../../runtime/ops.js';
import { tidy } from '../../runtime/scope.js';
import type { Tensor } from '../../runtime/tensor.js';
import { assertFits } from '../fit.js';
import { type Qwen2VLConfig, readQwen2VLConfig } from './config.js';
import { getRopeIndex } from './rope-index.js';
import { estimateMemory } from './size.js';
import { Qwen2Decoder } from './text.js';
import { encodeVisionChunked, type GridTHW, Qwen2VisionTransformer } from './vision.js';
import { loadQwen2VLParams } from './weights.js';

/** Model inputs, named after the Hugging Face processor outputs. */
export interface Qwen2VLInputs {
  inputIds: ArrayLike<number>;
  /** Image patches [Σ t·h·w, 1176] flattened, and one grid per image. */
  pixelValues?: Float32Array | null;
  imageGridThw?: readonly GridTHW[] | null;
  /** Video patches and one grid per video. */
  pixelValuesVideos?: Float32Array | null;
  videoGridThw?: readonly GridTHW[] | null;
  /**
   * The videos' merged tokens, already encoded (e.g. streamed with `encodeVisionStream`), in place of
   * `pixelValuesVideos`; `videoGridThw` is still needed for the positions. Not consumed.
   */
  videoEmbeds?: Tensor | null;
}

export interface Qwen2VLLoadOptions {
  /** A backend instance, or a device name (default 'cpu'). */
  backend?: Backend;
  device?: DeviceName;
  /** Compute dtype of weights and activations; default f32 on the CPU, bf16 elsewhere. */
  dtype?: DType;
}

export class Qwen2VL implements Disposable {
  constructor(
    readonly config: Qwen2VLConfig,
    readonly visual: Qwen2VisionTransformer,
    readonly model: Qwen2Decoder,
    readonly backend: Backend,
    readonly dtype: DType,
    readonly generationConfig: GenerationConfig | null = null,
  ) {}

  /** Loads a Hugging Face checkpoint directory (config.json, safetensors single or sharded). */
  static async load(dir: string, opts: Qwen2VLLoadOptions = {}): Promise<Qwen2VL> {
    const backend = opts.backend ?? (await getBackend(opts.device ?? 'cpu'));
    const dtype = opts.dtype ?? (backend.name === 'cpu' ? 'f32' : 'bf16');
    const config = await readQwen2VLConfig(dir);
    const generationConfig = await readGenerationConfig(dir);
    const checkpoint = await Checkpoint.open(dir);
    try {
      const params = await loadQwen2VLParams(checkpoint, config, backend, dtype, dir);
      return Qwen2VL.fromParams(config, params, backend, dtype, generationConfig);
    } finally {
      await checkpoint.close();
    }
  }

  static fromParams(
    config: Qwen2VLConfig,
    params: ParamStore,
    backend: Backend,
    dtype: DType,
    generationConfig: GenerationConfig | null = null,
  ): Qwen2VL {
    const m = new Qwen2VL(
      config,
      Qwen2VisionTransformer.load(params, config.vision),
      Qwen2Decoder.load(params, config),
      backend,
      dtype,
      generationConfig,
    );
    const left = params.remaining();
    if (left.length) throw new ModelError(`Qwen2-VL: parameters loaded but not used: ${left.join(', ')}`);
    return m;
  }

  /** Token embeddings with the vision tokens written over their pad tokens: [n, hidden]. */
  embed(inputs: Qwen2VLInputs): Tensor {
    const ids = Int32Array.from(inputs.inputIds);
    const vocab = this.config.text.vocab_size;
    for (const id of ids)
      if (id < 0 || id >= vocab)
        throw new InputError(`token id ${id} is outside the vocabulary (0..${vocab - 1})`);
    return tidy(() => {
      const x = this.model.embed(ops.tensor(this.backend, ids, [ids.length], 'i32'));
      const kinds = [
        ['image', this.config.image_token_id, inputs.pixelValues, inputs.imageGridThw],
        ['video', this.config.video_token_id, inputs.pixelValuesVideos, inputs.videoGridThw],
      ] as const;
      for (const [kind, token, pixels, grids] of kinds) {
        const pads = ids.reduce((n, id) => n + (id === token ? 1 : 0), 0);
        const encoded = kind === 'video' ? (inputs.videoEmbeds ?? null) : null;
        if (!grids?.length || !(pixels || encoded)) {
          if (pads)
            throw new InputError(`the prompt has ${pads} ${kind} pad tokens but no ${kind} was given`);
          continue;
        }
        const feats = encoded ?? this.encodeVision(pixels!, grids);
        if (feats.shape[0] !== pads)
          throw new InputError(
            `the prompt has ${pads} ${kind} pad tokens but the ${kind}(s) give ${feats.shape[0]} tokens; expand the pads with the processor`,
          );
        let used = 0;
        for (let i = 0; i < ids.length; ) {
          if (ids[i] !== token) {
            i++;
            continue;
          }
          let j = i;
          while (j < ids.length && ids[j] === token) j++;
          ops.writeSlice(x, ops.slice(feats, 0, used, used + j - i), 0, i);
          used += j - i;
          i = j;
        }
      }
      return x;
    });
  }

  /**
   * Vision tokens [Σ t·h·w / merge², hidden] of processed pixels. Temporal groups never attend to each other,
   * so the encoder runs over chunks of whole groups (at most `maxPatchesPerChunk` patches, unless one group
   * is larger): the result is the same and memory stays bounded for long videos.
   */
  /**
   * Throws an OutOfMemoryError (with the estimate's terms) when a prompt holding a video of this patch grid
   * cannot be prefilled here: weights, the KV cache of the whole sequence, the largest activations.
   */
  assertVideoFits(grid: GridTHW): void {
    const e = estimateMemory(this.config, { grid, dtype: this.dtype });
    const frames = grid[0] * this.config.vision.temporal_patch_size;
    assertFits(this.backend, e.totalBytes, `Qwen2-VL on ${frames} frames (${e.tokens.video} video tokens)`, {
      weights: e.weightBytes,
      'KV cache': e.kvCacheBytes,
      activations: e.activationBytes,
    });
  }

  encodeVision(pixels: Float32Array, grids: readonly GridTHW[], maxPatchesPerChunk = 16384): Tensor {
    return encodeVisionChunked(this.visual, pixels, grids, this.dtype, maxPatchesPerChunk);
  }

  /** M-RoPE positions of a prompt. */
  ropeIndex(inputs: Qwen2VLInputs) {
    return getRopeIndex(
      inputs.inputIds,
      this.config,
      inputs.imageGridThw ?? [],
      inputs.videoGridThw ?? [],
      this.config.vision.spatial_merge_size,
    );
  }

  rope(positions: readonly [ArrayLike<number>, ArrayLike<number>, ArrayLike<number>]) {
    const t = this.config.text;
    return rotaryTensors(this.backend, mrope(positions, t.head_dim, t.rope_theta, t.mrope_section));
  }

  /** Logits [n, vocab] for every prompt position (one full forward pass, no cache). */
  forward(inputs: Qwen2VLInputs): Tensor {
    return tidy(() => {
      const { positions } = this.ropeIndex(inputs);
      const hidden = this.model.forward(this.embed(inputs), this.rope(positions), null);
      return this.model.logits(hidden);
    });
  }

  /** A decoding session with its own KV cache (see `generate`). */
  session(opts: { capacity?: number } = {}): Qwen2VLSession {
    return new Qwen2VLSession(this, opts.capacity);
  }

  [Symbol.dispose](): void {
    this.visual[Symbol.dispose]();
    this.model[Symbol.dispose]();
  }
}

/** Prefill once, then one token per step, reusing the KV cache. */
export class Qwen2VLSession implements CausalLM<Qwen2VLInputs>, Disposable {
  readonly cache: KVCache;
  #ropeDelta = 0;

  constructor(
    readonly vlm: Qwen2VL,
    capacity = 256,
  ) {
    const t = vlm.config.text;
    this.cache = new KVCache(vlm.backend, {
      layers: t.num_hidden_layers,
      kvHeads: t.num_key_value_heads,
      headDim: t.head_dim,
      dtype: vlm.dtype,
      capacity,
    });
  }

  /** Runs the prompt; returns the logits [1, vocab] of its last position. */
  prefill(inputs: Qwen2VLInputs): Tensor {
    if (this.cache.length)
      throw new InputError('prefill: this session already holds a prompt; start a new session');
    const n = inputs.inputIds.length;
    if (!n) throw new InputError('prefill: the prompt is empty');
    this.cache.reserve(n);
    return tidy(() => {
      const { positions, ropeDelta } = this.vlm.ropeIndex(inputs);
      this.#ropeDelta = ropeDelta;
      const m = this.vlm.model;
      return m.logits(m.forward(this.vlm.embed(inputs), this.vlm.rope(positions), this.cache, 1));
    });
  }

  /** Feeds one token; returns the next logits [1, vocab]. */
  step(token: number): Tensor {
    if (!this.cache.length) throw new InputError('step: call prefill first');
    const pos = [this.cache.length + this.#ropeDelta];
    return tidy(() => {
      const m = this.vlm.model;
      const x = this.vlm.embed({ inputIds: [token] });
      return m.logits(m.forward(x, this.vlm.rope([pos, pos, pos]), this.cache, 1));
    });
  }

  [Symbol.dispose](): void {
    this.cache[Symbol.dispose]();
  }
}
