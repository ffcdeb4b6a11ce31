/**
 * Qwen2-VL as a TrainModel (the needle baseline train_needle.py trains beside Vamba): the video's merged tokens
 * sit in the sequence as <|video_pad|> rows after <|vision_start|> (the processor's expansion), M-RoPE positions
 * from get_rope_index; the model's own modules (Qwen2VL.fromParams is synchronous) are built over views of the
 * trainer's weights inside the recording. The logits of the video rows are dropped, so row j still predicts
 * token j + 1 of the example's own prompt and answer.
 */
import { join } from 'node:path';
import { parseQwen2VLConfig, type Qwen2VLConfig } from '../models/qwen2vl/config.js';
import { Qwen2VL, type Qwen2VLInputs } from '../models/qwen2vl/model.js';
import { defaultProcessor, type Qwen2VLProcessor } from '../models/qwen2vl/processor.js';
import type { GridTHW } from '../models/qwen2vl/vision.js';
import { PATCH_EMBED, qwen2vlSpecs } from '../models/qwen2vl/weights.js';
import { ParamStore } from '../nn/params.js';
import type { Backend } from '../runtime/backend.js';
import type { DType } from '../runtime/dtype.js';
import * as ops from '../runtime/ops.js';
import { disposeAll } from '../runtime/scope.js';
import type { Tensor } from '../runtime/tensor.js';
import { type Example, frameImages } from './data.js';
import { checkpointTensors, scratchTensors } from './init.js';
import {
  assertBatchable,
  batchVideos,
  dropRows,
  padded,
  perExample,
  type SyncTrainForward,
  sameVideoShape,
  type TrainModel,
  teacherForced,
} from './model.js';

export class Qwen2VLTrainModel implements TrainModel {
  readonly untrainable = new Map<string, string>();
  readonly processor: Qwen2VLProcessor;

  private constructor(
    readonly config: Qwen2VLConfig,
    readonly configJson: Record<string, unknown>,
    readonly weights: Map<string, Tensor>,
    readonly imEnd: number,
  ) {
    this.processor = defaultProcessor(config.vision);
  }

  static create(
    configJson: Record<string, unknown>,
    weights: Map<string, Tensor>,
    imEnd: number,
  ): Qwen2VLTrainModel {
    return new Qwen2VLTrainModel(parseQwen2VLConfig(configJson), configJson, weights, imEnd);
  }

  static scratch(
    configJson: Record<string, unknown>,
    backend: Backend,
    dtype: DType,
    seed: number,
    imEnd: number,
  ): Qwen2VLTrainModel {
    const config = parseQwen2VLConfig(configJson);
    const specs = qwen2vlSpecs(config);
    return Qwen2VLTrainModel.create(configJson, scratchTensors(specs, config, seed, backend, dtype), imEnd);
  }

  static async load(
    dir: string,
    configJson: Record<string, unknown>,
    backend: Backend,
    dtype: DType,
    imEnd: number,
  ): Promise<Qwen2VLTrainModel> {
    const config = parseQwen2VLConfig(configJson, join(dir, 'config.json'));
    const specs = qwen2vlSpecs(config);
    return Qwen2VLTrainModel.create(
      configJson,
      await checkpointTensors(dir, specs, config, backend, dtype, 'config.json (Qwen2-VL)'),
      imEnd,
    );
  }

  #model(): Qwen2VL {
    const views = new Map<string, Tensor>();
    for (const [name, w] of this.weights)
      views.set(name, name === PATCH_EMBED ? w.reshape([w.shape[0], -1]) : w.reshape(w.shape));
    const first = this.weights.get(PATCH_EMBED)!;
    return Qwen2VL.fromParams(this.config, new ParamStore(views), first.backend, first.dtype);
  }

  /** Where the video's pads go in `ids`: right after <|vision_start|> (0 without one). */
  #at(ids: readonly number[]): number {
    return ids.indexOf(this.config.vision_start_token_id) + 1;
  }

  /** `ids` with `pads` video pads inserted at `at`. */
  #expanded(ids: ArrayLike<number>, at: number, pads: number): number[] {
    const a = Array.from(ids);
    return [...a.slice(0, at), ...new Array<number>(pads).fill(this.config.video_token_id), ...a.slice(at)];
  }

  /**
   * The videos' merged tokens through the tower (patches made on the model's device), their grids and the pads
   * each video takes. The caller disposes `embeds` (the model's inputs do not consume them).
   */
  #videos(m: Qwen2VL, exs: readonly Example[]): { embeds: Tensor; grids: GridTHW[]; pads: number } {
    const b = batchVideos(exs);
    const { pixels, grids } = this.processor.videosOn(m.backend, b.videos.map(frameImages));
    const px = m.dtype === 'f32' ? pixels : ops.cast(pixels, m.dtype);
    const own = m.visual.forward(px, grids);
    const embeds = perExample(own, b);
    disposeAll([pixels, px, own]);
    const [t, h, w] = grids[0];
    return {
      embeds,
      grids: Array.from(b.of, (j) => grids[j]),
      pads: (t * h * w) / this.config.vision.spatial_merge_size ** 2,
    };
  }

  /** The model's inputs for `ids` (the example's, without pads): pads inserted after <|vision_start|>. */
  #inputs(
    m: Qwen2VL,
    ex: Example,
    ids: readonly number[],
  ): { inputs: Qwen2VLInputs; at: number; pads: number } {
    const { embeds, grids, pads } = this.#videos(m, [ex]);
    const at = this.#at(ids);
    const inputIds = this.#expanded(ids, at, pads);
    return { inputs: { inputIds, videoEmbeds: embeds, videoGridThw: grids }, at, pads };
  }

  forward(): SyncTrainForward {
    const m = this.#model();
    const siteOf = (ex: Example) => this.#at(teacherForced(ex).ids);
    const fwd: SyncTrainForward = {
      logits: (ex) => {
        const { inputs, at, pads } = this.#inputs(m, ex, teacherForced(ex).ids);
        try {
          return dropRows(m.forward(inputs), 1, at, at ? pads : 0);
        } finally {
          inputs.videoEmbeds?.dispose();
        }
      },
      // Equal grids and one pad index: every example's M-RoPE positions are one function of its row, so
      // padding each at its end (after the video and text) is exact.
      canBatch: (exs) => sameVideoShape(exs) && exs.every((ex) => siteOf(ex) === siteOf(exs[0])),
      batchLogits: (exs) => {
        assertBatchable(fwd, exs, 'Qwen2-VL');
        const { ids, seq } = padded(exs, this.config.pad_token_id ?? 0);
        const { embeds, grids, pads } = this.#videos(m, exs);
        const at = siteOf(exs[0]);
        const inputIds = exs.flatMap((_, i) =>
          this.#expanded(ids.subarray(i * seq, (i + 1) * seq), at, pads),
        );
        try {
          const all = m.forward({ inputIds, videoEmbeds: embeds, videoGridThw: grids }, exs.length);
          return dropRows(all, exs.length, at, at ? pads : 0);
        } finally {
          embeds.dispose();
        }
      },
      [Symbol.dispose]: () => m[Symbol.dispose](),
    };
    return fwd;
  }

  async answers(examples: readonly Example[], maxNew: number): Promise<number[][]> {
    using m = this.#model();
    const out: number[][] = [];
    for (const ex of examples) {
      const { inputs } = this.#inputs(m, ex, ex.prompt);
      using session = m.session({ capacity: inputs.inputIds.length + maxNew });
      const answer: number[] = [];
      let logits: Tensor;
      try {
        logits = session.prefill(inputs);
      } finally {
        inputs.videoEmbeds?.dispose();
      }
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
