/**
 * TSTAR (Two-Stage Token Aggregation and Reduction, the MambaMia paper): frames → the vision tower's tokens per
 * frame group (Qwen2-VL's merged tokens per 2 frames, or SigLIP's patches per frame) → the MambaMia compressor
 * over the whole clip → its tokens written over the prompt's run of `video_token_id` → the LLM.
 */
import { InputError, ModelError } from '../../errors.js';
import type { CausalLM } from '../../generate/types.js';
import { Checkpoint } from '../../io/checkpoint.js';
import { type GenerationConfig, readGenerationConfig } from '../../io/generation-config.js';
import { readJsonFile } from '../../io/json-fields.js';
import type { HybridCache } from '../../nn/cache.js';
import { loadCheckedParams, type ParamSpec, type ParamStore } from '../../nn/params.js';
import type { Backend } from '../../runtime/backend.js';
import type { DType } from '../../runtime/dtype.js';
import * as ops from '../../runtime/ops.js';
import { tidy } from '../../runtime/scope.js';
import type { Tensor } from '../../runtime/tensor.js';
import { MambaMiaCompressor } from '../mambamia/compressor.js';
import { isEmptyEmbeddings } from '../mambamia/weights.js';
import { nemotronHSpecs } from '../nemotron_h/weights.js';
import { encodeVisionChunked, type GridTHW, Qwen2VisionTransformer } from '../qwen2vl/vision.js';
import { canonicalName, PATCH_EMBED, textSpecs } from '../qwen2vl/weights.js';
import { SiglipVision } from '../siglip/model.js';
import { parseTstarConfig, type TstarConfig } from './config.js';
import { loadLanguageModel, type TstarLanguageModel } from './language-model.js';
import { loadTower, type TstarTower, towerSpecs, towerUnused } from './vision.js';

/** Where the compressor's parameters live in a TSTAR checkpoint (LLaVA's projector name). */
export const PROJECTOR = 'mm_projector.';

/** Every parameter of a TSTAR model, by the names its checkpoint stores. */
export function tstarSpecs(c: TstarConfig): ParamSpec[] {
  return [
    ...towerSpecs(c.vision),
    ...MambaMiaCompressor.specs(PROJECTOR, c.projector),
    ...(c.text.kind === 'qwen2' ? textSpecs(c.text.config) : nemotronHSpecs(c.text.config)),
  ];
}

/**
 * How a TSTAR checkpoint's names map to tstarSpecs: transformers' either layout of Qwen2 names, and the tensors
 * not read (the compressor's empty embeddings, a tied lm_head, a SigLIP tower's unused tail).
 */
export function tstarLoadOptions(config: TstarConfig) {
  const tied = config.text.kind === 'qwen2' && config.text.config.text.tie_word_embeddings;
  return {
    what: 'config.json (TSTAR)',
    rename: canonicalName,
    skip: (n: string) =>
      isEmptyEmbeddings(PROJECTOR)(n) || (tied && n === 'lm_head.weight') || towerUnused(config.vision, n),
  };
}

/** A prompt: its ids (one run of video_token_id where the video goes) and the compressed video, if any. */
export interface TstarInputs {
  ids: ArrayLike<number>;
  video: Tensor | null;
}

export class Tstar implements Disposable {
  constructor(
    readonly config: TstarConfig,
    readonly visual: TstarTower,
    readonly projector: MambaMiaCompressor,
    readonly lm: TstarLanguageModel,
    readonly backend: Backend,
    readonly dtype: DType,
    readonly generationConfig: GenerationConfig | null = null,
  ) {}

  static async load(dir: string, backend: Backend, dtype: DType): Promise<Tstar> {
    const config = parseTstarConfig(await readJsonFile(`${dir}/config.json`), `${dir}/config.json`);
    const generationConfig = await readGenerationConfig(dir);
    const checkpoint = await Checkpoint.open(dir);
    try {
      const params = await loadCheckedParams(checkpoint, tstarSpecs(config), {
        backend,
        dtype,
        where: dir,
        ...tstarLoadOptions(config),
        // The Conv3d patch embedding is used as a Linear over its flattened kernel.
        adapt: (s, t) => {
          if (s.name !== PATCH_EMBED || config.vision.kind !== 'qwen2_vl') return t;
          const flat = t.reshape([s.shape[0], t.size / s.shape[0]]);
          t.dispose();
          return flat;
        },
      });
      return Tstar.fromParams(config, params, backend, dtype, generationConfig);
    } finally {
      await checkpoint.close();
    }
  }

  static fromParams(
    config: TstarConfig,
    p: ParamStore,
    backend: Backend,
    dtype: DType,
    generationConfig: GenerationConfig | null = null,
  ): Tstar {
    const m = new Tstar(
      config,
      loadTower(p, config.vision),
      MambaMiaCompressor.load(p, PROJECTOR, config.projector),
      loadLanguageModel(p, config.text),
      backend,
      dtype,
      generationConfig,
    );
    const left = p.remaining();
    if (left.length) throw new ModelError(`TSTAR: parameters loaded but not used: ${left.join(', ')}`);
    return m;
  }

  /** Qwen2-VL's tower: merged vision tokens [groups·h·w / merge², hidden] of processed pixels (whole groups). */
  encodeVision(pixels: Float32Array, grid: GridTHW): Tensor {
    if (!(this.visual instanceof Qwen2VisionTransformer))
      throw new InputError('TSTAR: this checkpoint’s tower is SigLIP; encode frames with encodeFrames');
    return encodeVisionChunked(this.visual, pixels, [grid], this.dtype);
  }

  /** SigLIP's tower: pixels [frames, 3, size, size] (siglip/preprocess.ts) → tokens [frames, patches, width]. */
  encodeFrames(pixels: Tensor): Tensor {
    if (!(this.visual instanceof SiglipVision))
      throw new InputError('TSTAR: this checkpoint’s tower is Qwen2-VL’s; encode pixels with encodeVision');
    return this.visual.forward(pixels);
  }

  /**
   * A clip's merged vision tokens and grid (Qwen2-VL's tower) → the compressed tokens [n, LLM width]; or those of
   * `videos` clips of this one grid one after another → [videos·n, LLM width].
   */
  compress(visionTokens: Tensor, grid: GridTHW, videos = 1): Tensor {
    if (this.config.vision.kind !== 'qwen2_vl') throw new InputError('TSTAR: compress takes Qwen2-VL tokens');
    const perGroup = (grid[1] * grid[2]) / this.config.vision.config.spatial_merge_size ** 2;
    // The view holds the tokens' memory: let go of it, or the caller's dispose would not free them.
    using groups = visionTokens.reshape([videos * grid[0], perGroup, visionTokens.shape[1]]);
    return this.compressGroups(groups, videos);
  }

  /**
   * Tokens [groups, perGroup, width] of the whole clip → the compressed tokens [n, LLM width] the LLM reads (of
   * `videos` clips of one length one after another: [videos·n, LLM width], each compressed on its own).
   */
  compressGroups(tokens: Tensor, videos = 1): Tensor {
    return this.projector.forward(tokens, videos);
  }

  /** Prompt embeddings with the video's tokens written over the run of video_token_id. */
  embed(inputs: TstarInputs): Tensor {
    const pad = this.config.video_token_id;
    const ids = Array.from(inputs.ids);
    const at = ids.indexOf(pad);
    const count = ids.reduce((n, id) => n + (id === pad ? 1 : 0), 0);
    const rows = inputs.video?.shape[0] ?? 0;
    if (count !== rows || (count && ids.lastIndexOf(pad) !== at + count - 1))
      throw new InputError(
        `the prompt has ${count} video placeholder tokens but the video gives ${rows} tokens in one run; expand the placeholder to the video's token count`,
      );
    return tidy(() => {
      const x = this.lm.embed(ids);
      if (inputs.video) ops.writeSlice(x, inputs.video, 0, at);
      return x;
    });
  }

  /** A decoding session with its own cache of `capacity` tokens (it grows on demand). */
  session(capacity: number): TstarSession {
    return new TstarSession(this, this.lm.newCache(capacity));
  }

  [Symbol.dispose](): void {
    this.visual[Symbol.dispose]();
    this.projector[Symbol.dispose]();
    this.lm[Symbol.dispose]();
  }
}

export class TstarSession implements CausalLM<TstarInputs>, Disposable {
  constructor(
    readonly model: Tstar,
    readonly cache: HybridCache,
  ) {}

  prefill(inputs: TstarInputs): Tensor {
    if (!inputs.ids.length) throw new InputError('prefill: the prompt is empty');
    if (this.cache.length)
      throw new InputError('prefill: this session already holds a prompt; start a new one');
    return tidy(() => this.model.lm.next(this.model.embed(inputs), this.cache));
  }

  step(token: number): Tensor {
    if (!this.cache.length) throw new InputError('step: call prefill first');
    return tidy(() => this.model.lm.next(this.model.lm.embed([token]), this.cache));
  }

  [Symbol.dispose](): void {
    this.cache[Symbol.dispose]();
  }
}
