/**
 * Training and evaluation examples: a video's RGB frames with one asking (prompt ids, answer ids). Three
 * sources: the needle generator streamed (each video drawn from the trainer's seeded RNG, so the data
 * position is the RNG's state), the needle shards written by tools/needle/export_training_data.ts, and a
 * JSONL video-instruction file (`{video, conversations}`, LLaVA-Video style) decoded by the media pipeline.
 */
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { InputError } from '../errors.js';
import { SafetensorsFile } from '../io/safetensors.js';
import type { Tokenizer } from '../io/tokenizer.js';
import { decodeFrames } from '../media/video.js';
import type { RgbImage } from '../models/qwen2vl/processor.js';
import { makeSample } from '../needle/tasks.js';
import { needleAsking, needleFrames, needleTokenizer } from '../needle/training.js';
import { Random } from '../util/random.js';
import { type NeedleMeta, type NeedleSpec, varietyExamples } from './needle-v2.js';
import type { DataSpec } from './recipe.js';
import { RenderPool, renderThreads } from './render-pool.js';

export interface Example {
  /** RGB24 frames [count, height, width, 3]. */
  frames: Uint8Array;
  count: number;
  width: number;
  height: number;
  prompt: number[];
  answer: number[];
  /** What the evaluation tallies it under (needle: task/form). */
  group: string;
  /** How a v2 needle video was drawn (its task, background, answerability, size). */
  meta?: NeedleMeta;
}

/** An example's frames as images: views of its bytes, one after another (what the processors take). */
export function frameImages(ex: Example): RgbImage[] {
  const n = ex.width * ex.height * 3;
  return Array.from({ length: ex.count }, (_, t) => ({
    width: ex.width,
    height: ex.height,
    data: ex.frames.subarray(t * n, (t + 1) * n),
  }));
}

export interface DataSource {
  readonly description: string;
  /** Frame counts of the videos with the share of draws each gets. */
  readonly lengths: readonly { frames: number; weight: number }[];
  /**
   * A video of `frames` frames drawn with `rng` (the trainer's: its state is the data position). Every draw
   * from `rng` happens before the first await, so the draws of a step may run at once in call order.
   */
  draw(rng: Random, frames: number): Promise<Example>;
  /** `n` examples of a step at once, where the source draws them otherwise than n × draw (v2: askings per video). */
  drawBatch?(rng: Random, frames: number, n: number): Promise<Example[]>;
  /**
   * The `n` examples of each of `echo` steps from one draw of videos, each step asking them anew (the v2 stream:
   * a video's askings spread over the steps). Where a source has none, the trainer repeats one draw's examples.
   */
  drawEchoed?(rng: Random, frames: number, n: number, echo: number): Promise<Example[][]>;
  /** The fixed set (evaluation): `count` examples, or all for a finite source when count is 0. */
  fixed(count: number): Promise<Example[]>;
  /** How many steps the trainer draws ahead (1 when absent): a source that renders on threads keeps them busy. */
  readonly prefetch?: number;
  close(): Promise<void>;
}

/** Turns an example's prompt/answer into the text a model formats for the family (JSONL data). */
export type PromptBuilder = (question: string) => string;

export interface DataContext {
  /** The model's tokenizer (JSONL); needle data brings its own. */
  tokenizer: Tokenizer | null;
  prompt: PromptBuilder;
  /** What ends an answer (JSONL), `<|im_end|>` when absent (TimeViper's own tokenizer: a nano_base turn end). */
  answerEnd?: string;
}

export async function openSource(spec: DataSpec, ctx: DataContext): Promise<DataSource> {
  if (spec.kind === 'needle')
    return spec.variety === 'v2' ? new NeedleV2Stream(spec) : new NeedleStream(spec);
  if (spec.kind === 'shards') return ShardSource.open(spec.dirs);
  return JsonlSource.open(spec, ctx);
}

/**
 * The `n` examples of each of `echo` consecutive steps from one draw of `frames`-frame videos: the source's own
 * echo (drawEchoed), else one draw's examples repeated.
 */
export async function drawSteps(
  src: DataSource,
  rng: Random,
  frames: number,
  n: number,
  echo: number,
): Promise<Example[][]> {
  if (src.drawEchoed) return src.drawEchoed(rng, frames, n, echo);
  const once = src.drawBatch
    ? await src.drawBatch(rng, frames, n)
    : await Promise.all(Array.from({ length: n }, () => src.draw(rng, frames)));
  return Array<Example[]>(echo).fill(once);
}

/** Draws one length by weight. */
export function drawLength(rng: Random, lengths: DataSource['lengths']): number {
  return rng.pickWeighted(
    lengths.map((l) => l.frames),
    lengths.map((l) => l.weight),
  );
}

const lengthsOf = (spec: NeedleSpec) => spec.frames.map((frames, i) => ({ frames, weight: spec.weights[i] }));

/** A cycled pool's example of `frames` frames (any length when none has it), picked by `u` ∈ [0, 1). */
function fromPool(pool: Map<number, Example[]>, frames: number, u: number): Example {
  const list = pool.get(frames) ?? [...pool.values()].flat();
  return list[Math.floor(u * list.length)];
}

/** A fixed set's examples by frame count. */
function byCount(examples: readonly Example[]): Map<number, Example[]> {
  const pool = new Map<number, Example[]>();
  for (const ex of examples) pool.set(ex.count, [...(pool.get(ex.count) ?? []), ex]);
  return pool;
}

class NeedleStream implements DataSource {
  readonly #tok;
  readonly lengths;
  /** The fixed pool a stream with `count` > 0 cycles, by frame count (rendered on first use). */
  #pool: Promise<Map<number, Example[]>> | null = null;

  constructor(readonly spec: NeedleSpec) {
    this.#tok = needleTokenizer(spec.tokenizer);
    this.lengths = lengthsOf(spec);
  }

  get description(): string {
    const pool = this.spec.count ? `, a pool of ${this.spec.count} videos` : '';
    return `needle generator (${this.spec.frames.join('/')} frames, ${this.spec.size}px, tokenizer v${this.spec.tokenizer}${pool})`;
  }

  async draw(rng: Random, frames: number): Promise<Example> {
    if (!this.spec.count) return this.#make(rng, frames, 'stream');
    const u = rng.next();
    this.#pool ??= this.fixed(this.spec.count).then(byCount);
    return fromPool(await this.#pool, frames, u);
  }

  /** As the exporter's v1 data: 2 fps, 2-frame needles, half short answers and half option letters. */
  async #make(rng: Random, frames: number, id: string): Promise<Example> {
    const side = this.spec.size;
    const seed = rng.int(0, 2 ** 31);
    const task = rng.pickWeighted(this.spec.tasks, this.spec.taskWeights);
    const s = makeSample(seed, id, { frames, fps: 2, width: side, height: side, needleFrames: 2, task });
    const letter = rng.next() < 0.5;
    const { prompt, answer } = needleAsking(this.#tok, s, letter, this.spec.tokenizer);
    return {
      frames: needleFrames(s, side),
      count: s.frames,
      width: side,
      height: side,
      prompt,
      answer,
      group: `${s.task}/${letter ? 'mcq' : 'short'}`,
    };
  }

  async fixed(count: number): Promise<Example[]> {
    const rng = new Random(this.spec.seed);
    const out: Example[] = [];
    for (let i = 0; i < (count || this.spec.count); i++)
      out.push(await this.#make(rng, drawLength(rng, this.lengths), `item-${i}`));
    return out;
  }

  async close(): Promise<void> {}
}

/** The v2 mix (needle-v2.ts), rendered on LONGSHOT_RENDER_THREADS threads beside the trainer's. */
class NeedleV2Stream implements DataSource {
  readonly lengths;
  readonly #threads = renderThreads();
  #renderPool: RenderPool | null = null;
  #pool: Promise<Map<number, Example[]>> | null = null;

  constructor(readonly spec: NeedleSpec) {
    this.lengths = lengthsOf(spec);
  }

  /** Two steps a thread: a step of long videos is a few videos, each one thread's work for up to seconds. */
  get prefetch(): number {
    return this.spec.count ? 1 : Math.max(1, 2 * this.#threads);
  }

  get description(): string {
    const s = this.spec;
    const pool = s.count ? `, a pool of ${s.count} videos` : '';
    const threads = this.#threads ? `, rendered on ${this.#threads} threads` : '';
    return `needle generator v2 (${s.frames.map((f, i) => `${f}×${s.weights[i]}`).join('/')} frames, ${s.size}px, phrasing ${s.phrasing}, ${s.unanswerable * 100}% unanswerable, scenes ${s.scenes}, ${s.askings} asking${s.askings > 1 ? 's' : ''} a video, tokenizer v${s.tokenizer}${pool}${threads})`;
  }

  #render(seed: number, frames: number, askings: number, id: string): Promise<Example[]> {
    const job = { spec: this.spec, seed, frames, askings, id };
    if (!this.#threads) return Promise.resolve(varietyExamples(job.spec, seed, frames, askings, id));
    this.#renderPool ??= new RenderPool(this.#threads);
    return this.#renderPool.run(job);
  }

  async draw(rng: Random, frames: number): Promise<Example> {
    return (await this.drawBatch(rng, frames, 1))[0];
  }

  /** ⌈n / askings⌉ videos, each asked `askings` times (the last one fewer). */
  async drawBatch(rng: Random, frames: number, n: number): Promise<Example[]> {
    return (await this.drawEchoed(rng, frames, n, 1))[0];
  }

  /** As drawBatch, each video asked `askings` times in each of `echo` steps: rendered once, worded anew each time. */
  async drawEchoed(rng: Random, frames: number, n: number, echo: number): Promise<Example[][]> {
    const steps = (pick: (e: number) => Example[]) => Array.from({ length: echo }, (_, e) => pick(e));
    if (this.spec.count) {
      // A fixed pool renders nothing per step: each step picks anew.
      const us = Array.from({ length: n * echo }, () => rng.next());
      this.#pool ??= this.fixed(this.spec.count).then(byCount);
      const pool = await this.#pool;
      return steps((e) => us.slice(e * n, (e + 1) * n).map((u) => fromPool(pool, frames, u)));
    }
    const k = this.spec.askings;
    const seeds = Array.from({ length: Math.ceil(n / k) }, () => rng.int(0, 2 ** 31));
    const videos = await Promise.all(
      seeds.map((seed, i) => this.#render(seed, frames, Math.min(k, n - i * k) * echo, 'stream')),
    );
    // Step e takes each video's askings e·a … (e+1)·a − 1 (a video's forms alternate from one asking to the next).
    return steps((e) =>
      videos.flatMap((v) => {
        const a = v.length / echo;
        return v.slice(e * a, (e + 1) * a);
      }),
    );
  }

  /** `count` videos (lengths by weight) from the spec's seed, one asking each. */
  async fixed(count: number): Promise<Example[]> {
    const rng = new Random(this.spec.seed);
    const jobs: Promise<Example[]>[] = [];
    for (let i = 0; i < (count || this.spec.count); i++) {
      const frames = drawLength(rng, this.lengths);
      jobs.push(this.#render(rng.int(0, 2 ** 31), frames, 1, `item-${i}`));
    }
    return (await Promise.all(jobs)).flat();
  }

  async close(): Promise<void> {
    await this.#renderPool?.close();
    this.#renderPool = null;
  }
}

interface ShardItem {
  file: SafetensorsFile;
  i: number;
  frames: number;
  forms: string[];
  task: string;
}

/** Exported needle shards: every video of every directory, each with its askings (v2: several). */
class ShardSource implements DataSource {
  constructor(
    readonly dirs: string[],
    readonly byLength: Map<number, ShardItem[]>,
    readonly files: SafetensorsFile[],
  ) {}

  static async open(dirs: string[]): Promise<ShardSource> {
    const byLength = new Map<number, ShardItem[]>();
    const files: SafetensorsFile[] = [];
    for (const d of dirs) {
      let index: {
        samples: {
          i: number;
          shard: number;
          frames: number;
          task: string;
          forms?: string[];
          mcq?: boolean;
        }[];
      };
      try {
        index = JSON.parse(await readFile(join(d, 'index.json'), 'utf8'));
      } catch (e) {
        throw new InputError(
          `${d}: no readable index.json (${(e as Error).message}); write the shards with tools/needle/export_training_data.ts`,
        );
      }
      const open = new Map<number, SafetensorsFile>();
      for (const m of index.samples) {
        let f = open.get(m.shard);
        if (!f) {
          f = await SafetensorsFile.open(join(d, `shard-${String(m.shard).padStart(5, '0')}.safetensors`));
          open.set(m.shard, f);
          files.push(f);
        }
        const forms = m.forms ?? [m.mcq ? 'mcq' : 'short'];
        const list = byLength.get(m.frames) ?? [];
        list.push({ file: f, i: m.i, frames: m.frames, forms, task: m.task });
        byLength.set(m.frames, list);
      }
    }
    if (!byLength.size) throw new InputError(`${dirs.join(', ')}: the shards hold no samples`);
    return new ShardSource(dirs, new Map([...byLength].sort((a, b) => a[0] - b[0])), files);
  }

  get description(): string {
    const n = [...this.byLength.values()].reduce((a, l) => a + l.length, 0);
    return `needle shards (${n} videos in ${this.dirs.length} director${this.dirs.length > 1 ? 'ies' : 'y'})`;
  }

  /** Lengths by their share of the videos (as train_needle.py draws them). */
  get lengths() {
    return [...this.byLength].map(([frames, l]) => ({ frames, weight: l.length }));
  }

  async #read(item: ShardItem, variant: number): Promise<Example> {
    const sfx = variant ? `_${variant}` : '';
    const fr = await item.file.read(`${item.i}.frames`);
    const ids = async (k: string) =>
      Array.from((await item.file.read(`${item.i}.${k}${sfx}`)).data as Int32Array);
    const [, height, width] = fr.shape;
    return {
      frames: fr.data as Uint8Array,
      count: fr.shape[0],
      width,
      height,
      prompt: await ids('input_ids'),
      answer: await ids('answer_ids'),
      group: `${item.task}/${item.forms[variant]}`,
    };
  }

  async draw(rng: Random, frames: number): Promise<Example> {
    const items = this.byLength.get(frames);
    if (!items) throw new RangeError(`no ${frames}-frame videos in ${this.description}`);
    const item = rng.pick(items);
    return this.#read(item, rng.int(0, item.forms.length - 1));
  }

  /** Every asking of every video (as train_needle.py evaluates), the first `count` when count > 0. */
  async fixed(count: number): Promise<Example[]> {
    const out: Example[] = [];
    for (const items of this.byLength.values())
      for (const item of items)
        for (let v = 0; v < item.forms.length; v++) {
          if (count && out.length >= count) return out;
          out.push(await this.#read(item, v));
        }
    return out;
  }

  async close(): Promise<void> {
    for (const f of this.files) await f.close();
  }
}

interface JsonlItem {
  video: string;
  question: string;
  answer: string;
}

/** `{video, conversations: [{from: human|user, value}, {from: gpt|assistant, value}, …]}` per line. */
export function parseJsonlLine(line: string, where: string, base: string): JsonlItem {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch (e) {
    throw new InputError(`${where}: not valid JSON (${(e as Error).message})`);
  }
  const o = v as { video?: unknown; conversations?: unknown };
  if (typeof o?.video !== 'string' || !Array.isArray(o.conversations))
    throw new InputError(`${where}: needs "video" (a path) and "conversations" (a list of {from, value})`);
  const turns = o.conversations as { from?: unknown; value?: unknown }[];
  const q = turns.find((t) => t?.from === 'human' || t?.from === 'user');
  const a = turns.find((t) => t?.from === 'gpt' || t?.from === 'assistant');
  if (typeof q?.value !== 'string' || typeof a?.value !== 'string')
    throw new InputError(
      `${where}: "conversations" needs a human turn followed by a gpt turn, each with a "value" string`,
    );
  return {
    video: isAbsolute(o.video) ? o.video : resolve(base, o.video),
    // LLaVA-Video marks the video with <video> (or <image>) in the question: the model's prompt places it.
    question: q.value.replace(/<(video|image)>\n?/g, '').trim(),
    answer: a.value,
  };
}

class JsonlSource implements DataSource {
  readonly lengths;
  constructor(
    readonly spec: Extract<DataSpec, { kind: 'jsonl' }>,
    readonly items: JsonlItem[],
    readonly ctx: DataContext & { tokenizer: Tokenizer },
  ) {
    this.lengths = [{ frames: spec.frames, weight: 1 }];
  }

  static async open(spec: Extract<DataSpec, { kind: 'jsonl' }>, ctx: DataContext): Promise<JsonlSource> {
    if (!ctx.tokenizer)
      throw new InputError("JSONL data needs the model's tokenizer (train from a checkpoint)");
    let text: string;
    try {
      text = await readFile(spec.path, 'utf8');
    } catch (e) {
      throw new InputError(
        `${spec.path}: cannot read the JSONL file (${(e as NodeJS.ErrnoException).code ?? e})`,
      );
    }
    const base = dirname(spec.path);
    const items = text
      .split('\n')
      .map((l, i) => [l, i] as const)
      .filter(([l]) => l.trim())
      .map(([l, i]) => parseJsonlLine(l, `${spec.path}:${i + 1}`, base));
    if (!items.length) throw new InputError(`${spec.path}: no examples`);
    return new JsonlSource(spec, items, { ...ctx, tokenizer: ctx.tokenizer });
  }

  get description(): string {
    return `${this.spec.path} (${this.items.length} videos, ${this.spec.frames} frames at ${this.spec.size}px)`;
  }

  async #load(item: JsonlItem): Promise<Example> {
    const side = this.spec.size;
    const n = this.spec.frames;
    const frames = new Uint8Array(n * side * side * 3);
    let count = 0;
    for await (const batch of decodeFrames(
      item.video,
      { kind: 'uniform', numFrames: n },
      { size: { width: side, height: side } },
    ))
      for (const f of batch) frames.set(f.data, count++ * side * side * 3);
    if (count < 2) throw new InputError(`${item.video}: fewer than 2 frames could be decoded`);
    const even = count - (count % 2);
    const tok = this.ctx.tokenizer;
    return {
      frames: frames.subarray(0, even * side * side * 3),
      count: even,
      width: side,
      height: side,
      prompt: tok.encode(this.ctx.prompt(item.question), { addSpecialTokens: false }),
      answer: tok.encode(`${item.answer}${this.ctx.answerEnd ?? '<|im_end|>'}`, { addSpecialTokens: false }),
      group: 'all',
    };
  }

  async draw(rng: Random): Promise<Example> {
    return this.#load(rng.pick(this.items));
  }

  /** The step's videos picked at once, decoded one after another (not n ffmpeg processes at a time). */
  async drawBatch(rng: Random, _frames: number, n: number): Promise<Example[]> {
    const items = Array.from({ length: n }, () => rng.pick(this.items));
    const out: Example[] = [];
    for (const it of items) out.push(await this.#load(it));
    return out;
  }

  async fixed(count: number): Promise<Example[]> {
    const out: Example[] = [];
    for (const it of this.items.slice(0, count || this.items.length)) out.push(await this.#load(it));
    return out;
  }

  async close(): Promise<void> {}
}
