/**
 * CPU-seconds per training step of a recipe with each micro-batch's videos in one forward (accumulate 1: the
 * family's batched forward) against one video per micro-batch (accumulate = videos: one forward each), on the
 * same data, steps and weights: `videos` videos of `frames` frames per step (no baseFrames), f32 on the CPU
 * backend, no evaluation. The first step (warm-up) is left out; the time includes drawing the step's videos.
 *
 * With `rounds` > 1, the two run alternately that many times and the first round (warm-up: for a tiny model it
 * is most of the time) is left out of the means.
 *
 *   node --import tsx bench/train_batch_cpu.ts recipes/needle-mambamia.json [videos 8] [frames 32] [steps 4] [rounds 1]
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import '../src/backends/cpu/index.js';
import { getBackend } from '../src/runtime/device.js';
import { autogradEngine } from '../src/train/engine.js';
import { parseRecipe } from '../src/train/recipe.js';
import { train } from '../src/train/trainer.js';

const [path, videos = 8, frames = 32, steps = 4, rounds = 1] = process.argv
  .slice(2)
  .map((a, i) => (i ? Number(a) : a)) as [string, number?, number?, number?, number?];
if (!path) throw new Error('usage: train_batch_cpu.ts <recipe.json> [videos] [frames] [steps] [rounds]');
const backend = await getBackend('cpu');

async function cpuPerStep(accumulate: number): Promise<number> {
  const j = JSON.parse(readFileSync(path, 'utf8'));
  j.data = { train: { ...j.data.train, frames: [frames] } };
  j.batch = { videos, accumulate };
  j.precision = 'f32';
  const dir = mkdtempSync(join(tmpdir(), 'longshot-train-batch-'));
  j.schedule = { ...j.schedule, steps, warmup: 1 };
  j.output = { ...j.output, dir, evalEvery: steps, checkpointEvery: steps, logEvery: steps };
  const recipe = parseRecipe(j, path, dirname(path));
  const marks: NodeJS.CpuUsage[] = [];
  try {
    await train({ recipe, backend, engine: autogradEngine, onStep: () => marks.push(process.cpuUsage()) });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const first = marks[0];
  const last = marks[marks.length - 1];
  return (last.user + last.system - first.user - first.system) / 1e6 / (marks.length - 1);
}

let batched = 0;
let single = 0;
for (let r = 0; r < rounds; r++) {
  const [b, s] = [await cpuPerStep(1), await cpuPerStep(videos)];
  if (rounds > 1 && r === 0) continue;
  batched += b / Math.max(1, rounds - 1);
  single += s / Math.max(1, rounds - 1);
}
console.log(
  `${path}: ${videos} videos × ${frames} frames, ${steps - 1} steps timed${rounds > 1 ? ` × ${rounds - 1} rounds` : ''}: ${batched.toFixed(2)} CPU-s/step batched, ${single.toFixed(2)} one video per forward (×${(single / batched).toFixed(2)})`,
);
