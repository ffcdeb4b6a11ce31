/**
 * What every benchmark provides: a reader of its data as published, its official prompt per item, its
 * official answer parsing and its metrics. The runner (run.ts) and the CLI know benchmarks only through this.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { InputError } from '../errors.js';
import type { SamplingOptions } from '../facade/types.js';
import type { Clip } from '../media/index.js';
import { Random } from '../util/random.js';

/** One question of a benchmark, read from its annotation files. */
export interface BenchItem {
  /** Unique within the benchmark (the predictions JSONL is keyed by it). */
  id: string;
  /** The video file, absolute. */
  video: string;
  /** The question stem, without the options. */
  question: string;
  /** The option texts, without their letters (empty for grounding). */
  options: string[];
  /** The gold letter (multiple choice) or "start,end" in seconds (grounding). */
  answer: string;
  /** Category values for the per-category breakdowns (a list: the item counts in each). */
  groups: Record<string, string | string[]>;
  /** The benchmark's official prompt, text only (the video goes first, as every reference harness puts it). */
  prompt: string;
  /** Only this stretch of the video is asked about (MVBench's `start`/`end`). */
  clip?: Clip;
  /** `video` is a folder of numbered JPEG frames (`00001.jpg` …) at this rate, not a file (MVBench's TVQA). */
  frameFolderFps?: number;
  /** Fields only some benchmarks read when scoring (video duration, the circular-evaluation sample). */
  extra?: Record<string, string | number>;
}

/** One group value's tally. */
export interface Tally {
  correct: number;
  total: number;
  /** Percent, as the papers report. */
  score: number;
}

export interface Scores {
  /** Headline metrics (percent), the first being the benchmark's main number. */
  metrics: Record<string, number>;
  /** Per category field, per value. */
  breakdown: Record<string, Record<string, Tally>>;
}

export interface Benchmark {
  name: string;
  /** The annotation files and folders `--data` must hold, for messages and docs. */
  layout: string;
  /** Longest answer the official harness generates. */
  maxNewTokens: number;
  read(dir: string): Promise<BenchItem[]>;
  /** The official parse of a response: a letter, or "start,end"; "" when unparsed. */
  parse(response: string, item: BenchItem): string;
  score(
    items: readonly BenchItem[],
    parsed: ReadonlyMap<string, string>,
    raw: ReadonlyMap<string, string>,
  ): Scores;
}

/**
 * What a model family changes for one item (its own evaluation's prompt, sampling or parsing); unset fields
 * keep the benchmark's official choice.
 */
export interface EvalPrompt {
  text: string;
  sampling?: SamplingOptions;
  maxNewTokens?: number;
  /** The family's own answer parsing, when its published numbers used one. */
  parse?: (response: string) => string;
}

/** The evaluation hook of a model family (ModelFamily.evaluation): undefined keeps the official prompt. */
export interface FamilyEvaluation {
  prompt(benchmark: string, item: BenchItem): EvalPrompt | undefined;
}

export const LETTERS = 'ABCDEFGH';
export const letterOf = (i: number): string => LETTERS[i];

/** "question\nA. opt\nB. opt…" — the option block most harnesses use. */
export const lettered = (options: readonly string[], sep = '. '): string =>
  options.map((o, i) => `${letterOf(i)}${sep}${o}`).join('\n');

export const MCQ_INSTRUCTION = "Answer with the option's letter from the given choices directly.";

/** An annotation file's text, or an InputError naming the benchmark, the file and where to get it. */
export function readText(path: string, bench: string, advice: string): Promise<string> {
  return readFile(path, 'utf8').catch(() => {
    throw new InputError(`${bench}: cannot read ${path}; ${advice}`);
  });
}

export async function readJson<T>(path: string, what: string): Promise<T> {
  const text = await readFile(path, 'utf8').catch(() => {
    throw new InputError(`cannot read ${path}: ${what}`);
  });
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new InputError(`${path} is not valid JSON: ${what}`);
  }
}

/** The first existing path among `candidates`, or an error naming where it looked. */
export function findVideo(candidates: readonly string[], bench: string): string {
  const found = candidates.find((c) => existsSync(c));
  if (!found)
    throw new InputError(
      `${bench}: video not found at ${candidates.join(' or ')}; check --data points at the extracted release`,
    );
  return found;
}

/** Checks that `value` is a string field of an annotation record. */
export function field(record: Record<string, unknown>, key: string, where: string): string {
  const v = record[key];
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return String(v);
  throw new InputError(
    `${where}: missing field '${key}'; is this the benchmark's published annotation file?`,
  );
}

const pct = (correct: number, total: number) => (total ? (100 * correct) / total : 0);

/** Adds one outcome to the tally of `key`. */
export function count(tallies: Record<string, Tally>, key: string, ok: boolean): void {
  const t = tallies[key] ?? { correct: 0, total: 0, score: 0 };
  t.total++;
  if (ok) t.correct++;
  t.score = pct(t.correct, t.total);
  tallies[key] = t;
}

/** Accuracy per value of each category field. */
export function breakdownOf(
  items: readonly BenchItem[],
  correct: (item: BenchItem) => boolean,
): Record<string, Record<string, Tally>> {
  const out: Record<string, Record<string, Tally>> = {};
  for (const item of items)
    for (const [key, value] of Object.entries(item.groups))
      for (const v of Array.isArray(value) ? value : [value]) {
        out[key] ??= {};
        count(out[key], v, correct(item));
      }
  return out;
}

/** Plain accuracy of parsed letters against gold letters, with the breakdowns. */
export function accuracyScores(
  items: readonly BenchItem[],
  parsed: ReadonlyMap<string, string>,
  metric = 'accuracy',
): Scores {
  const ok = (i: BenchItem) => parsed.get(i.id) === i.answer;
  return {
    metrics: { [metric]: pct(items.filter(ok).length, items.length) },
    breakdown: breakdownOf(items, ok),
  };
}

/** The mean of the per-value scores of one category (MLVU's M-avg, VNBench's group means). */
export const meanOf = (tallies: Record<string, Tally>): number => {
  const v = Object.values(tallies);
  return v.length ? v.reduce((s, t) => s + t.score, 0) / v.length : 0;
};

/**
 * The random letter lmms-eval draws for an unparsable answer (NExT-QA, LongVideoBench), seeded by the item
 * so a rerun or a resumed run scores the same.
 */
export function randomLetter(itemId: string, count: number): string {
  let h = 2166136261;
  for (const c of itemId) h = Math.imul(h ^ c.charCodeAt(0), 16777619);
  return letterOf(new Random(h).int(0, count - 1));
}
