import '../../backends/cpu/index.js';
import '../../backends/cuda/index.js';
import { type Command, Option } from 'commander';
import { UsageError } from '../../errors.js';
import { VNBENCH_TASKS } from '../../eval/benchmarks/vnbench.js';
import { generateVNBench, type VNBenchTask } from '../../eval/vnbench-generate.js';
import { findTools } from '../../media/index.js';
import { generateDataset } from '../../needle/dataset.js';
import { type EvalReport, evaluateNeedle, formatReport, formatSetTable } from '../../needle/eval.js';
import { HAYSTACKS, type Haystack } from '../../needle/lavfi.js';
import { PHRASINGS, type Phrasing } from '../../needle/phrasings.js';
import { type Background, PATTERN_BACKGROUNDS, VARIED_BACKGROUNDS } from '../../needle/scene.js';
import { fitsNeedles, neededNeedles, TASKS, type Task } from '../../needle/tasks.js';
import { resolveDevice } from '../../runtime/device.js';

/** Option values are checked here, so a bad one is a usage error (exit 2) that names the option. */
const isCount = (s: string) => s.trim() !== '' && Number.isInteger(Number(s)) && Number(s) >= 1;

const int = (name: string, v: string): number => {
  if (!isCount(String(v))) throw new UsageError(`${name} expects a positive integer, got '${v}'`);
  return Number(v);
};

const intList = (name: string, v: string): number[] => {
  const parts = String(v).split(',');
  if (!parts.every(isCount))
    throw new UsageError(`${name} expects positive integers separated by commas, got '${v}'`);
  return parts.map(Number);
};

function seedOf(v: string): number {
  const n = Number(v);
  if (String(v).trim() === '' || !Number.isInteger(n) || n < 0 || n >= 2 ** 32)
    throw new UsageError(`--seed expects an integer from 0 to 2^32 - 1, got '${v}'`);
  return n;
}

/** A comma-separated list whose every item is one of `known`. */
function choices<T extends string>(name: string, v: string, known: readonly T[]): T[] {
  const items = String(v).split(',') as T[];
  const bad = items.filter((i) => !known.includes(i));
  if (bad.length) throw new UsageError(`${name}: unknown ${bad.join(', ')}; choose from ${known.join(', ')}`);
  return items;
}

/** --scenes: the generator's (none), the varied backgrounds, the test-card-like ones, or a list of them. */
function scenesOf(v: string): readonly Background[] | undefined {
  if (v === 'generator') return undefined;
  if (v === 'varied') return VARIED_BACKGROUNDS;
  if (v === 'patterns') return PATTERN_BACKGROUNDS;
  return choices('--scenes', v, VARIED_BACKGROUNDS);
}

function fraction(name: string, v: string): number {
  const n = Number(v);
  if (String(v).trim() === '' || !(n >= 0 && n <= 1))
    throw new UsageError(`${name} expects a number from 0 to 1, got '${v}'`);
  return n;
}

function size(v: string): { width: number; height: number } {
  const m = v.match(/^(\d+)x(\d+)$/);
  if (!m) throw new UsageError(`--size must look like 112x112, got '${v}'`);
  const [width, height] = [Number(m[1]), Number(m[2])];
  if (width < 32 || height < 32 || width > 4096 || height > 4096)
    throw new UsageError(`--size ${v} is outside 32x32..4096x4096`);
  if (width % 2 || height % 2) throw new UsageError(`--size ${v}: H.264 needs even sides`);
  return { width, height };
}

export function register(program: Command): void {
  const needle = program
    .command('needle')
    .description('Synthetic needle-in-a-haystack long-video QA: generate data, evaluate a model');
  needle
    .command('generate')
    .description(
      'Write haystack videos (MP4) with needles at random depths and their questions (questions.jsonl)',
    )
    .requiredOption('--out <dir>', 'output directory')
    .option('--count <n>', 'number of videos', '20')
    .option('--seed <n>', 'random seed (same seed, same data)', '0')
    .option('--frames <list>', 'video lengths in frames, comma-separated; each video draws one', '16,32,64')
    .option('--fps <list>', 'frame rates of the written videos, comma-separated; each video draws one', '2')
    .option('--size <list>', 'frame sizes (WxH), comma-separated; each video draws one', '112x112')
    .option('--needle-frames <n>', 'frames each needle stays on screen', '2')
    .option('--tasks <list>', `tasks to draw from (${TASKS.join(', ')})`, TASKS.join(','))
    .option(
      '--phrasing <p>',
      `question wording: ${PHRASINGS.join(', ')} (reworded: the held-out rewordings)`,
      'generator',
    )
    .option(
      '--not-shown <fraction>',
      'let answers be "not shown" or 0, and ask this fraction of the questions about something absent',
    )
    .option(
      '--scenes <s>',
      `haystack scenes: generator, varied, patterns, or a list of ${VARIED_BACKGROUNDS.join(', ')}`,
      'generator',
    )
    .option('--haystack <list>', `draw the needles over ffmpeg test sources instead: ${HAYSTACKS.join(', ')}`)
    .option(
      '--no-video',
      "write questions.jsonl only, no MP4s (no ffmpeg needed): evaluate with 'needle eval --render'",
    )
    .option('--json', 'print a JSON summary instead of progress')
    .addHelpText(
      'after',
      '\nExample:\n  longshot needle generate --out data/needle --count 100 --frames 16,64,256 --seed 1',
    )
    .action(async (o) => {
      const tasks = String(o.tasks).split(',') as Task[];
      const bad = tasks.filter((t) => !TASKS.includes(t));
      if (bad.length)
        throw new UsageError(`--tasks: unknown task(s) ${bad.join(', ')}; choose from ${TASKS.join(', ')}`);
      const count = int('--count', o.count);
      const sizes = String(o.size).split(',').map(size);
      const rates = intList('--fps', o.fps);
      const [phrasing] = choices<Phrasing>('--phrasing', o.phrasing, PHRASINGS);
      const haystacks = o.haystack ? choices<Haystack>('--haystack', o.haystack, HAYSTACKS) : undefined;
      if (haystacks && o.video === false)
        throw new UsageError(
          '--haystack draws over ffmpeg test sources, which only the MP4s hold: leave out --no-video',
        );
      const lengths = intList('--frames', o.frames);
      const needleFrames = int('--needle-frames', o.needleFrames);
      const shortest = Math.min(...lengths);
      const needles = neededNeedles(tasks);
      if (!fitsNeedles(shortest, needles, needleFrames))
        throw new UsageError(
          `--frames ${shortest} cannot hold ${needles} needle(s) of --needle-frames ${needleFrames} (each followed by a gap frame): give longer --frames or a smaller --needle-frames`,
        );
      const jsonl = await generateDataset({
        out: o.out,
        count,
        seed: seedOf(o.seed),
        lengths,
        fps: rates[0],
        ...sizes[0],
        sizes,
        rates,
        needleFrames,
        tasks,
        phrasing,
        notShown: o.notShown === undefined ? undefined : fraction('--not-shown', o.notShown),
        backgrounds: scenesOf(String(o.scenes)),
        haystacks,
        video: o.video !== false,
        ffmpegPath: o.video === false ? '' : findTools().ffmpeg,
        onProgress:
          o.json || !process.stderr.isTTY
            ? undefined
            : (d, n) => process.stderr.write(`\rgenerating ${d}/${n}`),
      });
      if (!o.json && process.stderr.isTTY) process.stderr.write('\n');
      const summary = { out: o.out, questions: jsonl, count };
      process.stdout.write(o.json ? `${JSON.stringify(summary)}\n` : `wrote ${count} videos and ${jsonl}\n`);
    });
  needle
    .command('eval')
    .description(
      'Answer every question of a generated set with a model (our TypeScript stack, greedy) and report accuracy by task and length',
    )
    .requiredOption('--model <dir>', 'checkpoint directory (Vamba or Qwen2-VL)')
    .requiredOption(
      '--data <dirs>',
      "directory written by 'needle generate' (questions.jsonl + MP4s); several, comma-separated, give a table of sets",
    )
    .option('--limit <n>', 'evaluate only the first n videos')
    .addOption(
      new Option('--device <device>', 'where to run; auto: cuda where an NVIDIA driver is present, else cpu')
        .choices(['auto', 'cpu', 'cuda'])
        .default('auto'),
    )
    .option(
      '--render',
      'draw each video again from questions.jsonl instead of decoding its MP4 (no ffmpeg needed, no compression)',
    )
    .option('--json', 'print the full report (every answer) as JSON')
    .addHelpText(
      'after',
      '\nExample:\n  longshot needle eval --model models/needle-vamba-tiny --data data/needle-test',
    )
    .action(async (o) => {
      const limit = o.limit === undefined ? undefined : int('--limit', o.limit);
      const progress = !o.json && process.stderr.isTTY;
      const reports: EvalReport[] = [];
      for (const data of String(o.data).split(',')) {
        const report = await evaluateNeedle({
          model: o.model,
          data,
          limit,
          device: resolveDevice(o.device),
          frames: o.render ? 'render' : 'decode',
          onVideo: progress ? (d, n) => process.stderr.write(`\revaluating ${data}: ${d}/${n}`) : undefined,
        });
        if (progress) process.stderr.write('\n');
        if (o.json) process.stdout.write(`${JSON.stringify(report)}\n`);
        else process.stdout.write(`${formatReport(report)}\n\n`);
        reports.push(report);
      }
      if (!o.json && reports.length > 1) process.stdout.write(`${formatSetTable(reports)}\n`);
    });
  needle
    .command('vnbench')
    .description(
      "VNBench's 9 subtasks with needles put into your own videos, in VNBench's released format (score it with 'longshot eval vnbench')",
    )
    .requiredOption('--haystack <dir>', 'a directory of haystack videos (each is used for every subtask)')
    .requiredOption('--out <dir>', 'output directory (VNBench-main-4try.json + MP4s)')
    .option('--seed <n>', 'random seed (same seed, same data)', '0')
    .option('--fps <n>', 'frame rate of the written videos', '2')
    .option('--height <px>', 'height of the written videos (the width keeps the aspect)', '240')
    .option('--needle-sec <s>', 'seconds each needle stays on screen', '2')
    .option('--tasks <list>', `subtasks (${VNBENCH_TASKS.join(', ')})`, VNBENCH_TASKS.join(','))
    .option('--json', 'print a JSON summary instead of progress')
    .addHelpText(
      'after',
      '\nExample:\n  longshot needle vnbench --haystack ~/videos --out data/my-vnbench\n  longshot eval vnbench --data data/my-vnbench --model TIGER-Lab/Vamba-Qwen2-VL-7B',
    )
    .action(async (o) => {
      const tasks = String(o.tasks).split(',') as VNBenchTask[];
      const bad = tasks.filter((t) => !(VNBENCH_TASKS as readonly string[]).includes(t));
      if (bad.length)
        throw new UsageError(
          `--tasks: unknown subtask(s) ${bad.join(', ')}; choose from ${VNBENCH_TASKS.join(', ')}`,
        );
      const needleSec = Number(o.needleSec);
      if (!(needleSec > 0)) throw new UsageError(`--needle-sec must be a number > 0, got '${o.needleSec}'`);
      const height = int('--height', o.height);
      if (height % 2) throw new UsageError(`--height ${height}: H.264 needs an even height`);
      const progress = !o.json && process.stderr.isTTY;
      const json = await generateVNBench({
        haystack: o.haystack,
        out: o.out,
        seed: seedOf(o.seed),
        fps: int('--fps', o.fps),
        height,
        needleSec,
        tasks,
        ffmpegPath: findTools().ffmpeg,
        onProgress: progress ? (d, n) => process.stderr.write(`\rgenerating ${d}/${n}`) : undefined,
      });
      if (progress) process.stderr.write('\n');
      process.stdout.write(
        o.json ? `${JSON.stringify({ out: o.out, questions: json })}\n` : `wrote ${json}\n`,
      );
    });
}
