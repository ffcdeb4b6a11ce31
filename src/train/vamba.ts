/**
 * Vamba as a TrainModel: the model's own modules (src/models/vamba, src/models/qwen2vl/vision.ts) built over
 * views of the trainer's weights. A training forward builds them inside the autograd recording
 * (VambaLanguageModel.build is synchronous), so what the modules derive at construction — Mamba's
 * A = −exp(A_log), the views of in_proj's parts, the patch embedding as a matrix — is recorded and the
 * gradients reach the checkpoint's tensors. α is read as a number at construction: it does not train.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ModelError } from '../errors.js';
import { parseQwen2VLConfig, type Qwen2VLConfig } from '../models/qwen2vl/config.js';
import { defaultProcessor, type Qwen2VLProcessor } from '../models/qwen2vl/processor.js';
import { Qwen2VisionTransformer } from '../models/qwen2vl/vision.js';
import { PATCH_EMBED } from '../models/qwen2vl/weights.js';
import { vambaMixerConfig } from '../models/vamba/config.js';
import { convertQwen2VLToVamba } from '../models/vamba/convert.js';
import { VambaLanguageModel } from '../models/vamba/language-model.js';
import { Vamba } from '../models/vamba/model.js';
import { vambaSpecs } from '../models/vamba/weights.js';
import { ParamStore } from '../nn/params.js';
import type { Backend } from '../runtime/backend.js';
import type { DType } from '../runtime/dtype.js';
import * as ops from '../runtime/ops.js';
import { disposeAll, tidy } from '../runtime/scope.js';
import type { Tensor } from '../runtime/tensor.js';
import { type Example, frameImages } from './data.js';
import { checkpointTensors, scratchTensors } from './init.js';
import {
  assertBatchable,
  batchVideos,
  padded,
  perExample,
  type SyncTrainForward,
  sameVideoShape,
  type TrainModel,
  teacherForced,
} from './model.js';

const ALPHA = /^model\.layers\.\d+\.alpha$/;

export class VambaTrainModel implements TrainModel {
  readonly untrainable: Map<string, string>;
  readonly processor: Qwen2VLProcessor;

  private constructor(
    readonly config: Qwen2VLConfig,
    readonly configJson: Record<string, unknown>,
    readonly weights: Map<string, Tensor>,
    /** Each layer's α (null without α balancing), read once: it never changes. */
    readonly alphas: (number | null)[],
    /** The tokenizer's <|im_end|> id (greedy answers stop there). */
    readonly imEnd: number,
  ) {
    this.processor = defaultProcessor(config.vision, { oddFrames: 'drop' });
    this.untrainable = new Map(
      [...weights.keys()]
        .filter((n) => ALPHA.test(n))
        .map((n) => [n, 'Vamba reads α as a number when it builds the layer (src/models/vamba/layer.ts)']),
    );
  }

  static async create(
    configJson: Record<string, unknown>,
    weights: Map<string, Tensor>,
    imEnd: number,
  ): Promise<VambaTrainModel> {
    const config = parseQwen2VLConfig(configJson);
    const alphas: (number | null)[] = [];
    for (let i = 0; i < config.text.num_hidden_layers; i++) {
      const a = weights.get(`model.layers.${i}.alpha`);
      alphas.push(a ? await a.item() : null);
    }
    return new VambaTrainModel(config, configJson, weights, alphas, imEnd);
  }

  /** A new model from `configJson` with PyTorch-style initial weights (seeded). */
  static async scratch(
    configJson: Record<string, unknown>,
    backend: Backend,
    dtype: DType,
    seed: number,
    imEnd: number,
  ): Promise<VambaTrainModel> {
    const config = parseQwen2VLConfig(configJson);
    const specs = vambaSpecs(config);
    return VambaTrainModel.create(configJson, scratchTensors(specs, config, seed, backend, dtype), imEnd);
  }

  /** The weights of a Vamba checkpoint directory (names in either transformers layout). */
  static async load(
    dir: string,
    configJson: Record<string, unknown>,
    backend: Backend,
    dtype: DType,
    imEnd: number,
  ): Promise<VambaTrainModel> {
    const config = parseQwen2VLConfig(configJson, join(dir, 'config.json'));
    const specs = vambaSpecs(config);
    return VambaTrainModel.create(
      configJson,
      await checkpointTensors(dir, specs, config, backend, dtype, 'config.json (Vamba)'),
      imEnd,
    );
  }

  /** Views of the weights as the modules take them (the patch embedding as a matrix); α left out. */
  #store(withAlpha: boolean): ParamStore {
    const views = new Map<string, Tensor>();
    for (const [name, w] of this.weights)
      if (withAlpha || !ALPHA.test(name))
        views.set(name, name === PATCH_EMBED ? w.reshape([w.shape[0], -1]) : w.reshape(w.shape));
    return new ParamStore(views);
  }

  forward(): SyncTrainForward {
    const config = this.config;
    const store = this.#store(false);
    const visual = Qwen2VisionTransformer.load(store, config.vision);
    const mixer = config.vision_mamba_mixer_config.enable ? vambaMixerConfig(config) : null;
    const lm = VambaLanguageModel.build(store, config, mixer, this.alphas);
    const dtype = this.weights.get(PATCH_EMBED)!.dtype;
    const ms = config.vision.spatial_merge_size;
    /** Each layer's video K/V of the examples' videos (one grid, each video encoded once), [exs.length, …]. */
    const encode = (exs: readonly Example[]) => {
      const b = batchVideos(exs);
      const { pixels: f32, grids } = this.processor.videosOn(
        visual.patch_embed.weight.backend,
        b.videos.map(frameImages),
      );
      const px = dtype === 'f32' ? f32 : ops.cast(f32, dtype);
      const V = visual.forward(px, grids);
      const [t, h, w] = grids[0];
      const kvs = lm.encodeVideo(V, [t, h / ms, w / ms], {
        chunkLen: V.shape[0] / b.videos.length,
        batch: b.videos.length,
      });
      disposeAll([f32, px]);
      try {
        return tidy(() => kvs.map((kv) => ({ k: perExample(kv.k, b), v: perExample(kv.v, b) })));
      } finally {
        disposeAll(kvs);
      }
    };
    const fwd: SyncTrainForward = {
      logits: (ex) => {
        const { ids } = teacherForced(ex);
        const kvs = encode([ex]);
        const cache = lm.newCache(ids.length);
        try {
          return lm.forward(ids, kvs, cache);
        } finally {
          // What backward needs of these the engine holds on to; the trainer's references end here.
          cache[Symbol.dispose]();
          disposeAll(kvs);
        }
      },
      canBatch: sameVideoShape,
      batchLogits: (exs) => {
        assertBatchable(fwd, exs, 'Vamba');
        const kvs = encode(exs);
        try {
          return lm.forwardBatch(padded(exs, config.pad_token_id ?? 0).ids, exs.length, kvs);
        } finally {
          disposeAll(kvs);
        }
      },
      [Symbol.dispose]: () => {
        visual[Symbol.dispose]();
        lm[Symbol.dispose]();
      },
    };
    return fwd;
  }

  async answers(examples: readonly Example[], maxNew: number): Promise<number[][]> {
    const first = this.weights.get(PATCH_EMBED)!;
    using m = await Vamba.fromParams(this.config, this.#store(true), first.backend, first.dtype, 'training');
    const out: number[][] = [];
    for (const ex of examples) {
      const { pixelValues, grids } = this.processor.processVideos([frameImages(ex)]);
      using video = m.encodeVideo(pixelValues, grids[0]);
      using session = m.session(video, { capacity: ex.prompt.length + maxNew });
      const answer: number[] = [];
      let logits = session.prefill(ex.prompt);
      for (;;) {
        const next = ops.argmax(logits);
        logits.dispose();
        const tok = await next.item();
        next.dispose();
        if (tok === this.imEnd) break;
        answer.push(tok);
        if (answer.length >= maxNew) break;
        logits = session.step(tok);
      }
      out.push(answer);
    }
    return out;
  }

  [Symbol.dispose](): void {
    for (const w of this.weights.values()) w.dispose();
  }
}

/**
 * A Vamba built from a Qwen2-VL checkpoint as Vamba's stage 1 starts: cross-attention initialised from
 * self-attention, new Mamba blocks, α = 0.5 (src/models/vamba/convert.ts), written to a temporary directory
 * and loaded from there.
 */
export async function vambaFromQwen2VL<T>(
  qwenDir: string,
  seed: number,
  load: (dir: string) => Promise<T>,
): Promise<T> {
  const tmp = await mkdtemp(join(tmpdir(), 'longshot-vamba-init-'));
  try {
    await convertQwen2VLToVamba(qwenDir, tmp, { seed });
    return await load(tmp);
  } catch (e) {
    throw e instanceof ModelError
      ? e
      : new ModelError(`${qwenDir}: cannot build a Vamba from it: ${(e as Error).message}`, { cause: e });
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
