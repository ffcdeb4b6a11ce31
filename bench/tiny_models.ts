/**
 * The table of tiny needle models (issues 18, 19, 27): every shipped tiny model present in models/
 * (needle-vamba-tiny, needle-qwen2vl-tiny, needle-timeviper-tiny, needle-mambamia-tiny) answering held-out needle
 * sets with the TypeScript stack on the CPU at 1×, 4× and 16× the trained length (they trained on 16–64 frames;
 * 1× is 32). Per model and length: accuracy (short answer and option letter, as `longshot needle eval`), video
 * tokens per video as the model's usage reports them, seconds per question (decoding and encoding the video
 * counted once for its two questions) and peak memory (the process's peak RSS, and the peak of live tensors).
 *
 * The sets come from the needle generator (112×112, 2 fps, --not-shown 0 as tools/needle/heldout_sets.sh) with
 * seed 9300 + log2(frames) — 9305 for 32 frames, 9307 for 128, 9309 for 512 — which no training or held-out set
 * uses (training 1000–1013, 2000–2013, 2100–2103; held out 9101–9107, 9201–9207). They are written once to
 * --data and reused. Each model and length runs in its own process, so its peak RSS is its own; lengths run
 * shortest first, every model at one length before the next, and rows past --budget seconds are marked skipped.
 *
 *   node --import tsx bench/tiny_models.ts                 # defaults: ≤ 15 minutes on 2 cores
 *   node --import tsx bench/tiny_models.ts --tiny          # a smoke run (16/32 frames, one video each)
 *   options: --models dir,dir (default: the shipped ones present) --lengths 32,128,512
 *            --count 12,6,2 (videos per length, or one number for all; 2 questions per video)
 *            --frames decode|render (decode the MP4s, or draw the frames again from the records)
 *            --budget 840 (s) --data <dir> (where the sets are written) --out <dir> (tiny_models.{json,md})
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import '../src/backends/cpu/index.js';
import { findTools } from '../src/media/ffmpeg.js';
import { generateDataset } from '../src/needle/dataset.js';
import { evaluateNeedle } from '../src/needle/eval.js';

/** The shipped tiny needle models, in table order. */
export const TINY_MODELS = ['vamba', 'qwen2vl', 'timeviper', 'mambamia'].map(
  (m) => `models/needle-${m}-tiny`,
);
/** 1× of the trained range 16–64 frames. */
export const TRAINED_FRAMES = 32;

export interface Row {
  model: string;
  architecture: string | null;
  frames: number;
  /** frames / TRAINED_FRAMES. */
  multiple: number;
  status: 'ok' | 'skipped' | 'failed';
  note?: string;
  videos?: number;
  correct?: number;
  total?: number;
  accuracy?: number;
  videoTokens?: number;
  secondsPerQuestion?: number;
  peakRssMiB?: number;
  peakTensorMiB?: number;
}

/** The seed of the held-out set of `frames`-frame videos (9300 + log2 frames: used by nothing else). */
export const setSeed = (frames: number): number => 9300 + Math.round(Math.log2(frames));

/** `n` or `a,b,c` → one count per length. */
export function countsFor(spec: string, lengths: readonly number[]): number[] {
  const parts = spec.split(',').map(Number);
  if (
    parts.some((n) => !Number.isInteger(n) || n < 1) ||
    (parts.length !== 1 && parts.length !== lengths.length)
  )
    throw new Error(`--count ${spec}: one positive count, or one per length (${lengths.length})`);
  return lengths.map((_, i) => parts[parts.length === 1 ? 0 : i]);
}

const pct = (r: Row) =>
  r.total ? `${(100 * (r.accuracy ?? 0)).toFixed(1)}% (${r.correct}/${r.total})` : '–';

/** The Markdown table of the rows. */
export function markdownTable(rows: readonly Row[], header: string): string {
  const lines = [
    header,
    '',
    '| model | frames (× trained) | accuracy | video tokens / video | s / question | peak RSS (MiB) | peak tensors (MiB) |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    const name = `${basename(r.model)}${r.architecture ? ` (${r.architecture})` : ''}`;
    const size = `${r.frames} (${r.multiple}×)`;
    if (r.status !== 'ok') {
      lines.push(`| ${name} | ${size} | ${r.status}: ${r.note ?? ''} | | | | |`);
      continue;
    }
    lines.push(
      `| ${name} | ${size} | ${pct(r)} | ${r.videoTokens} | ${r.secondsPerQuestion?.toFixed(2)} | ${r.peakRssMiB} | ${r.peakTensorMiB} |`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/** Writes the held-out set of `count` videos of `frames` frames under `root` (once) and returns its directory. */
async function heldOutSet(root: string, frames: number, count: number): Promise<string> {
  const out = join(root, `${frames}f-seed${setSeed(frames)}-n${count}`);
  if (existsSync(join(out, 'questions.jsonl'))) return out;
  await generateDataset({
    out,
    count,
    seed: setSeed(frames),
    lengths: [frames],
    fps: 2,
    width: 112,
    height: 112,
    needleFrames: 2,
    notShown: 0,
    ffmpegPath: findTools().ffmpeg,
  });
  return out;
}

interface WorkerJob {
  model: string;
  data: string;
  frames: 'decode' | 'render';
}

/** One model on one set, in this process: the length's row, and the process's peak RSS. */
async function runWorker(job: WorkerJob): Promise<Partial<Row>> {
  const report = await evaluateNeedle({ model: job.model, data: job.data, frames: job.frames });
  const [row] = Object.values(report.byLength);
  return {
    architecture: report.architecture,
    videos: row.videos,
    correct: row.correct,
    total: row.total,
    accuracy: row.accuracy,
    videoTokens: row.videoTokens,
    secondsPerQuestion: row.secondsPerVideo / 2,
    // maxRSS is in KiB: the whole child's peak, model loading included.
    peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
    peakTensorMiB: row.peakTensorMiB,
  };
}

/** Runs a worker process, killed after `limitS`; its last stdout line is the row's JSON. */
function spawnWorker(job: WorkerJob, limitS: number): Promise<Partial<Row>> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', import.meta.filename, '--worker', JSON.stringify(job)],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), limitS * 1000);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (signal) return reject(new Error(`stopped after ${Math.round(limitS)} s (the budget)`));
      if (code !== 0)
        return reject(new Error(stderr.trim().split('\n').slice(-3).join(' ') || `exit ${code}`));
      resolve(JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}'));
    });
  });
}

async function main(): Promise<void> {
  const { values: a } = parseArgs({
    options: {
      tiny: { type: 'boolean', default: false },
      models: { type: 'string' },
      lengths: { type: 'string' },
      count: { type: 'string' },
      frames: { type: 'string', default: 'decode' },
      budget: { type: 'string' },
      data: { type: 'string' },
      out: { type: 'string' },
      worker: { type: 'string' },
    },
  });
  if (a.worker) {
    process.stdout.write(`${JSON.stringify(await runWorker(JSON.parse(a.worker)))}\n`);
    return;
  }
  const lengths = (a.lengths ?? (a.tiny ? '16,32' : '32,128,512')).split(',').map(Number);
  if (lengths.some((n) => !Number.isInteger(n) || n < 16))
    throw new Error(`--lengths ${a.lengths}: frame counts of at least 16`);
  const counts = countsFor(a.count ?? (a.tiny ? '1' : '12,6,2'), lengths);
  const frames = a.frames === 'render' ? 'render' : 'decode';
  const budget = Number(a.budget ?? 840);
  const models = (a.models?.split(',') ?? TINY_MODELS).filter((m) => {
    const there = existsSync(join(m, 'config.json'));
    if (!there) console.error(`${m}: not present, left out`);
    return there;
  });
  if (!models.length) throw new Error('no model to evaluate (see --models)');
  const data = a.data ?? join(tmpdir(), 'longshot-tiny-models');
  const out = a.out ?? (a.tiny ? join(tmpdir(), 'tiny_models_smoke') : 'docs/benchmarks');
  const t0 = performance.now();
  const elapsed = () => (performance.now() - t0) / 1000;

  const rows: Row[] = [];
  for (const [i, n] of lengths.entries()) {
    const set = await heldOutSet(data, n, counts[i]);
    console.error(`${n} frames: ${counts[i]} videos in ${set} (${elapsed().toFixed(0)} s)`);
    for (const model of models) {
      const row: Row = {
        model,
        architecture: null,
        frames: n,
        multiple: n / TRAINED_FRAMES,
        status: 'ok',
      };
      rows.push(row);
      const left = budget - elapsed();
      if (left <= 5) {
        Object.assign(row, { status: 'skipped', note: `the ${budget} s budget ran out` });
        continue;
      }
      try {
        Object.assign(row, await spawnWorker({ model, data: set, frames }, left));
      } catch (e) {
        Object.assign(row, { status: 'failed', note: (e as Error).message.replaceAll('|', '/') });
      }
      console.error(`  ${basename(model)}: ${row.status === 'ok' ? pct(row) : row.note}`);
    }
  }

  await mkdir(out, { recursive: true });
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}`;
  const header = `Tiny needle models on the CPU backend (${machine}), held-out sets of ${lengths.join(' / ')} frames (${counts.join(' / ')} videos, 2 questions each, frames ${frames === 'decode' ? 'decoded from the MP4s' : 'rendered from the records'}); trained on 16–64 frames (1× = ${TRAINED_FRAMES}). ${elapsed().toFixed(0)} s in all.`;
  const result = {
    date: new Date().toISOString(),
    machine,
    options: { lengths, counts, frames, budget, seeds: lengths.map(setSeed) },
    seconds: Math.round(elapsed()),
    rows,
  };
  await writeFile(join(out, 'tiny_models.json'), `${JSON.stringify(result, null, 1)}\n`);
  const table = markdownTable(rows, header);
  await writeFile(join(out, 'tiny_models.md'), table);
  process.stdout.write(table);
}

// Run as a script (the test imports the table functions).
if (process.argv[1] && resolve(process.argv[1]) === import.meta.filename) await main();
