/**
 * Training recipes: JSON files a user edits (recipes/*.json). `parseRecipe` checks every field — type, range,
 * unknown keys (a typo must not silently fall back to a default) — and names the file and the key at fault.
 * Relative paths in a recipe are relative to the recipe file.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { InputError } from '../errors.js';
import { isObject, type JsonObject } from '../io/json-fields.js';
import { PHRASINGS } from '../needle/phrasings.js';
import { TASKS, type Task } from '../needle/tasks.js';
import type { Variety } from '../needle/variety.js';
import { packageRoot } from '../util/package-root.js';

/** The families a recipe may name; `longshot train` builds a training forward for TRAINABLE_FAMILIES. */
export const RECIPE_FAMILIES = ['vamba', 'qwen2vl', 'timeviper', 'mambamia'] as const;
export const TRAINABLE_FAMILIES: readonly RecipeFamily[] = ['vamba', 'qwen2vl', 'timeviper', 'mambamia'];
export type RecipeFamily = (typeof RECIPE_FAMILIES)[number];

export type DataSpec =
  | {
      kind: 'needle';
      /** Frame counts drawn per step, each with its weight (the share of steps it gets). */
      frames: number[];
      weights: number[];
      size: number;
      tasks: Task[];
      /** The share of draws each task gets, one weight per entry of tasks (all 1 by default). */
      taskWeights: number[];
      /** Needle tokenizer version (1: the shipped v1 models). */
      tokenizer: 1 | 2;
      /** Seed of the stream (the evaluation set uses its own). */
      seed: number;
      /** Videos in the set (evaluation), or the size of a fixed pool the training stream cycles (0: endless). */
      count: number;
      /**
       * 'v1': the generator's plain videos (the shipped v1 models' data). 'v2': src/needle/variety.ts's mix
       * (tools/needle/export_training_data.ts --data v2), narrowed by `phrasing`, `unanswerable`, `scenes`.
       */
      variety: 'v1' | 'v2';
      phrasing: Variety['phrasing'];
      unanswerable: number;
      scenes: Variety['scenes'];
      /** v2: 'varied' frame sizes, needle durations and rates, or 'plain' (112×112 frames, 2-frame needles, 2 fps: cheap to render). */
      geometry: 'varied' | 'plain';
      /** v2: askings per rendered video (each worded anew, short answer and letter alternately) in one step. */
      askings: number;
    }
  | { kind: 'shards'; dirs: string[]; count: number }
  | { kind: 'jsonl'; path: string; frames: number; size: number; count: number };

export interface DistillSpec {
  /** A checkpoint directory of the teacher (same tokenizer). */
  teacher: string;
  topK: number;
  weight: number;
  temperature: number;
}

export interface Recipe {
  name: string;
  /** The file it was read from ('' for one built in code). */
  path: string;
  model: {
    family: RecipeFamily;
    /** 'scratch', or a checkpoint directory to start from. */
    from: string;
    /** config.json of a model trained from scratch. */
    config: JsonObject | null;
    /**
     * Tokenizer of a model from scratch: 'needle-v1', 'needle-v2' or a directory with tokenizer.json. With a
     * checkpoint (optional, '' when absent): the tokenizer to train with instead of the checkpoint's own, its
     * token rows remapped (`remapVocabulary`).
     */
    tokenizer: string;
    /** Build Vamba from a Qwen2-VL checkpoint first, cross-attention copied from self-attention. */
    initCrossAttentionFromSelfAttention: boolean;
    /**
     * A TSTAR from scratch: the Qwen2-VL checkpoint directory whose vision tower and LLM it starts from (the
     * compressor starts fresh), as the MambaMia paper builds TSTAR; '' when absent.
     */
    initFromQwen2VL: string;
  };
  data: { train: DataSpec; eval: DataSpec | null };
  /** Patterns of the names that train (all when null) and of those that stay fixed. */
  train: string[] | null;
  freeze: string[];
  optimizer: { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; clip: number };
  schedule: { steps: number; warmup: number; minRatio: number };
  /**
   * Videos per optimizer step (at `baseFrames` frames: fewer of longer ones), in `accumulate` micro-batches;
   * `checkpoint`: keep no activations of a video's forward, recompute them in backward (memory for time);
   * `echo`: steps that share one draw of videos, each asking them anew (data echoing, where data bounds the rate).
   */
  batch: { videos: number; baseFrames: number | null; accumulate: number; checkpoint: boolean; echo: number };
  precision: 'f32' | 'bf16';
  distill: DistillSpec | null;
  seed: number;
  output: { dir: string; checkpointEvery: number; evalEvery: number; logEvery: number; maxNewTokens: number };
}

/** Reads one object of a recipe; errors read `recipe <file>: <key path> <problem>`. */
class Reader {
  constructor(
    readonly obj: JsonObject,
    readonly file: string,
    /** The object's key path in the recipe ('' at the top). */
    readonly at: string,
    readonly base: string,
  ) {}

  static of(v: unknown, file: string, at: string, base: string): Reader {
    if (!isObject(v))
      throw new InputError(
        `recipe ${file}: ${at || 'the recipe'} must be a JSON object, got ${JSON.stringify(v)}`,
      );
    return new Reader(v, file, at, base);
  }

  key(key: string): string {
    return this.at ? `${this.at}.${key}` : key;
  }

  err(key: string, why: string): InputError {
    return new InputError(`recipe ${this.file}: ${this.key(key)} ${why}`);
  }

  /** Rejects keys outside `known` (a typo), naming them and the allowed ones. */
  only(known: readonly string[]): void {
    const bad = Object.keys(this.obj).filter((k) => !known.includes(k) && !k.startsWith('$'));
    if (bad.length)
      throw new InputError(
        `recipe ${this.file}: unknown key${bad.length > 1 ? 's' : ''} ${bad.map((k) => this.key(k)).join(', ')}; allowed here: ${known.join(', ')}`,
      );
  }

  has(key: string): boolean {
    return this.obj[key] !== undefined && this.obj[key] !== null;
  }

  num(
    key: string,
    fallback?: number,
    opts: { min?: number; max?: number; int?: boolean; above?: number } = {},
  ): number {
    const v = this.obj[key] ?? fallback;
    if (v === undefined) throw this.err(key, 'is required');
    if (typeof v !== 'number' || !Number.isFinite(v))
      throw this.err(key, `must be a number, got ${JSON.stringify(v)}`);
    if (opts.int && !Number.isSafeInteger(v)) throw this.err(key, `must be an integer, got ${v}`);
    if (opts.min !== undefined && v < opts.min) throw this.err(key, `must be at least ${opts.min}, got ${v}`);
    if (opts.above !== undefined && v <= opts.above)
      throw this.err(key, `must be greater than ${opts.above}, got ${v}`);
    if (opts.max !== undefined && v > opts.max) throw this.err(key, `must be at most ${opts.max}, got ${v}`);
    return v;
  }

  int(key: string, fallback?: number, min = 0): number {
    return this.num(key, fallback, { int: true, min });
  }

  str(key: string, fallback?: string): string {
    const v = this.obj[key] ?? fallback;
    if (v === undefined) throw this.err(key, 'is required');
    if (typeof v !== 'string' || !v)
      throw this.err(key, `must be a non-empty string, got ${JSON.stringify(v)}`);
    return v;
  }

  oneOf<T extends string | number>(key: string, choices: readonly T[], fallback?: T): T {
    const v = this.obj[key] ?? fallback;
    if (!choices.includes(v as T))
      throw this.err(
        key,
        `must be one of ${choices.map((c) => JSON.stringify(c)).join(', ')}, got ${JSON.stringify(v)}`,
      );
    return v as T;
  }

  bool(key: string, fallback: boolean): boolean {
    const v = this.obj[key] ?? fallback;
    if (typeof v !== 'boolean') throw this.err(key, `must be true or false, got ${JSON.stringify(v)}`);
    return v;
  }

  list<T>(key: string, item: (v: unknown, where: string) => T, fallback?: T[]): T[] {
    const v = this.obj[key];
    if (v === undefined || v === null) {
      if (fallback) return fallback;
      throw this.err(key, 'is required');
    }
    if (!Array.isArray(v) || !v.length)
      throw this.err(key, `must be a non-empty list, got ${JSON.stringify(v)}`);
    return v.map((x, i) => item(x, `recipe ${this.file}: ${this.key(key)}[${i}]`));
  }

  path(key: string, fallback?: string): string {
    const p = this.str(key, fallback);
    return isAbsolute(p) ? p : resolve(this.base, p);
  }

  sub(key: string, required = true): Reader | null {
    const v = this.obj[key];
    if (v === undefined || v === null) {
      if (required) throw this.err(key, 'is required');
      return null;
    }
    return Reader.of(v, this.file, this.key(key), this.base);
  }
}

const posInt = (v: unknown, where: string): number => {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1)
    throw new InputError(`${where} must be a positive integer, got ${JSON.stringify(v)}`);
  return v;
};
const nonNegative = (v: unknown, where: string): number => {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0)
    throw new InputError(`${where} must be a number ≥ 0, got ${JSON.stringify(v)}`);
  return v;
};
const nonEmpty = (v: unknown, where: string): string => {
  if (typeof v !== 'string' || !v)
    throw new InputError(`${where} must be a non-empty string, got ${JSON.stringify(v)}`);
  return v;
};

/** `key`: one non-negative weight per entry of the list `of` (n entries; all 1 when absent), one above 0. */
function sharesOf(r: Reader, key: string, of: string, n: number): number[] {
  const w = r.list(
    key,
    nonNegative,
    Array.from({ length: n }, () => 1),
  );
  if (w.length !== n) throw r.err(key, `must give one weight per entry of ${of} (${n}), got ${w.length}`);
  if (!w.some((x) => x > 0)) throw r.err(key, 'must hold a weight above 0');
  return w;
}

function dataSpec(r: Reader, evalSet: boolean): DataSpec {
  const kind = r.oneOf('kind', ['needle', 'shards', 'jsonl'] as const);
  if (kind === 'needle') {
    r.only([
      'kind',
      'frames',
      'weights',
      'size',
      'tasks',
      'taskWeights',
      'tokenizer',
      'seed',
      'count',
      'variety',
      'phrasing',
      'unanswerable',
      'scenes',
      'geometry',
      'askings',
    ]);
    const size = r.int('size', 112, 28);
    if (size % 28) throw r.err('size', `must be a multiple of 28 (two 14-pixel patches), got ${size}`);
    const frames = r.list('frames', posInt);
    const odd = frames.find((f) => f % 2);
    if (odd !== undefined) throw r.err('frames', `must be even (frames pair up in time), got ${odd}`);
    const weights = sharesOf(r, 'weights', 'frames', frames.length);
    const tasks = r.list(
      'tasks',
      (v, w) => {
        if (!TASKS.includes(v as Task))
          throw new InputError(`${w} must be one of ${TASKS.join(', ')}, got ${JSON.stringify(v)}`);
        return v as Task;
      },
      [...TASKS],
    );
    const taskWeights = sharesOf(r, 'taskWeights', 'tasks', tasks.length);
    const variety = r.oneOf('variety', ['v1', 'v2'] as const, 'v1');
    const v2 = variety === 'v2';
    for (const k of ['phrasing', 'unanswerable', 'scenes', 'geometry', 'askings'])
      if (!v2 && r.has(k)) throw r.err(k, 'is only for "variety": "v2"');
    return {
      kind,
      frames,
      weights,
      size,
      variety,
      phrasing: r.oneOf('phrasing', ['mix', ...PHRASINGS] as const, 'mix'),
      unanswerable: r.num('unanswerable', 0.2, { min: 0, max: 1 }),
      scenes: r.oneOf('scenes', ['generator', 'varied', 'patterns', 'mix'] as const, 'mix'),
      geometry: r.oneOf('geometry', ['varied', 'plain'] as const, 'varied'),
      askings: r.int('askings', 1, 1),
      tasks,
      taskWeights,
      // v2 questions use words only tokenizer version 2 holds.
      tokenizer: r.oneOf('tokenizer', [1, 2] as const, v2 ? 2 : 1),
      seed: r.int('seed', evalSet ? 9001 : 1000),
      count: r.int('count', evalSet ? 50 : 0, evalSet ? 1 : 0),
    };
  }
  if (kind === 'shards') {
    r.only(['kind', 'dirs', 'count']);
    return {
      kind,
      dirs: r.list('dirs', nonEmpty).map((d) => (isAbsolute(d) ? d : resolve(r.base, d))),
      count: r.int('count', 0),
    };
  }
  r.only(['kind', 'path', 'frames', 'size', 'count']);
  // The model's processor resizes further (Qwen2-VL: to multiples of 28 within its pixel bounds).
  const size = r.int('size', 448, 28);
  const frames = r.int('frames', 32, 2);
  if (frames % 2) throw r.err('frames', `must be even, got ${frames}`);
  return { kind, path: r.path('path'), frames, size, count: r.int('count', 0) };
}

/** Checks a parsed recipe object (`where` names it in errors; relative paths resolve against `base`). */
export function parseRecipe(json: unknown, where: string, base: string): Recipe {
  const r = Reader.of(json, where, '', base);
  r.only([
    'name',
    'model',
    'data',
    'train',
    'freeze',
    'optimizer',
    'schedule',
    'batch',
    'precision',
    'distill',
    'seed',
    'output',
  ]);
  const m = r.sub('model')!;
  m.only(['family', 'from', 'config', 'tokenizer', 'initCrossAttentionFromSelfAttention', 'initFromQwen2VL']);
  const family = m.oneOf('family', RECIPE_FAMILIES);
  const fromScratch = m.str('from') === 'scratch';
  const config = m.obj.config;
  if (fromScratch && !isObject(config))
    throw m.err('config', 'is required when "from" is "scratch": the config.json of the model to build');
  if (!fromScratch && config !== undefined)
    throw m.err('config', 'is only for "from": "scratch" (a checkpoint brings its own config.json)');
  // From a checkpoint, a tokenizer is optional: the checkpoint's token rows move to its ids (src/train/vocab.ts).
  const tokenizer = fromScratch
    ? m.str('tokenizer', 'needle-v1')
    : m.has('tokenizer')
      ? m.str('tokenizer')
      : '';
  if (m.bool('initCrossAttentionFromSelfAttention', false) && family !== 'vamba')
    throw m.err('initCrossAttentionFromSelfAttention', 'builds a Vamba: it needs "family": "vamba"');
  if (m.has('initFromQwen2VL') && family !== 'mambamia')
    throw m.err(
      'initFromQwen2VL',
      `starts a TSTAR-MambaMia's vision tower and LLM from a Qwen2-VL checkpoint: it needs "family": "mambamia", got "${family}"`,
    );
  if (m.has('initFromQwen2VL') && !fromScratch)
    throw m.err(
      'initFromQwen2VL',
      'is only for "from": "scratch" (it fills the new model\'s vision tower and LLM; a checkpoint in "from" brings its own); set "from" to "scratch" with a "config", or drop initFromQwen2VL',
    );
  const d = r.sub('data')!;
  d.only(['train', 'eval']);
  const ev = d.sub('eval', false);
  const o = r.sub('optimizer')!;
  o.only(['lr', 'betas', 'eps', 'weightDecay', 'clip']);
  const betas = o.list(
    'betas',
    (v, w) => {
      if (typeof v !== 'number' || !(v >= 0 && v < 1))
        throw new InputError(`${w} must be in [0, 1), got ${JSON.stringify(v)}`);
      return v;
    },
    [0.9, 0.999],
  );
  if (betas.length !== 2) throw o.err('betas', `must be two numbers [β1, β2], got ${betas.length}`);
  const s = r.sub('schedule')!;
  s.only(['steps', 'warmup', 'minRatio']);
  const b = r.sub('batch')!;
  b.only(['videos', 'baseFrames', 'accumulate', 'checkpoint', 'echo']);
  const videos = b.int('videos', undefined, 1);
  const accumulate = b.int('accumulate', 1, 1);
  if (accumulate > videos)
    throw b.err('accumulate', `(${accumulate}) cannot exceed batch.videos (${videos})`);
  const dist = r.sub('distill', false);
  dist?.only(['teacher', 'topK', 'weight', 'temperature']);
  const out = r.sub('output')!;
  out.only(['dir', 'checkpointEvery', 'evalEvery', 'logEvery', 'maxNewTokens']);
  const patterns = (key: 'train' | 'freeze') => (r.has(key) ? r.list(key, nonEmpty) : null);
  const steps = s.int('steps', undefined, 1);
  return {
    name: r.str('name'),
    path: where,
    model: {
      family,
      from: fromScratch ? 'scratch' : m.path('from'),
      config: fromScratch ? (config as JsonObject) : null,
      tokenizer: tokenizer.startsWith('needle-') || !tokenizer ? tokenizer : m.path('tokenizer'),
      initCrossAttentionFromSelfAttention: m.bool('initCrossAttentionFromSelfAttention', false),
      initFromQwen2VL: m.has('initFromQwen2VL') ? m.path('initFromQwen2VL') : '',
    },
    data: { train: dataSpec(d.sub('train')!, false), eval: ev ? dataSpec(ev, true) : null },
    train: patterns('train'),
    freeze: patterns('freeze') ?? [],
    optimizer: {
      lr: o.num('lr', undefined, { above: 0 }),
      beta1: betas[0],
      beta2: betas[1],
      eps: o.num('eps', 1e-8, { above: 0 }),
      weightDecay: o.num('weightDecay', 0, { min: 0 }),
      clip: o.num('clip', 1, { min: 0 }),
    },
    schedule: { steps, warmup: s.int('warmup', 0), minRatio: s.num('minRatio', 0, { min: 0, max: 1 }) },
    batch: {
      videos,
      baseFrames: b.has('baseFrames') ? b.int('baseFrames', undefined, 1) : null,
      accumulate,
      checkpoint: b.bool('checkpoint', false),
      echo: b.int('echo', 1, 1),
    },
    precision: r.oneOf('precision', ['f32', 'bf16'] as const, 'bf16'),
    distill: dist
      ? {
          teacher: dist.path('teacher'),
          topK: dist.int('topK', 100, 1),
          weight: dist.num('weight', 1, { min: 0 }),
          temperature: dist.num('temperature', 1, { above: 0 }),
        }
      : null,
    seed: r.int('seed', 0),
    output: {
      dir: out.path('dir'),
      checkpointEvery: out.int('checkpointEvery', steps, 1),
      evalEvery: out.int('evalEvery', steps, 1),
      logEvery: out.int('logEvery', 10, 1),
      maxNewTokens: out.int('maxNewTokens', 6, 1),
    },
  };
}

/** Reads and checks a recipe file; a missing file or bad JSON is an InputError naming it. */
export async function readRecipe(path: string): Promise<Recipe> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new InputError(
      `recipe ${path}: cannot read it (${(e as NodeJS.ErrnoException).code ?? e}); the shipped recipes are in recipes/`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new InputError(`recipe ${path}: not valid JSON (${(e as Error).message})`);
  }
  return parseRecipe(json, path, dirname(resolve(path)));
}

/** The recipes shipped in the package (recipes/*.json), by name. */
export const SHIPPED_RECIPES = join(packageRoot(), 'recipes');

/**
 * Reads the recipe `arg` names: a file, or, where no such file exists, the name of a shipped recipe (`needle-vamba`,
 * `vamba-stage1`, …). A shipped recipe's outputs go to `runs/<name>` under the working directory, not into the
 * package.
 */
export async function openRecipe(arg: string): Promise<Recipe> {
  const name = arg.replace(/\.json$/, '');
  if (existsSync(arg) || !/^[\w-]+$/.test(name) || !existsSync(join(SHIPPED_RECIPES, `${name}.json`)))
    return readRecipe(arg);
  const recipe = await readRecipe(join(SHIPPED_RECIPES, `${name}.json`));
  return { ...recipe, output: { ...recipe.output, dir: resolve('runs', recipe.name) } };
}
