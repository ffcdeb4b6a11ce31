/**
 * Qwen2VLForConditionalGeneration: vision encoder + Qwen2 decoder. Image/video pad tokens in the prompt are
 * replaced by the merged vision tokens (in order), positions come from M-RoPE (`getRopeIndex`), and decoding
 * continues at position n + ropeDelta.
 *
 * Prefix reuse: everything before a question (system prompt + video) can be prefilled once into a cache
 * snapshot (`prefillPrefix`); a session started from it runs only the question's tokens, at positions that
 * continue after the video exactly as in one prefill of the whole prompt (text after the last vision span
 * sits at n + ropeDelta, the prefix's ropeDelta).
 */
import { InputError, ModelError } from '../../errors.js';
import type { CausalLM } from '../../generate/types.js';
import { Checkpoint } from '../../io/checkpoint.js';
import { type GenerationConfig, readGenerationConfig } from '../../io/generation-config.js';
import type { AttentionProbe } from '../../nn/attention-probe.js';
import { attentionLayers, type CacheSnapshot, HybridCache } from '../../nn/cache.js';
import type { ParamStore } from '../../nn/params.js';
import { mrope, rotaryTensors } from '../../nn/rotary.js';
import type { Backend, DeviceName } from '../../runtime/backend.js';
import { getBackend } from '../../runtime/device.js';
import type { DType } from '../../runtime/dtype.js';
import * as ops from '../../runtime/ops.js';
import { tidy } from '../../runtime/scope.js';
import type { Tensor } from '../../runtime/tensor.js';
import type { Pieces } from '../family.js';
import { assertFits } from '../fit.js';
import { runAtOnce, runInPieces } from '../pieces.js';
import { type Qwen2VLConfig, readQwen2VLConfig, visualInputProblem } from './config.js';
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
  /**
   * A reduced video (models/reduction.ts): for each row of `videoEmbeds`, the merged token of the grid it stands
   * for (its position); the prompt then holds that many pads.
   */
  videoRows?: readonly number[] | null;
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
    this.#assertTakesInputs(inputs);
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
   * Throws a ModelError naming the config key when this model cannot take an image or a video (see
   * `visualInputProblem`); its text prompts still run, as in transformers.
   */
  assertTakes(kind: 'image' | 'video'): void {
    const problem = visualInputProblem(this.config, kind);
    if (problem)
      throw new ModelError(
        `this Qwen2-VL checkpoint cannot take ${kind === 'image' ? 'an image' : 'a video'}: ${problem}`,
      );
  }

  /** Before positions and embeddings, so that a placeholder id outside the vocabulary is blamed on the config. */
  #assertTakesInputs(inputs: Qwen2VLInputs): void {
    if (inputs.pixelValues) this.assertTakes('image');
    if (inputs.pixelValuesVideos || inputs.videoEmbeds) this.assertTakes('video');
  }

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

  /**
   * Vision tokens [Σ t·h·w / merge², hidden] of processed pixels. Temporal groups never attend to each other,
   * so the encoder runs over chunks of whole groups (at most `maxPatchesPerChunk` patches, unless one group
   * is larger): the result is the same and memory stays bounded for long videos.
   */
  encodeVision(pixels: Float32Array, grids: readonly GridTHW[], maxPatchesPerChunk = 16384): Tensor {
    return encodeVisionChunked(this.visual, pixels, grids, this.dtype, maxPatchesPerChunk);
  }

  /** M-RoPE positions of a prompt. */
  ropeIndex(inputs: Qwen2VLInputs) {
    this.#assertTakesInputs(inputs);
    return getRopeIndex(
      inputs.inputIds,
      this.config,
      inputs.imageGridThw ?? [],
      inputs.videoGridThw ?? [],
      this.config.vision.spatial_merge_size,
      inputs.videoRows ?? null,
    );
  }

  rope(positions: readonly [ArrayLike<number>, ArrayLike<number>, ArrayLike<number>]) {
    const t = this.config.text;
    return rotaryTensors(this.backend, mrope(positions, t.head_dim, t.rope_theta, t.mrope_section));
  }

  /**
   * Logits [n, vocab] for every prompt position (one full forward pass, no cache). With `batch` > 1, the
   * inputs hold that many prompts of one length one after another, each with one video (the videos in
   * order), each attending to itself only, at the first one's M-RoPE positions: the caller lays them out so
   * that these are every prompt's (training's right-padded examples, video at one index with one grid).
   */
  forward(inputs: Qwen2VLInputs, batch = 1): Tensor {
    const seq = inputs.inputIds.length / batch;
    const grids = inputs.videoGridThw ?? [];
    if (
      batch > 1 &&
      (!Number.isInteger(seq) || grids.length !== batch || inputs.pixelValues || inputs.videoRows)
    )
      throw new InputError(
        `Qwen2-VL: a batch of ${batch} prompts needs ${batch} prompts of one length, one video each and no image; got ${inputs.inputIds.length} ids and ${grids.length} videos`,
      );
    const first =
      batch > 1
        ? { inputIds: Array.from(inputs.inputIds).slice(0, seq), videoGridThw: grids.slice(0, 1) }
        : inputs;
    return tidy(() => {
      const { positions } = this.ropeIndex(first);
      const hidden = this.model.forward(
        this.embed(inputs),
        this.rope(positions),
        null,
        null,
        undefined,
        batch,
      );
      return this.model.logits(hidden);
    });
  }

  /**
   * A decoding session with its own KV cache (see `generate`), continuing from `prefix` when given; a `probe`
   * records where each step's last query looked.
   */
  session(
    opts: { capacity?: number; prefix?: Qwen2VLPrefix | null; probe?: AttentionProbe } = {},
  ): Qwen2VLSession {
    return new Qwen2VLSession(this, opts.capacity, opts.prefix ?? null, opts.probe);
  }

  /** An empty cache with room for `capacity` tokens. */
  newCache(capacity: number): HybridCache {
    const t = this.config.text;
    return new HybridCache(this.backend, {
      layers: attentionLayers(t.num_hidden_layers, t.num_key_value_heads, t.head_dim),
      dtype: this.dtype,
      capacity,
    });
  }

  /**
   * Prefills a prompt prefix (e.g. the chat template up to the end of the video) once, for any number of
   * sessions to continue from. `room` tokens after it are reserved for the continuations, which write
   * there in turn without copying the prefix (a longer or a concurrent one copies it).
   */
  prefillPrefix(inputs: Qwen2VLInputs, opts: { room?: number } = {}): Qwen2VLPrefix {
    return runAtOnce(this.#prefillPieces(inputs, opts.room, Number.POSITIVE_INFINITY));
  }

  /**
   * `prefillPrefix` in pieces of `pieces.tokens` tokens (chunked prefill), awaiting `pieces.pause()` between
   * two: each piece attends to the cache of those before it, so the prefix equals the one prefilled at once.
   */
  prefillPrefixInPieces(
    inputs: Qwen2VLInputs,
    opts: { room?: number; pieces: Pieces },
  ): Promise<Qwen2VLPrefix> {
    return runInPieces(this.#prefillPieces(inputs, opts.room, opts.pieces.tokens), opts.pieces.pause);
  }

  /** The prefill of a prefix, yielding between pieces of at most `tokens` tokens. */
  *#prefillPieces(inputs: Qwen2VLInputs, room = 1024, tokens: number): Generator<void, Qwen2VLPrefix> {
    const n = inputs.inputIds.length;
    if (!n) throw new InputError('prefillPrefix: the prefix is empty');
    if (!(tokens >= 1)) throw new InputError(`prefill pieces need at least 1 token (got ${tokens})`);
    using cache = this.newCache(n + room);
    const { positions, ropeDelta } = this.ropeIndex(inputs);
    using x = tidy(() => this.embed(inputs));
    for (let a = 0; a < n; a += tokens) {
      if (a) yield;
      const b = Math.min(n, a + tokens);
      tidy(() => {
        const rows = a === 0 && b === n ? x : x.narrow(a, b);
        const at = positions.map((p) => p.subarray(a, b)) as [Int32Array, Int32Array, Int32Array];
        this.model.forward(rows, this.rope(at), cache, 1);
      });
    }
    return new Qwen2VLPrefix(Int32Array.from(inputs.inputIds), ropeDelta, cache.snapshot());
  }

  [Symbol.dispose](): void {
    this.visual[Symbol.dispose]();
    this.model[Symbol.dispose]();
  }
}

/** A prefilled prompt prefix: its ids, its M-RoPE delta and the cache snapshot after it. */
export class Qwen2VLPrefix implements Disposable {
  constructor(
    readonly ids: Int32Array,
    readonly ropeDelta: number,
    readonly snapshot: CacheSnapshot,
  ) {}

  get length(): number {
    return this.ids.length;
  }

  /** Bytes held by the snapshot (every layer's K/V of the prefix and the room after it). */
  get bytes(): number {
    return this.snapshot.bytes;
  }

  /** Whether a prompt is this prefix followed by at least one more token. */
  continues(ids: ArrayLike<number>): boolean {
    if (ids.length <= this.ids.length) return false;
    for (let i = 0; i < this.ids.length; i++) if (ids[i] !== this.ids[i]) return false;
    return true;
  }

  [Symbol.dispose](): void {
    this.snapshot[Symbol.dispose]();
  }
}

/** Prefill once (from a prefix when given), then one token per step, reusing the KV cache. */
export class Qwen2VLSession implements CausalLM<Qwen2VLInputs>, Disposable {
  readonly cache: HybridCache;
  #ropeDelta = 0;
  #started = false;

  constructor(
    readonly vlm: Qwen2VL,
    capacity = 256,
    readonly prefix: Qwen2VLPrefix | null = null,
    readonly probe?: AttentionProbe,
  ) {
    this.cache = prefix
      ? prefix.snapshot.resume(Math.max(0, capacity - prefix.length))
      : vlm.newCache(capacity);
  }

  /**
   * Runs the prompt; returns the logits [1, vocab] of its last position. With a prefix, the prompt must
   * start with the prefix's ids and only the rest runs; it may hold no further image or video.
   */
  prefill(inputs: Qwen2VLInputs): Tensor {
    if (this.#started)
      throw new InputError('prefill: this session already holds a prompt; start a new session');
    const n = inputs.inputIds.length;
    if (!n) throw new InputError('prefill: the prompt is empty');
    if (this.prefix) return this.#continue(inputs.inputIds, this.prefix);
    this.#started = true;
    this.cache.reserve(n);
    return tidy(() => {
      const { positions, ropeDelta } = this.vlm.ropeIndex(inputs);
      this.#ropeDelta = ropeDelta;
      const m = this.vlm.model;
      return m.logits(m.forward(this.vlm.embed(inputs), this.vlm.rope(positions), this.cache, 1, this.probe));
    });
  }

  /** The prompt's tokens after the prefix, at positions continuing the prefix's. */
  #continue(ids: ArrayLike<number>, prefix: Qwen2VLPrefix): Tensor {
    if (!prefix.continues(ids))
      throw new InputError(
        'prefill: the prompt does not continue the prefilled prefix; start a session without it',
      );
    const rest = Array.from(ids).slice(prefix.length);
    const { image_token_id: image, video_token_id: video } = this.vlm.config;
    if (rest.some((id) => id === image || id === video))
      throw new InputError('prefill: after a prefilled prefix the prompt may hold only text');
    this.#started = true;
    this.#ropeDelta = prefix.ropeDelta;
    this.cache.reserve(rest.length);
    const pos = rest.map((_, j) => prefix.length + j + prefix.ropeDelta);
    return tidy(() => {
      const m = this.vlm.model;
      const x = this.vlm.embed({ inputIds: rest });
      return m.logits(m.forward(x, this.vlm.rope([pos, pos, pos]), this.cache, 1, this.probe));
    });
  }

  /** Sessions of one model step together; one with a probe steps alone (the probe records each of its steps). */
  get batchKey(): Qwen2VL | undefined {
    return this.probe ? undefined : this.vlm;
  }

  /** One token for each session (all of this model, prefilled) in one forward: logits [n, vocab]. */
  stepMany(sessions: readonly CausalLM<Qwen2VLInputs>[], tokens: readonly number[]): Tensor {
    const all = sessions.map((s) => {
      if (!(s instanceof Qwen2VLSession) || s.vlm !== this.vlm)
        throw new TypeError('stepMany: sessions of another model');
      if (!s.#started) throw new InputError('step: call prefill first');
      return s;
    });
    const pos = all.map((s) => s.cache.length + s.#ropeDelta);
    return tidy(() => {
      const m = this.vlm.model;
      const x = this.vlm.embed({ inputIds: tokens });
      return m.logits(
        m.forward(
          x,
          this.vlm.rope([pos, pos, pos]),
          all.map((s) => s.cache),
        ),
      );
    });
  }

  /** Feeds one token; returns the next logits [1, vocab]. */
  step(token: number): Tensor {
    if (!this.#started) throw new InputError('step: call prefill first');
    const pos = [this.cache.length + this.#ropeDelta];
    return tidy(() => {
      const m = this.vlm.model;
      const x = this.vlm.embed({ inputIds: [token] });
      return m.logits(m.forward(x, this.vlm.rope([pos, pos, pos]), this.cache, 1, this.probe));
    });
  }

  [Symbol.dispose](): void {
    this.cache[Symbol.dispose]();
  }
}
