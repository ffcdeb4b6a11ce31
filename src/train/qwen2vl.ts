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
import { defaultProcessor, type Qwen2VLProcessor, type RgbImage } from '../models/qwen2vl/processor.js';
import type { GridTHW } from '../models/qwen2vl/vision.js';
import { PATCH_EMBED, qwen2vlSpecs } from '../models/qwen2vl/weights.js';
import { ParamStore } from '../nn/params.js';
import type { Backend } from '../runtime/backend.js';
import type { DType } from '../runtime/dtype.js';
import * as ops from '../runtime/ops.js';
import { tidy } from '../runtime/scope.js';
import type { Tensor } from '../runtime/tensor.js';
import type { Example } from './data.js';
import { checkpointTensors, scratchTensors } from './init.js';
import { type SyncTrainForward, type TrainModel, teacherForced } from './model.js';

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

  /** The model's inputs for `ids` (the example's, without pads): pads inserted after <|vision_start|>. */
  #inputs(ex: Example, ids: readonly number[]): { inputs: Qwen2VLInputs; at: number; pads: number } {
    const frames: RgbImage[] = [];
    const n = ex.width * ex.height * 3;
    for (let t = 0; t < ex.count; t++)
      frames.push({ width: ex.width, height: ex.height, data: ex.frames.subarray(t * n, (t + 1) * n) });
    const b = this.processor.processVideos([frames]);
    const grid: GridTHW = b.grids[0];
    const pads = (grid[0] * grid[1] * grid[2]) / this.config.vision.spatial_merge_size ** 2;
    const at = ids.indexOf(this.config.vision_start_token_id) + 1;
    const inputIds = [
      ...ids.slice(0, at),
      ...new Array(pads).fill(this.config.video_token_id),
      ...ids.slice(at),
    ];
    return { inputs: { inputIds, pixelValuesVideos: b.pixelValues, videoGridThw: [grid] }, at, pads };
  }

  forward(): SyncTrainForward {
    const m = this.#model();
    return {
      logits: (ex) => {
        const { inputs, at, pads } = this.#inputs(ex, teacherForced(ex).ids);
        const all = m.forward(inputs);
        if (!at) return all;
        const out = tidy(() =>
          ops.concat([ops.slice(all, 0, 0, at), ops.slice(all, 0, at + pads, all.shape[0])], 0),
        );
        all.dispose();
        return out;
      },
      [Symbol.dispose]: () => m[Symbol.dispose](),
    };
  }

  async answers(examples: readonly Example[], maxNew: number): Promise<number[][]> {
    using m = this.#model();
    const out: number[][] = [];
    for (const ex of examples) {
      const { inputs } = this.#inputs(ex, ex.prompt);
      using session = m.session({ capacity: inputs.inputIds.length + maxNew });
      const answer: number[] = [];
      let logits = session.prefill(inputs);
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
