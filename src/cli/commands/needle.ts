import '../../backends/cpu/index.js';
import '../../backends/cuda/index.js';
import type { Command } from 'commander';
import { InputError } from '../../errors.js';
import { findTools } from '../../media/index.js';
import { generateDataset } from '../../needle/dataset.js';
import { evaluateNeedle, formatReport } from '../../needle/eval.js';
import { TASKS, type Task } from '../../needle/tasks.js';

const intList = (v: string): number[] => {
  const out = v.split(',').map((s) => Number(s.trim()));
  if (!out.length || out.some((n) => !Number.isInteger(n) || n < 1))
    throw new InputError(`expected positive integers separated by commas, got '${v}'`);
  return out;
};

function size(v: string): { width: number; height: number } {
  const m = v.match(/^(\d+)x(\d+)$/);
  if (!m) throw new InputError(`--size must look like 112x112, got '${v}'`);
  const [width, height] = [Number(m[1]), Number(m[2])];
  if (width < 32 || height < 32 || width > 4096 || height > 4096)
    throw new InputError(`--size ${v} is outside 32x32..4096x4096`);
  if (width % 2 || height % 2) throw new InputError(`--size ${v}: H.264 needs even sides`);
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
    .option('--fps <n>', 'frame rate of the written videos', '2')
    .option('--size <WxH>', 'frame size', '112x112')
    .option('--needle-frames <n>', 'frames each needle stays on screen', '2')
    .option('--tasks <list>', `tasks to draw from (${TASKS.join(', ')})`, TASKS.join(','))
    .option('--json', 'print a JSON summary instead of progress')
    .addHelpText(
      'after',
      '\nExample:\n  longshot needle generate --out data/needle --count 100 --frames 16,64,256 --seed 1',
    )
    .action(async (o) => {
      const tasks = String(o.tasks).split(',') as Task[];
      const bad = tasks.filter((t) => !TASKS.includes(t));
      if (bad.length)
        throw new InputError(`unknown task(s) ${bad.join(', ')}; choose from ${TASKS.join(', ')}`);
      const count = intList(o.count)[0];
      const { width, height } = size(o.size);
      const jsonl = await generateDataset({
        out: o.out,
        count,
        seed: Number(o.seed) >>> 0,
        lengths: intList(o.frames),
        fps: intList(o.fps)[0],
        width,
        height,
        needleFrames: intList(o.needleFrames)[0],
        tasks,
        ffmpegPath: findTools().ffmpeg,
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
    .requiredOption('--data <dir>', "directory written by 'needle generate' (questions.jsonl + MP4s)")
    .option('--limit <n>', 'evaluate only the first n videos')
    .option('--device <name>', 'cpu or cuda', 'cpu')
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
      const limit = o.limit === undefined ? undefined : intList(o.limit)[0];
      const progress = !o.json && process.stderr.isTTY;
      const report = await evaluateNeedle({
        model: o.model,
        data: o.data,
        limit,
        device: o.device,
        frames: o.render ? 'render' : 'decode',
        onVideo: progress ? (d, n) => process.stderr.write(`\revaluating ${d}/${n}`) : undefined,
      });
      if (progress) process.stderr.write('\n');
      process.stdout.write(o.json ? `${JSON.stringify(report)}\n` : `${formatReport(report)}\n`);
    });
}
