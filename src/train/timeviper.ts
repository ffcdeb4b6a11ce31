/**
 * TimeViper as a TrainModel: SigLIP → ToMe → projector → Nemotron-H with its drop stages and TransV, the model's
 * own modules (src/models/timeviper) built over views of the trainer's weights inside the recording. The forward
 * awaits host decisions (ToMe's merge plan, the drop stages' picks), so its logits are a promise and the trainer
 * records under valueAndGradAsync. A micro-batch's videos share one vision pass (batchLogits); the LLM runs per
 * example. The TransV gates are built from the α tensor (tanh inside the forward), so α trains. Checkpoints are
 * the official state-dict layout (src/models/timeviper/weights.ts) with our config.json.
 *
 * Prompts are TimeViper's nano_base with one `<image>` per frame (NanoPrompts: needle examples carry the official
 * Vamba prompt and are rewritten as tools/reference/needle_timeviper.py's NeedleTimeViper does). Only the answer
 * rows' logits are the model's own: the prompt rows carry no loss and hold the first row's.
 */
import { join } from 'node:path';
import { InputError, ModelError } from '../errors.js';
import { isObject } from '../io/json-fields.js';
import { Tokenizer } from '../io/tokenizer.js';
import { patchGrid, type SiglipVisionConfig } from '../models/siglip/config.js';
import { siglipPixelsOn } from '../models/siglip/preprocess.js';
import { parseTimeViperConfig, type TimeViperConfig } from '../models/timeviper/config.js';
import type { VisionSpan } from '../models/timeviper/language-model.js';
import { CLIP_FRAMES, openTimeViperWeights, TimeViperModel } from '../models/timeviper/model.js';
import { IMAGE_TOKEN, nanoBasePrompt } from '../models/timeviper/prompt.js';
import { ALPHA, loadTimeViperParams, timeViperSpecs } from '../models/timeviper/weights.js';
import { type ParamSpec, ParamStore } from '../nn/params.js';
import type { Backend } from '../runtime/backend.js';
import type { DType } from '../runtime/dtype.js';
import * as ops from '../runtime/ops.js';
import { tidy } from '../runtime/scope.js';
import type { Tensor } from '../runtime/tensor.js';
import type { Random } from '../util/random.js';
import type { ExtraFiles } from './checkpoint.js';
import { type Example, frameImages } from './data.js';
import { normal, pytorchInit } from './init.js';
import { batchVideos, type Checkpoint, greedyAnswer, type TrainForward, type TrainModel } from './model.js';
import type { Recipe } from './recipe.js';

/** The specials the nano_base prompt needs, appended to a needle tokenizer (`<image>` last: never embedded). */
const ADDED = ['<SPECIAL_10>', '<SPECIAL_11>', '<SPECIAL_12>', IMAGE_TOKEN];

/** A needle tokenizer's files with the nano_base specials added, as needle_timeviper.py's write_tokenizer. */
export function withNanoSpecials(files: ExtraFiles): ExtraFiles {
  const tok = JSON.parse(files['tokenizer.json']!) as {
    model: { vocab: Record<string, number> };
    added_tokens?: object[];
  };
  const cfg = JSON.parse(files['tokenizer_config.json'] ?? '{}') as Record<string, unknown>;
  const n = Object.keys(tok.model.vocab).length;
  const entry = { single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
  tok.added_tokens = [
    ...(tok.added_tokens ?? []),
    ...ADDED.map((content, i) => ({ id: n + i, content, ...entry })),
  ];
  if (isObject(cfg.added_tokens_decoder))
    ADDED.forEach((content, i) => {
      (cfg.added_tokens_decoder as Record<string, unknown>)[String(n + i)] = { content, ...entry };
    });
  return {
    ...files,
    'tokenizer.json': `${JSON.stringify(tok)}\n`,
    'tokenizer_config.json': `${JSON.stringify(cfg, null, 2)}\n`,
  };
}

/**
 * Initial weights as PyTorch initialises needle_timeviper.py's modules: the defaults of init.ts, SigLIP's
 * position embedding N(0, 0.02²), the LLM's embeddings N(0, embeddingStd²) and final norm 1, Mamba-2's dt_bias,
 * A_log and D as train_needle.py's mixer, and α = 0 (the official init: the TransV gates start closed).
 */
function scratchValues(
  specs: readonly ParamSpec[],
  seed: number,
  embeddingStd: number,
): Map<string, Float32Array> {
  return pytorchInit(specs, seed, (name, shape, rng: Random) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const v = new Float32Array(n);
    if (name.endsWith('pos_embed') || name.endsWith('position_embedding.weight')) return normal(rng, v, 0.02);
    if (name.endsWith('backbone.embeddings.weight')) return normal(rng, v, embeddingStd);
    if (name.endsWith('norm_f.weight') || name.endsWith('.D') || name === ALPHA)
      return v.fill(name === ALPHA ? 0 : 1);
    if (name.endsWith('.A_log')) return v.map(() => Math.log(1 + 15 * rng.next()));
    if (name.endsWith('.dt_bias'))
      return v.map(() => {
        const dt = Math.max(Math.exp(Math.log(1e-3) + rng.next() * (Math.log(0.1) - Math.log(1e-3))), 1e-4);
        return dt + Math.log(-Math.expm1(-dt)); // softplus⁻¹(dt)
      });
    return null;
  });
}

/**
 * The std of the LLM's token embeddings from scratch: llm_config.initializer_range where the config gives it (as
 * Hugging Face's `_init_weights` draws embeddings; NemotronHConfig's default is 0.02), else 1 (PyTorch's
 * nn.Embedding, as needle_timeviper.py builds them). A tiny TimeViper from scratch with text embeddings of std 1
 * and projected video tokens of std ≈ 0.09 learned to answer blind first (docs/models/needle-timeviper-tiny.md).
 */
function embeddingStd(configJson: Record<string, unknown>, where: string): number {
  const llm = configJson.llm_config as Record<string, unknown> | undefined;
  const std = llm?.initializer_range;
  if (std === undefined) return 1;
  if (typeof std !== 'number' || !(std > 0) || !Number.isFinite(std))
    throw new InputError(
      `${where}: llm_config.initializer_range must be a positive number (got ${JSON.stringify(std)})`,
    );
  return std;
}

const newTokenizer = (files: ExtraFiles) =>
  new Tokenizer(
    JSON.parse(files['tokenizer.json']!) as never,
    JSON.parse(files['tokenizer_config.json'] ?? '{}') as never,
  );

/**
 * A TimeViper from scratch (the recipe's model.config), as needle_timeviper.py builds one: the nano_base specials
 * added to a tokenizer without `<image>`; llm_config.vocab_size the embedded tokens (those below `<image>` when
 * it is the last id, else all) and image_token_index `<image>`'s id, each checked when the config gives it.
 */
export function timeViperScratch(
  recipe: Recipe,
  base: ExtraFiles,
  backend: Backend,
  dtype: DType,
): { model: TimeViperTrainModel; tokenizer: Tokenizer; files: ExtraFiles } {
  let files = base;
  if (newTokenizer(files).tokenToId(IMAGE_TOKEN) === undefined) files = withNanoSpecials(files);
  const tokenizer = newTokenizer(files);
  const image = tokenizer.tokenToId(IMAGE_TOKEN)!;
  const vocab = image === tokenizer.vocabSize - 1 ? image : tokenizer.vocabSize;
  const config = recipe.model.config!;
  const where = `${recipe.path}: model.config`;
  if (!isObject(config.llm_config))
    throw new InputError(`${where}.llm_config must be an object (the LLM's config)`);
  const llm = config.llm_config;
  for (const [key, have, want] of [
    ['llm_config.vocab_size', llm.vocab_size, vocab],
    ['image_token_index', config.image_token_index, image],
  ] as const)
    if (have !== undefined && have !== want)
      throw new InputError(
        `${where}.${key} is ${have}, but the tokenizer gives ${want}; leave it out or make them equal`,
      );
  const configJson = { ...config, llm_config: { ...llm, vocab_size: vocab }, image_token_index: image };
  files = {
    ...files,
    'generation_config.json': `${JSON.stringify(
      {
        bos_token_id: llm.bos_token_id,
        eos_token_id: [llm.eos_token_id],
        pad_token_id: llm.pad_token_id,
        do_sample: false,
      },
      null,
      2,
    )}\n`,
  };
  const model = TimeViperTrainModel.scratch(configJson, backend, dtype, recipe.seed, tokenizer, where);
  return { model, tokenizer, files };
}

/**
 * Example prompts as nano_base ids with one `<image>` per frame: a nano_base prompt's `<image>` run (JSONL data)
 * is made one per frame; a needle prompt (the official Vamba prompt) is rewritten as needle_timeviper.py's
 * nano_base_ids does — the question between `<|vision_end|>` and the next `<|im_end|>` inside nano_base.
 */
export class NanoPrompts {
  /** nano_base before and after the question. */
  readonly #head: number[];
  readonly #tail: number[];
  readonly #visionEnd: number | undefined;
  readonly #imEnd: number | undefined;

  constructor(
    tokenizer: Tokenizer,
    readonly image: number,
  ) {
    const mark = 'QUESTION';
    const { text } = nanoBasePrompt([{ role: 'user', content: mark }], 0);
    const at = text.indexOf(mark);
    const encode = (s: string) => tokenizer.encode(s, { addSpecialTokens: false });
    this.#head = encode(text.slice(0, at));
    this.#tail = encode(text.slice(at + mark.length));
    this.#visionEnd = tokenizer.tokenToId('<|vision_end|>');
    this.#imEnd = tokenizer.tokenToId('<|im_end|>');
  }

  ids(prompt: readonly number[], frames: number): number[] {
    const images = new Array<number>(frames).fill(this.image);
    const first = prompt.indexOf(this.image);
    if (first >= 0) {
      let end = first;
      while (prompt[end] === this.image) end++;
      return [...prompt.slice(0, first), ...images, ...prompt.slice(end)];
    }
    const ve = this.#visionEnd === undefined ? -1 : prompt.indexOf(this.#visionEnd);
    const q = ve < 0 || this.#imEnd === undefined ? -1 : prompt.indexOf(this.#imEnd, ve);
    if (q < 0)
      throw new InputError(
        `TimeViper training: a prompt has neither ${IMAGE_TOKEN} placeholders nor the needle form (<|vision_end|> question <|im_end|>)`,
      );
    return [...this.#head, ...images, ...prompt.slice(ve + 1, q), ...this.#tail];
  }
}

export class TimeViperTrainModel implements TrainModel {
  readonly untrainable = new Map<string, string>();
  readonly config: TimeViperConfig;
  readonly #prompts: NanoPrompts;
  /** What ends an answer (JSONL data), and its last token: greedy answers stop there. */
  readonly answerEnd: string;
  readonly imEnd: number;

  private constructor(
    readonly configJson: Record<string, unknown>,
    readonly weights: Map<string, Tensor>,
    tokenizer: Tokenizer,
    where: string,
  ) {
    // Needle tokenizers end answers with <|im_end|>; TimeViper's own ends a nano_base turn with <SPECIAL_12>.
    const needle = tokenizer.tokenToId('<|im_end|>');
    this.answerEnd = needle === undefined ? '\n<SPECIAL_12>' : '<|im_end|>';
    const end = needle ?? tokenizer.tokenToId('<SPECIAL_12>');
    if (end === undefined)
      throw new ModelError(
        `${where}: the tokenizer has neither <|im_end|> nor <SPECIAL_12> (answers end with one)`,
      );
    this.imEnd = end;
    const parsed = parseTimeViperConfig(configJson, where);
    const image = tokenizer.tokenToId(IMAGE_TOKEN);
    // An official checkpoint's config leaves the placeholder to the tokenizer (−1), as the runner reads it.
    this.config =
      parsed.imageTokenId < 0 && image !== undefined ? { ...parsed, imageTokenId: image } : parsed;
    if (image !== this.config.imageTokenId)
      throw new ModelError(
        `${where}: the tokenizer's ${IMAGE_TOKEN} is ${image ?? 'missing'}, image_token_index ${this.config.imageTokenId}`,
      );
    this.#prompts = new NanoPrompts(tokenizer, this.config.imageTokenId);
  }

  /** The model of `configJson` over `weights` (every tensor of timeViperSpecs, by name). */
  static create(
    configJson: Record<string, unknown>,
    weights: Map<string, Tensor>,
    tokenizer: Tokenizer,
    where = 'config.json',
  ): TimeViperTrainModel {
    return new TimeViperTrainModel(configJson, weights, tokenizer, where);
  }

  /** A new model from `configJson` (llm_config.vocab_size and image_token_index set) with PyTorch-style weights. */
  static scratch(
    configJson: Record<string, unknown>,
    backend: Backend,
    dtype: DType,
    seed: number,
    tokenizer: Tokenizer,
    where: string,
  ): TimeViperTrainModel {
    const specs = timeViperSpecs(parseTimeViperConfig(configJson, where));
    const values = scratchValues(specs, seed, embeddingStd(configJson, where));
    const weights = new Map(
      specs.map((s) => [
        s.name,
        ops.tensor(backend, values.get(s.name)!, s.shape, s.name === ALPHA ? 'f32' : dtype),
      ]),
    );
    return new TimeViperTrainModel(configJson, weights, tokenizer, where);
  }

  /** The weights of a checkpoint directory in the official layout (model.safetensors or a torch.save file). */
  static async load(
    dir: string,
    configJson: Record<string, unknown>,
    backend: Backend,
    dtype: DType,
    tokenizer: Tokenizer,
  ): Promise<TimeViperTrainModel> {
    const where = join(dir, 'config.json');
    const config = parseTimeViperConfig(configJson, where);
    const source = await openTimeViperWeights(dir);
    let store: ParamStore;
    try {
      store = await loadTimeViperParams(source, config, backend, dtype, dir);
    } finally {
      await source.close();
    }
    const weights = new Map(timeViperSpecs(config).map((s) => [s.name, store.take(s.name)]));
    return new TimeViperTrainModel(configJson, weights, tokenizer, where);
  }

  /** The prompt text of a question (JSONL data): nano_base with one `<image>` (made one per frame later). */
  prompt(question: string): string {
    return nanoBasePrompt([{ role: 'user', content: question }], 1).text;
  }

  /** The model over views of the weights; `alphaTensor`: the gates as ops of α (a training forward). */
  #model(alphaTensor: boolean): Promise<TimeViperModel> {
    const views = new Map([...this.weights].map(([n, w]) => [n, w.reshape(w.shape)]));
    return TimeViperModel.fromParams(this.config, new ParamStore(views), alphaTensor);
  }

  /** Every frame of the videos, one video after another, as SigLIP's pixels [frames, 3, size, size]. */
  #pixels(videos: readonly Example[], backend: Backend): Tensor {
    const frames = videos.flatMap(frameImages);
    const size = this.config.vision.image_size;
    return siglipPixelsOn(backend, frames, size);
  }

  /**
   * `checkpoint`: the vision half in checkpointed parts, and the LLM when it runs batched (with drop stages it
   * awaits their picks: not checkpointed).
   */
  forward(checkpoint?: Checkpoint): TrainForward {
    let model: TimeViperModel | null = null;
    /**
     * Logits of the examples as `padded` lays them out: the vision half (SigLIP, ToMe, the projector) over every
     * frame of every video in one pass (the askings of one video share it) — each frame's tokens and merge are its own, so they are those of its
     * video alone — then the LLM over every example at once when the model has no drop stages, else example by
     * example (the drop stages and TransV pick per sequence, so the sequences differ in length), then the head
     * over every example's rows at once.
     */
    const logits = async (exs: readonly Example[]): Promise<Tensor> => {
      model ??= await this.#model(true);
      const m = model;
      const b = batchVideos(exs);
      const pixels = this.#pixels(b.videos, m.lm.embeddings.backend);
      let visual: Tensor;
      try {
        visual = await m.encode(pixels, checkpoint, clipFramesFor(this.config.vision));
      } finally {
        pixels.dispose();
      }
      const seq = Math.max(...exs.map((ex) => ex.prompt.length + ex.answer.length - 1));
      const index = new Int32Array(exs.length * seq);
      /** Maps example i's rows of the `padded` layout to its rows of h (n of them, from `offset`). */
      const place = (i: number, ex: Example, offset: number, n: number) => {
        // Row j of an example predicts its token j + 1: the answer rows are the last ones of both sequences;
        // its other rows (prompt, padding: no loss) hold its first row's.
        const rows = ex.prompt.length + ex.answer.length - 1;
        const answer = ex.answer.length;
        index.fill(offset, i * seq, (i + 1) * seq);
        for (let r = 0; r < answer; r++) index[i * seq + rows - answer + r] = offset + n - answer + r;
      };
      const head = (parts: Tensor[]) =>
        tidy(() => {
          const h = parts.length > 1 ? ops.concat(parts, 0) : parts[0];
          return m.lm.head(ops.embedding(h, ops.tensor(h.backend, index, [index.length], 'i32')));
        });
      const xs: Tensor[] = [];
      const spans: (VisionSpan | null)[] = [];
      const hs: Tensor[] = [];
      try {
        // Each video's frames start after those of the videos before it; its askings all read them.
        const first = b.videos.map((_, j) => b.videos.slice(0, j).reduce((n, v) => n + v.count, 0));
        const ids = exs.map((ex) => [...this.#prompts.ids(ex.prompt, ex.count), ...ex.answer.slice(0, -1)]);
        if (!this.config.stages.length && exs.length > 1) {
          // No drop stages: every sequence keeps its rows, so the examples run through the LLM as one batch,
          // each padded at its end (the stack is causal and position-free: padding changes no earlier row).
          const { x, rows, n } = batchInput(m, ids, (i) => [first[b.of[i]], exs[i].count], visual);
          const h = tidy(() => {
            const run = () => m.lm.sequences(x, exs.length);
            return checkpoint ? checkpoint(run) : run();
          });
          x.dispose();
          for (const [i, ex] of exs.entries()) place(i, ex, i * n, rows[i]);
          hs.push(h);
          return head(hs);
        }
        for (const [i, ex] of exs.entries()) {
          const own = visual.narrow(first[b.of[i]], first[b.of[i]] + ex.count);
          const { x, vision } = m.embedPrompt({ ids: ids[i], visual: own });
          own.dispose();
          xs.push(x);
          spans.push(vision);
        }
        let offset = 0;
        for (const [i, ex] of exs.entries()) {
          const { h } = await m.lm.run(xs[i], spans[i], null, false, ex.answer.length - 1);
          hs.push(h);
          place(i, ex, offset, h.shape[0]);
          offset += h.shape[0];
        }
        return head(hs);
      } finally {
        visual.dispose();
        for (const t of [...xs, ...hs]) t.dispose();
      }
    };
    return {
      checkpointsParts: true,
      logits: (ex) => logits([ex]),
      // Any examples: frames of every size are resized to the tower's, and the LLM runs per example.
      canBatch: () => true,
      batchLogits: logits,
      [Symbol.dispose]: () => {
        model?.[Symbol.dispose]();
      },
    };
  }

  async answers(examples: readonly Example[], maxNew: number): Promise<number[][]> {
    using m = await this.#model(false);
    const out: number[][] = [];
    for (const ex of examples) {
      const ids = this.#prompts.ids(ex.prompt, ex.count);
      using pixels = this.#pixels([ex], m.lm.embeddings.backend);
      using visual = await m.encode(pixels);
      using session = m.session(ids.length + ex.count * visual.shape[1] + maxNew);
      const first = await session.prefill({ ids, visual });
      const answer = await greedyAnswer(first, (tok) => session.step(tok), this.imEnd, maxNew);
      out.push(answer);
    }
    return out;
  }

  [Symbol.dispose](): void {
    for (const w of this.weights.values()) w.dispose();
  }
}

/**
 * The LLM input of sequences of token ids whose image placeholders each stand for one frame of `visual` ([frames,
 * tokens per frame, hidden]; sequence i's frames(i) = [first, count]: its k-th of `count` placeholders is frame
 * first + k): [sequences · n, hidden],
 * sequence i's rows (embedPrompt's: text embeddings, each frame's tokens in its placeholder's place) from row i·n and
 * zeros after, n the longest. One gather from [every text token's embedding; every frame's tokens; a zero row]: a
 * few calls for the batch where embedPrompt takes a dozen a sequence (forward and backward).
 */
function batchInput(
  m: TimeViperModel,
  ids: readonly (readonly number[])[],
  framesOf: (i: number) => [number, number],
  visual: Tensor,
): { x: Tensor; rows: number[]; n: number } {
  const image = m.config.imageTokenId;
  const [frames, perFrame, hidden] = visual.shape;
  const text = ids.flatMap((seq) => seq.filter((t) => t !== image));
  const rows = ids.map((seq) => seq.length + seq.filter((t) => t === image).length * (perFrame - 1));
  const n = Math.max(...rows);
  const zero = text.length + frames * perFrame;
  const index = new Int32Array(ids.length * n).fill(zero);
  let t = 0;
  ids.forEach((seq, i) => {
    const [first, count] = framesOf(i);
    const placeholders = seq.filter((tok) => tok === image).length;
    if (placeholders !== count || first + count > frames)
      throw new InputError(
        `TimeViper: sequence ${i} has ${placeholders} <image> placeholders for ${count} frames`,
      );
    let r = i * n;
    let frame = first;
    for (const tok of seq)
      if (tok !== image) index[r++] = t++;
      else {
        for (let j = 0; j < perFrame; j++) index[r++] = text.length + frame * perFrame + j;
        frame++;
      }
  });
  const dtype = m.lm.embeddings.dtype;
  const x = tidy(() => {
    const flat = visual.reshape([frames * perFrame, hidden]);
    const table = ops.concat(
      [
        m.lm.embed(text),
        flat.dtype === dtype ? flat : ops.cast(flat, dtype),
        ops.zeros(visual.backend, [1, hidden], dtype),
      ],
      0,
    );
    return ops.embedding(table, ops.tensor(visual.backend, index, [index.length], 'i32'));
  });
  return { x, rows, n };
}

/**
 * Frames per vision pass in training: the official 256, or more while a pass's largest activation (the MLP's hidden
 * rows, counted in f32) stays within 1 GiB — a tiny tower's whole step, whose ToMe plan then waits on the GPU twice
 * a round once instead of once per 256 frames. SigLIP so400m stays at 256 (12.5 MB a frame).
 */
function clipFramesFor(v: SiglipVisionConfig): number {
  return Math.max(CLIP_FRAMES, Math.floor(2 ** 30 / (patchGrid(v).tokens * v.intermediate_size * 4)));
}
