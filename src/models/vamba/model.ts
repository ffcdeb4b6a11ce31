/**
 * Vamba (TIGER-Lab/Vamba-Qwen2-VL-7B) as published: the Qwen2-VL vision tower and merger, then the
 * two-stream decoder (layer.ts). A video is encoded once into a `VambaVideoHandle` (per-layer cross-attention
 * K/V); every question is then only text work: `session(handle)` prefills the prompt and steps tokens with a
 * KV cache, through the generic `generate` loop.
 */
import { createHash } from 'node:crypto';
import { InputError, ModelError } from '../../errors.js';
import type { CausalLM } from '../../generate/types.js';
import { Checkpoint } from '../../io/checkpoint.js';
import { type GenerationConfig, readGenerationConfig } from '../../io/generation-config.js';
import type { AttentionProbe } from '../../nn/attention-probe.js';
import type { HybridCache } from '../../nn/cache.js';
import type { ParamStore } from '../../nn/params.js';
import type { Backend } from '../../runtime/backend.js';
import { getBackend } from '../../runtime/device.js';
import type { DType } from '../../runtime/dtype.js';
import type { Tensor } from '../../runtime/tensor.js';
import type { Pieces } from '../family.js';
import { assertFits } from '../fit.js';
import { modelIdentity } from '../identity.js';
import { type Qwen2VLConfig, readQwen2VLConfig } from '../qwen2vl/config.js';
import type { Qwen2VLLoadOptions as LoadOptions } from '../qwen2vl/model.js';
import { checkpointProcessor, defaultProcessor, type Qwen2VLProcessor } from '../qwen2vl/processor.js';
import {
  encodeVisionChunked,
  encodeVisionStream,
  type GridTHW,
  type PixelBatch,
  Qwen2VisionTransformer,
} from '../qwen2vl/vision.js';
import { hasVambaTensors, isVambaConfig, vambaMixerConfig } from './config.js';
import { DEFAULT_VIDEO_CHUNK, VambaLanguageModel } from './language-model.js';
import { estimateVambaMemory } from './size.js';
import { VambaVideoHandle, type VideoKey } from './video-handle.js';
import { loadVambaParams, vambaParamCount } from './weights.js';

export interface VambaEncodeOptions {
  /** Key fields describing the video and its preprocessing (model and dtype are filled in). */
  key?: Partial<VideoKey>;
  /** Video tokens per Mamba chunk (default 4096): bounds transient memory, not the result. */
  chunkLen?: number;
  /** Patches per vision-tower call (default 16384, whole temporal groups); the result does not depend on it. */
  maxPatchesPerChunk?: number;
}

export class Vamba implements Disposable {
  constructor(
    readonly config: Qwen2VLConfig,
    readonly visual: Qwen2VisionTransformer,
    readonly lm: VambaLanguageModel,
    readonly backend: Backend,
    readonly dtype: DType,
    /** Digest of config.json and the checkpoint's tensor index: part of every video key. */
    readonly modelId: string,
    readonly generationConfig: GenerationConfig | null = null,
    /** The checkpoint's preprocessing (Qwen2-VL-7B-Instruct's when it ships none); an odd last frame is dropped. */
    readonly processor: Qwen2VLProcessor = defaultProcessor(config.vision, { oddFrames: 'drop' }),
  ) {}

  /** Loads a Vamba checkpoint directory; a plain Qwen2-VL checkpoint is refused with a pointer to Qwen2VL. */
  static async load(dir: string, opts: LoadOptions = {}): Promise<Vamba> {
    const backend = opts.backend ?? (await getBackend(opts.device ?? 'cpu'));
    const dtype = opts.dtype ?? (backend.name === 'cpu' ? 'f32' : 'bf16');
    const config = await readQwen2VLConfig(dir);
    const checkpoint = await Checkpoint.open(dir);
    try {
      const names = checkpoint.names();
      if (!isVambaConfig(config))
        throw new ModelError(
          hasVambaTensors(names)
            ? `${dir}: the tensors are Vamba's but config.json lacks the Vamba fields (vision_mamba_mixer_config.enable, use_alpha_balancing); add them as in the published config`
            : `${dir}: not a Vamba checkpoint (config.json enables neither vision_mamba_mixer_config nor use_alpha_balancing); load it as Qwen2-VL`,
        );
      const params = await loadVambaParams(checkpoint, config, backend, dtype, dir);
      const modelId = await modelIdentity(dir, checkpoint);
      const m = await Vamba.fromParams(
        config,
        params,
        backend,
        dtype,
        modelId,
        await readGenerationConfig(dir),
      );
      const processor = await checkpointProcessor(dir, config.vision, { oddFrames: 'drop' });
      return new Vamba(m.config, m.visual, m.lm, backend, dtype, modelId, m.generationConfig, processor);
    } finally {
      await checkpoint.close();
    }
  }

  static async fromParams(
    config: Qwen2VLConfig,
    params: ParamStore,
    backend: Backend,
    dtype: DType,
    modelId: string,
    generationConfig: GenerationConfig | null = null,
  ): Promise<Vamba> {
    const mixer = config.vision_mamba_mixer_config.enable ? vambaMixerConfig(config) : null;
    const visual = Qwen2VisionTransformer.load(params, config.vision);
    const lm = await VambaLanguageModel.load(params, config, mixer);
    const left = params.remaining();
    if (left.length) throw new ModelError(`Vamba: parameters loaded but not used: ${left.join(', ')}`);
    return new Vamba(config, visual, lm, backend, dtype, modelId, generationConfig);
  }

  get paramCount(): number {
    return vambaParamCount(this.config);
  }

  /**
   * Merger output [t·h·w/4, hidden] for processed pixels (rows of C·T·P·P values in the processor's order)
   * of one video with patch grid [t, h, w], whole temporal groups at a time (see encodeVisionChunked).
   */
  embedVideo(pixels: Float32Array, grid: GridTHW, opts: { maxPatchesPerChunk?: number } = {}): Tensor {
    return encodeVisionChunked(this.visual, pixels, [grid], this.dtype, opts.maxPatchesPerChunk);
  }

  /**
   * Merger output of a long video whose processed pixels arrive in batches of whole temporal groups (patch
   * grid [t, h, w] for the whole video): only one batch's activations are alive at a time.
   */
  embedVideoStream(
    batches: Iterable<PixelBatch>,
    grid: GridTHW,
    opts: { maxPatchesPerChunk?: number } = {},
  ): Tensor {
    return encodeVisionStream(this.visual, batches, grid, this.dtype, opts.maxPatchesPerChunk);
  }

  /**
   * Encodes a long video streamed in batches (see embedVideoStream), then every layer's K/V chunk by chunk.
   * Memory is checked first (estimateVambaMemory): a video that cannot fit is an OutOfMemoryError before any
   * work starts.
   */
  encodeVideoStream(
    batches: Iterable<PixelBatch>,
    grid: GridTHW,
    key: VideoKey,
    opts: Omit<VambaEncodeOptions, 'key'> = {},
  ): VambaVideoHandle {
    this.assertVideoFits(grid, opts);
    const V = this.embedVideoStream(batches, grid, opts);
    const ms = this.config.vision.spatial_merge_size;
    return this.encodeVideoTokens(V, [grid[0], grid[1] / ms, grid[2] / ms], key, opts.chunkLen);
  }

  /** Throws an OutOfMemoryError (with the estimate's terms) when a video of this grid cannot be encoded here. */
  assertVideoFits(grid: GridTHW, opts: Omit<VambaEncodeOptions, 'key'> = {}): void {
    const e = estimateVambaMemory(this.config, {
      frames: grid[0] * this.config.vision.temporal_patch_size,
      grid,
      chunkLen: opts.chunkLen,
      maxPatchesPerChunk: opts.maxPatchesPerChunk,
      dtype: this.dtype,
    });
    const frames = grid[0] * this.config.vision.temporal_patch_size;
    assertFits(this.backend, e.totalBytes, `Vamba on ${frames} frames (${e.videoTokens} video tokens)`, {
      weights: e.weightBytes,
      'video K/V': e.videoKVBytes,
      [`${e.phase}-phase working set`]: e.totalBytes - e.weightBytes - e.videoKVBytes,
    });
  }

  /** Encodes a video once: vision tower, then every layer's cross-attention K/V (see VambaVideoHandle). */
  encodeVideo(pixels: Float32Array, grid: GridTHW, opts: VambaEncodeOptions = {}): VambaVideoHandle {
    const V = this.embedVideo(pixels, grid, opts);
    const ms = this.config.vision.spatial_merge_size;
    const key: VideoKey = {
      video:
        opts.key?.video ??
        createHash('sha256')
          .update(new Uint8Array(pixels.buffer, pixels.byteOffset, pixels.byteLength))
          .digest('hex'),
      sampling: 'unspecified',
      size: `${grid[1] * this.config.vision.patch_size}x${grid[2] * this.config.vision.patch_size}`,
      ...opts.key,
      frames: String(grid[0] * this.config.vision.temporal_patch_size),
      model: this.modelId,
      dtype: this.dtype,
    } as VideoKey;
    return this.encodeVideoTokens(V, [grid[0], grid[1] / ms, grid[2] / ms], key, opts.chunkLen);
  }

  /** Encodes merger output V [n, hidden] (consumed) on a merged grid [t, h, w]. */
  encodeVideoTokens(
    V: Tensor,
    grid: readonly [number, number, number],
    key: VideoKey,
    chunkLen = DEFAULT_VIDEO_CHUNK,
  ): VambaVideoHandle {
    return new VambaVideoHandle(this.lm.encodeVideo(V, grid, { chunkLen }), key, grid);
  }

  /** `encodeVideoTokens` in pieces (chunked prefill, `VambaLanguageModel.encodeVideoInPieces`): the same handle. */
  async encodeVideoTokensInPieces(
    V: Tensor,
    grid: readonly [number, number, number],
    key: VideoKey,
    opts: { chunkLen?: number; pieces: Pieces },
  ): Promise<VambaVideoHandle> {
    return new VambaVideoHandle(await this.lm.encodeVideoInPieces(V, grid, opts), key, grid);
  }

  /**
   * A question session over an encoded video: prefill(ids) then step(token), with its own KV cache; a
   * `probe` over the video's tokens records where each step's query looked.
   */
  session(video: VambaVideoHandle, opts: { capacity?: number; probe?: AttentionProbe } = {}): VambaSession {
    if (
      video.key.model !== this.modelId ||
      video.key.dtype !== this.dtype ||
      video.kvs.length !== this.lm.layers.length
    )
      throw new InputError(
        `this video was encoded by another model or dtype (${video.key.model.slice(0, 12)}…/${video.key.dtype}, this is ${this.modelId.slice(0, 12)}…/${this.dtype}); encode it again with this model`,
      );
    return new VambaSession(this, video, opts.capacity, opts.probe);
  }

  [Symbol.dispose](): void {
    this.visual[Symbol.dispose]();
    this.lm[Symbol.dispose]();
  }
}

/** Prefill once, then one token per step; the video costs nothing here (its K/V are in the handle). */
export class VambaSession implements CausalLM<ArrayLike<number>>, Disposable {
  readonly cache: HybridCache;

  constructor(
    readonly model: Vamba,
    readonly video: VambaVideoHandle,
    capacity = 256,
    readonly probe?: AttentionProbe,
  ) {
    this.cache = model.lm.newCache(capacity);
  }

  /** Runs the prompt ids; returns the logits [1, vocab] of its last position. */
  prefill(ids: ArrayLike<number>): Tensor {
    if (this.cache.length)
      throw new InputError('prefill: this session already holds a prompt; start a new session');
    if (!ids.length) throw new InputError('prefill: the prompt is empty');
    this.checkIds(ids);
    this.cache.reserve(ids.length);
    return this.model.lm.forward(ids, this.video.kvs, this.cache, { lastOnly: true, probe: this.probe });
  }

  step(token: number): Tensor {
    if (!this.cache.length) throw new InputError('step: call prefill first');
    this.checkIds([token]);
    return this.model.lm.forward([token], this.video.kvs, this.cache, { lastOnly: true, probe: this.probe });
  }

  /** Sessions of one model step together; one with a probe steps alone (the probe records each of its steps). */
  get batchKey(): Vamba | undefined {
    return this.probe ? undefined : this.model;
  }

  /** One token for each session (all of this model, prefilled; any videos) in one forward: logits [n, vocab]. */
  stepMany(sessions: readonly CausalLM<ArrayLike<number>>[], tokens: readonly number[]): Tensor {
    const all = sessions.map((s) => {
      if (!(s instanceof VambaSession) || s.model !== this.model)
        throw new TypeError('stepMany: sessions of another model');
      if (!s.cache.length) throw new InputError('step: call prefill first');
      return s;
    });
    this.checkIds(tokens);
    return this.model.lm.stepRows(
      tokens,
      all.map((s) => s.video.kvs),
      all.map((s) => s.cache),
    );
  }

  private checkIds(ids: ArrayLike<number>): void {
    const vocab = this.model.config.text.vocab_size;
    for (let i = 0; i < ids.length; i++)
      if (!Number.isInteger(ids[i]) || ids[i] < 0 || ids[i] >= vocab)
        throw new InputError(`token id ${ids[i]} is outside the vocabulary (0..${vocab - 1})`);
  }

  [Symbol.dispose](): void {
    this.cache[Symbol.dispose]();
  }
}
