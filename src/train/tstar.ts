/**
 * TSTAR-MambaMia as a TrainModel (recipe family `mambamia`): the TSTAR family's own model (src/models/tstar:
 * vision tower → MambaMia compressor → LLM; Tstar.fromParams is synchronous) built over views of the trainer's
 * weights inside the recording. The compressed video tokens go into the sequence where the prompt's video
 * placeholder is — its one `video_token_id`, or right after `<|vision_start|>` for prompts that only mark the
 * video (the needle and Vamba prompts, as needle_mambamia.py's expand_video_pads) — and their logits are dropped,
 * so row j still predicts token j + 1 of the example's own prompt and answer.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError, ModelError } from '../errors.js';
import { fileExists, isObject, readJsonFile } from '../io/json-fields.js';
import { parseQwen2VLConfig } from '../models/qwen2vl/config.js';
import { defaultProcessor, type Qwen2VLProcessor } from '../models/qwen2vl/processor.js';
import type { Qwen2VisionTransformer } from '../models/qwen2vl/vision.js';
import { PATCH_EMBED, qwen2vlSpecs } from '../models/qwen2vl/weights.js';
import { siglipPixelsOn } from '../models/siglip/preprocess.js';
import { parseTstarConfig, type TstarConfig } from '../models/tstar/config.js';
import { PROJECTOR, Tstar, tstarLoadOptions, tstarSpecs } from '../models/tstar/model.js';
import { ParamStore } from '../nn/params.js';
import type { Backend } from '../runtime/backend.js';
import type { DType } from '../runtime/dtype.js';
import * as ops from '../runtime/ops.js';
import { tidy } from '../runtime/scope.js';
import type { Tensor } from '../runtime/tensor.js';
import type { Random } from '../util/random.js';
import { type Example, frameImages } from './data.js';
import {
  checkpointTensors,
  loadTensors,
  normal,
  pytorchInit,
  type SpecialInit,
  tensorsOf,
  uniform,
} from './init.js';
import {
  assertBatchable,
  batchVideos,
  dropRows,
  greedyAnswer,
  perExample,
  type SyncTrainForward,
  sameVideoShape,
  type TrainModel,
  teacherForced,
} from './model.js';
import { remapRows, rowSources, TOKEN_ROWS, vocabularyOf } from './vocab.js';

export class TstarTrainModel implements TrainModel {
  readonly untrainable = new Map<string, string>();
  /** Qwen2-VL's processor (null for a SigLIP tower, which squashes frames to its square input). */
  readonly processor: Qwen2VLProcessor | null;

  private constructor(
    readonly config: TstarConfig,
    readonly configJson: Record<string, unknown>,
    readonly weights: Map<string, Tensor>,
    /** The tokenizer's <|im_end|> id (greedy answers stop there). */
    readonly imEnd: number,
  ) {
    const v = config.vision;
    this.processor = v.kind === 'qwen2_vl' ? defaultProcessor(v.config) : null;
  }

  static create(
    configJson: Record<string, unknown>,
    weights: Map<string, Tensor>,
    imEnd: number,
  ): TstarTrainModel {
    return new TstarTrainModel(parseTstarConfig(configJson), configJson, weights, imEnd);
  }

  /**
   * A new model from `configJson` with the initial weights of needle_mambamia.py's modules (seeded); a top-level
   * `vocab_size` (the tokenizer's, from setup) goes into text_config.
   */
  static scratch(
    configJson: Record<string, unknown>,
    backend: Backend,
    dtype: DType,
    seed: number,
    imEnd: number,
  ): TstarTrainModel {
    const { json, config, specs, values } = seeded(configJson, seed);
    return new TstarTrainModel(config, json, tensorsOf(specs, values, backend, dtype), imEnd);
  }

  /**
   * `scratch`'s model with its vision tower and LLM then taken from the Qwen2-VL checkpoint `qwen.dir`, as the
   * MambaMia paper starts TSTAR from a trained tower and LLM: only the compressor keeps its seeded init. The token
   * rows move from the checkpoint's tokenizer to the run's (`qwen.tokenizerJson`, src/train/vocab.ts).
   */
  static async fromQwen2VL(
    configJson: Record<string, unknown>,
    backend: Backend,
    dtype: DType,
    seed: number,
    imEnd: number,
    qwen: { dir: string; tokenizerJson: string; note?: (line: string) => void },
  ): Promise<TstarTrainModel> {
    const { json, config, specs, values } = seeded(configJson, seed);
    const got = await qwen2vlValues(qwen.dir, config, qwen.tokenizerJson, backend);
    for (const [name, v] of got.values) values.set(name, v);
    qwen.note?.(
      `${qwen.dir}: vision tower and LLM loaded (${got.kept} of ${config.vocab_size} tokens kept trained rows); the compressor starts fresh`,
    );
    return new TstarTrainModel(config, json, tensorsOf(specs, values, backend, dtype), imEnd);
  }

  /** The weights of a TSTAR checkpoint directory, as the family's loader reads them (names, skips). */
  static async load(
    dir: string,
    configJson: Record<string, unknown>,
    backend: Backend,
    dtype: DType,
    imEnd: number,
  ): Promise<TstarTrainModel> {
    const config = parseTstarConfig(configJson, join(dir, 'config.json'));
    const specs = tstarSpecs(config);
    return new TstarTrainModel(
      config,
      configJson,
      await loadTensors(dir, specs, backend, dtype, tstarLoadOptions(config)),
      imEnd,
    );
  }

  /** The model over views of the weights (the Qwen2-VL patch embedding as a matrix, as Tstar.load adapts it). */
  #model(): Tstar {
    const views = new Map<string, Tensor>();
    const flat = this.config.vision.kind === 'qwen2_vl';
    for (const [name, w] of this.weights)
      views.set(name, flat && name === PATCH_EMBED ? w.reshape([w.shape[0], -1]) : w.reshape(w.shape));
    const first = this.weights.values().next().value!;
    return Tstar.fromParams(this.config, new ParamStore(views), first.backend, first.dtype);
  }

  /**
   * The examples' frames (one shape) through the tower and the compressor, all in one pass (each video once) →
   * the compressed tokens [exs.length · n, LLM width], each example's video's n after the previous one's.
   */
  #videos(m: Tstar, exs: readonly Example[]): Tensor {
    const b = batchVideos(exs);
    const clips = b.videos.map(frameImages);
    return tidy(() => {
      const v = this.config.vision;
      const asModel = (t: Tensor) => (m.dtype === 'f32' ? t : ops.cast(t, m.dtype));
      if (v.kind === 'siglip') {
        const size = v.config.image_size;
        const frames = clips.flat();
        const px = siglipPixelsOn(m.backend, frames, size);
        return perExample(m.compressGroups(m.encodeFrames(asModel(px)), clips.length), b);
      }
      const { pixels, grids } = this.processor!.videosOn(m.backend, clips);
      const visual = m.visual as Qwen2VisionTransformer;
      return perExample(m.compress(visual.forward(asModel(pixels), grids), grids[0], clips.length), b);
    });
  }

  /**
   * Where the video goes in `ids`: at its one placeholder (`at`, which `rest` − `at` = 1 token takes), or right
   * after <|vision_start|> (`rest` = `at`).
   */
  #site(ids: readonly number[]): { at: number; rest: number } {
    const at = ids.indexOf(this.config.video_token_id);
    if (at >= 0) return { at, rest: at + 1 };
    const start = this.config.vision_start_token_id;
    const after = start === null ? 0 : ids.indexOf(start) + 1;
    if (!after)
      throw new InputError(
        `TSTAR training: the prompt has neither the video placeholder (token ${this.config.video_token_id}) nor <|vision_start|> (text_config.vision_start_token_id) to put the video after`,
      );
    return { at: after, rest: after };
  }

  /**
   * `ids` with `count` video placeholders where the video goes, where they start, and how many rows of the
   * logits to drop there so that row j again predicts ids[j + 1]: all `count` after <|vision_start|>, all but the
   * last (the placeholder's own row, which predicts the token after the video) at a placeholder.
   */
  #placed(ids: readonly number[], count: number): { ids: number[]; at: number; drop: number } {
    const { at, rest } = this.#site(ids);
    return {
      ids: [
        ...ids.slice(0, at),
        ...new Array<number>(count).fill(this.config.video_token_id),
        ...ids.slice(rest),
      ],
      at,
      drop: count - (rest - at),
    };
  }

  forward(): SyncTrainForward {
    const m = this.#model();
    const siteOf = (ex: Example) => this.#site(teacherForced(ex).ids);
    const fwd: SyncTrainForward = {
      logits: (ex) =>
        tidy(() => {
          const video = this.#videos(m, [ex]);
          const { ids, at, drop } = this.#placed(teacherForced(ex).ids, video.shape[0]);
          return dropRows(m.lm.sequence(m.embed({ ids, video })), 1, at, drop);
        }),
      // One video shape and one site: the video tokens sit at one index of every sequence, whose positions
      // all start at 0, so padding each at its end is exact.
      canBatch: (exs) => {
        const first = siteOf(exs[0]);
        return (
          sameVideoShape(exs) &&
          exs.every((ex) => {
            const s = siteOf(ex);
            return s.at === first.at && s.rest === first.rest;
          })
        );
      },
      batchLogits: (exs) => {
        assertBatchable(fwd, exs, 'TSTAR');
        return tidy(() => {
          const video = this.#videos(m, exs);
          const [rows, hidden] = video.shape;
          const count = rows / exs.length;
          const seqs = exs.map((ex) => this.#placed(teacherForced(ex).ids, count));
          const { at, drop } = seqs[0];
          const len = Math.max(...seqs.map((q) => q.ids.length));
          const ids = new Int32Array(exs.length * len); // each padded at its end (with token 0)
          for (const [i, q] of seqs.entries()) ids.set(q.ids, i * len);
          const x = m.lm.embed(ids);
          const seqView = x.reshape([exs.length, len, hidden]);
          ops.writeSlice(seqView, video.reshape([exs.length, count, hidden]), 1, at);
          return dropRows(m.lm.sequence(x, exs.length), exs.length, at, drop);
        });
      },
      [Symbol.dispose]: () => m[Symbol.dispose](),
    };
    return fwd;
  }

  async answers(examples: readonly Example[], maxNew: number): Promise<number[][]> {
    using m = this.#model();
    const out: number[][] = [];
    for (const ex of examples) {
      using video = this.#videos(m, [ex]);
      const { ids } = this.#placed(ex.prompt, video.shape[0]);
      using session = m.session(ids.length + maxNew);
      out.push(
        await greedyAnswer(session.prefill({ ids, video }), (tok) => session.step(tok), this.imEnd, maxNew),
      );
    }
    return out;
  }

  [Symbol.dispose](): void {
    for (const w of this.weights.values()) w.dispose();
  }
}

/** `configJson` with the tokenizer's `vocab_size` moved into text_config, and its seeded initial values. */
function seeded(configJson: Record<string, unknown>, seed: number) {
  const { vocab_size, ...rest } = configJson;
  const text = isObject(rest.text_config) ? rest.text_config : {};
  if (text.vocab_size !== undefined && vocab_size !== undefined && text.vocab_size !== vocab_size)
    throw new InputError(
      `model.config.text_config.vocab_size is ${text.vocab_size} but the tokenizer has ${vocab_size} tokens; make them equal`,
    );
  const json = vocab_size === undefined ? rest : { ...rest, text_config: { ...text, vocab_size } };
  const config = parseTstarConfig(json, 'model.config');
  const specs = tstarSpecs(config);
  return { json, config, specs, values: pytorchInit(specs, seed, tstarInit(config)) };
}

/** The Qwen2-VL settings that shape (or define) its tower and LLM, which the TSTAR's must equal to take them. */
const SAME_VISION = [
  'depth',
  'embed_dim',
  'num_heads',
  'mlp_ratio',
  'hidden_size',
  'patch_size',
  'temporal_patch_size',
  'spatial_merge_size',
  'in_channels',
  'hidden_act',
] as const;
const SAME_TEXT = [
  'hidden_size',
  'intermediate_size',
  'num_hidden_layers',
  'num_attention_heads',
  'num_key_value_heads',
  'hidden_act',
  'rms_norm_eps',
  'rope_theta',
  'tie_word_embeddings',
] as const;

/**
 * The vision tower's and the LLM's tensors (f32, by name: Qwen2-VL's and TSTAR's names are the same) of the
 * Qwen2-VL checkpoint `dir`, its token rows moved to `tokenizerJson`'s ids (`kept`: the tokens that found a
 * trained row); checked against TSTAR config `c`.
 */
async function qwen2vlValues(
  dir: string,
  c: TstarConfig,
  tokenizerJson: string,
  backend: Backend,
): Promise<{ values: Map<string, Float32Array>; kept: number }> {
  const where = `model.initFromQwen2VL ${dir}`;
  if (c.vision.kind !== 'qwen2_vl' || c.text.kind !== 'qwen2')
    throw new InputError(
      `${where}: a Qwen2-VL checkpoint gives a TSTAR with Qwen2-VL's tower and a Qwen2 LLM; model.config has a ${c.vision.kind} tower and a ${c.text.kind} LLM (set vision_config.model_type "qwen2_vl" and text_config.model_type "qwen2")`,
    );
  const file = join(dir, 'config.json');
  if (!(await fileExists(file)))
    throw new InputError(
      `${where}: no config.json there; give the directory of a Qwen2-VL checkpoint (config.json, model.safetensors, tokenizer.json)`,
    );
  const json = await readJsonFile(file);
  if (!isObject(json) || json.model_type !== 'qwen2_vl')
    throw new InputError(
      `${where}: config.json's model_type is ${JSON.stringify(isObject(json) ? json.model_type : json)}, not "qwen2_vl"; give a Qwen2-VL checkpoint`,
    );
  const q = parseQwen2VLConfig(json, file);
  const differ = (part: string, key: string, theirs: unknown, ours: unknown) =>
    new InputError(
      `${where}: the checkpoint's ${part} ${key} is ${JSON.stringify(theirs)} but model.config.${part}.${key} is ${JSON.stringify(ours)}; the TSTAR's tower and LLM must be the checkpoint's to take its weights`,
    );
  for (const k of SAME_VISION)
    if (q.vision[k] !== c.vision.config[k]) throw differ('vision_config', k, q.vision[k], c.vision.config[k]);
  const text = c.text.config.text;
  for (const k of SAME_TEXT) if (q.text[k] !== text[k]) throw differ('text_config', k, q.text[k], text[k]);
  const tokenizer = await readFile(join(dir, 'tokenizer.json'), 'utf8').catch(() => null);
  if (tokenizer === null)
    throw new InputError(
      `${where}: no tokenizer.json, so its token rows cannot move to model.tokenizer's ids`,
    );
  const src = rowSources(vocabularyOf(tokenizer, dir), vocabularyOf(tokenizerJson, 'model.tokenizer'));
  if (src.length !== c.vocab_size)
    throw new ModelError(
      `${where}: model.tokenizer's vocabulary ends at id ${src.length - 1} but the model has ${c.vocab_size} token rows`,
    );
  const loaded = await checkpointTensors(dir, qwen2vlSpecs(q), q, backend, 'f32', 'config.json (Qwen2-VL)');
  const out = new Map<string, Float32Array>();
  try {
    for (const [name, t] of loaded) {
      const data = (await t.data()) as Float32Array;
      const rows = TOKEN_ROWS.includes(name) && remapRows({ dtype: 'F32', shape: t.shape, data }, src);
      out.set(name, rows ? (rows.data as Float32Array) : data);
    }
  } finally {
    for (const t of loaded.values()) t.dispose();
  }
  return { values: out, kept: src.filter((i) => i >= 0).length };
}

/**
 * The initialisation of tools/reference/needle_mambamia.py's compressor (PyTorch's defaults elsewhere, as
 * train_needle.py's tower and decoder): query_token N(0, 1/H); input_proj and output_proj Xavier-uniform with zero
 * biases; weight_fc and gate_fc PyTorch's default × 1e-3 with zero biases (near-uniform pooling, gate near ½);
 * Mamba's A_log = ln U(1, 16), dt_bias = softplus⁻¹(dt) for log-uniform dt in [1e-3, 0.1] (floored at 1e-4),
 * D = 1, norms 1 — for both scan directions, and for a Nemotron-H LLM's Mamba layers too.
 */
function tstarInit(c: TstarConfig): SpecialInit {
  const h = c.projector.hidden_size;
  const zeros = (shape: readonly number[]) => new Float32Array(shape.reduce((a, b) => a * b, 1));
  const ones = (shape: readonly number[]) => zeros(shape).fill(1);
  return (name: string, shape: readonly number[], rng: Random) => {
    const proj = name.startsWith(PROJECTOR) ? name.slice(PROJECTOR.length) : null;
    if (proj === 'query_token') return normal(rng, zeros(shape), 1 / Math.sqrt(h));
    if (proj !== null && /^(input|output)_proj\.weight$/.test(proj))
      return uniform(rng, zeros(shape), Math.sqrt(6 / (shape[0] + shape[1])));
    if (proj !== null && /(^(input|output)_proj|\.(weight|gate)_fc)\.bias$/.test(proj)) return zeros(shape);
    if (proj !== null && /\.(weight|gate)_fc\.weight$/.test(proj))
      return uniform(rng, zeros(shape), 1e-3 / Math.sqrt(shape[1]));
    if (/(^|\.)(A_log|A_b_log)$/.test(name)) return zeros(shape).map(() => Math.log(1 + 15 * rng.next()));
    if (/(^|\.)dt_bias(_b)?$/.test(name))
      return zeros(shape).map(() => {
        const dt = Math.max(Math.exp(Math.log(1e-3) + rng.next() * (Math.log(0.1) - Math.log(1e-3))), 1e-4);
        return dt + Math.log(-Math.expm1(-dt)); // softplus⁻¹(dt)
      });
    if (/(^|\.)(D|D_b|norm(_b|_f)?\.weight)$/.test(name)) return ones(shape);
    if (name === 'backbone.embeddings.weight') return normal(rng, zeros(shape), 1);
    return null;
  };
}
