/**
 * A benchmark run that survives interruption: each answer is appended to a predictions JSONL as it comes, a
 * rerun skips the items already there; `shard` splits the items across processes (item k goes to shard
 * k mod n), `limit` keeps the first items of the shard. Scoring reads the raw answers back, so a run can be
 * re-scored without the model.
 */
import { createHash } from 'node:crypto';
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { InputError } from '../errors.js';
import type { SamplingOptions } from '../facade/types.js';
import { imageSequenceVideo } from '../media/index.js';
import type { BenchItem, Benchmark, FamilyEvaluation, Scores } from './benchmark.js';

/** The prompt, sampling and parsing an item is asked with. */
export interface ItemRequest {
  text: string;
  sampling: SamplingOptions;
  maxNewTokens: number;
  parse: (response: string) => string;
}

/** Answers one item (in process, or over HTTP). */
export interface Responder {
  answer(item: BenchItem, request: ItemRequest): Promise<string>;
}

export interface Prediction {
  id: string;
  response: string;
}

export interface RunOptions {
  benchmark: Benchmark;
  items: readonly BenchItem[];
  responder: Responder;
  /** The JSONL answers are appended to (and resumed from). */
  predictions: string;
  family?: FamilyEvaluation;
  sampling?: SamplingOptions;
  maxNewTokens?: number;
  limit?: number;
  shard?: { index: number; count: number };
  onProgress?: (done: number, total: number) => void;
}

export interface RunResult {
  items: BenchItem[];
  scores: Scores;
  parsed: Map<string, string>;
  raw: Map<string, string>;
}

/** The items of one shard, limited. */
export function selectItems(
  items: readonly BenchItem[],
  shard?: RunOptions['shard'],
  limit?: number,
): BenchItem[] {
  const mine = shard ? items.filter((_, k) => k % shard.count === shard.index) : [...items];
  return mine.slice(0, limit ?? mine.length);
}

/** The request for an item: the family's own prompt where it has one, else the benchmark's official one. */
export function requestFor(
  o: Pick<RunOptions, 'benchmark' | 'family' | 'sampling' | 'maxNewTokens'>,
  item: BenchItem,
): ItemRequest {
  const own = o.family?.prompt(o.benchmark.name, item);
  return {
    text: own?.text ?? item.prompt,
    sampling: { ...own?.sampling, ...o.sampling },
    maxNewTokens: o.maxNewTokens ?? own?.maxNewTokens ?? o.benchmark.maxNewTokens,
    parse: own?.parse ?? ((r) => o.benchmark.parse(r, item)),
  };
}

export async function readPredictions(path: string): Promise<Map<string, string>> {
  const text = await readFile(path, 'utf8').catch(() => '');
  const done = new Map<string, string>();
  for (const [n, line] of text.split('\n').entries()) {
    if (!line.trim()) continue;
    try {
      const p = JSON.parse(line) as Prediction;
      if (typeof p.id === 'string' && typeof p.response === 'string') done.set(p.id, p.response);
    } catch {
      // An interrupted write leaves a partial last line: that item is simply asked again.
      if (n < text.split('\n').length - 2)
        throw new InputError(`${path}:${n + 1}: not valid JSON; delete the line or the file to start over`);
    }
  }
  return done;
}

/**
 * The item with a video file to read: a frame folder becomes a Matroska file (its JPEGs copied) kept beside
 * the predictions under frame-videos/, made once and reused by reruns, shards and endpoint servers.
 */
async function playable(item: BenchItem, predictions: string): Promise<BenchItem> {
  if (item.frameFolderFps === undefined) return item;
  const dir = join(dirname(predictions), 'frame-videos');
  await mkdir(dir, { recursive: true });
  const tag = createHash('sha256').update(item.video).digest('hex').slice(0, 12);
  const out = join(dir, `${basename(item.video)}-${tag}.mkv`);
  return { ...item, video: await imageSequenceVideo(item.video, item.frameFolderFps, out) };
}

export async function runBenchmark(o: RunOptions): Promise<RunResult> {
  const items = selectItems(o.items, o.shard, o.limit);
  await mkdir(dirname(o.predictions), { recursive: true });
  const raw = await readPredictions(o.predictions);
  const text = await readFile(o.predictions, 'utf8').catch(() => '');
  if (text && !text.endsWith('\n')) await appendFile(o.predictions, '\n'); // after a partial last line
  let done = items.filter((i) => raw.has(i.id)).length;
  o.onProgress?.(done, items.length);
  for (const item of items) {
    if (raw.has(item.id)) continue;
    const response = await o.responder.answer(await playable(item, o.predictions), requestFor(o, item));
    await appendFile(o.predictions, `${JSON.stringify({ id: item.id, response } satisfies Prediction)}\n`);
    raw.set(item.id, response);
    o.onProgress?.(++done, items.length);
  }
  const parsed = new Map(items.map((i) => [i.id, requestFor(o, i).parse(raw.get(i.id) ?? '')]));
  return { items, scores: o.benchmark.score(items, parsed, raw), parsed, raw };
}
