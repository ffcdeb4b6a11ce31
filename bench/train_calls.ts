/**
 * Where a training step's host time goes: backend calls per step and the host milliseconds spent inside each
 * kind of call (on a GPU: argument checks, the Node-API crossing and the launch, or the wait of a call that
 * syncs), next to the step's wall time, averaged over the steps after `--warmup`. The rest of the step is
 * JavaScript outside the backend (the tape, shapes, data). Allocations and releases are counted as calls too. Runs `longshot train`'s own loop on a recipe.
 *
 *   npx tsx bench/train_calls.ts recipes/needle-vamba.json [--device cuda] [--steps 12] [--warmup 4]
 *     [--videos N] [--json FILE]
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import '../src/backends/index.js';
import type { DeviceName } from '../src/runtime/backend.js';
import { getBackend } from '../src/runtime/device.js';
import { autogradEngine } from '../src/train/engine.js';
import { readRecipe } from '../src/train/recipe.js';
import { train } from '../src/train/trainer.js';
import { watchCalls } from './backend-calls.js';

const { values: o, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    device: { type: 'string', default: 'cpu' },
    steps: { type: 'string', default: '12' },
    warmup: { type: 'string', default: '4' },
    videos: { type: 'string' },
    json: { type: 'string' },
  },
});
const [recipePath] = positionals;
if (!recipePath) throw new Error('usage: bench/train_calls.ts <recipe.json> [--device cuda] [--steps N]');
const steps = Number(o.steps);
const warmup = Number(o.warmup);
const backend = await getBackend(o.device as DeviceName);
const recipe = await readRecipe(recipePath);
const out = mkdtempSync(join(tmpdir(), 'train-calls-'));
const run = {
  ...recipe,
  batch: { ...recipe.batch, videos: o.videos ? Number(o.videos) : recipe.batch.videos },
  data: { ...recipe.data, eval: null },
  schedule: { ...recipe.schedule, steps, warmup: 1 },
  output: { ...recipe.output, dir: out, checkpointEvery: 1e9, evalEvery: 1e9 },
};

const watch = watchCalls(backend, undefined, true);
const snap = () => ({ counts: { ...watch.counts }, ms: { ...watch.ms }, t: performance.now() });
let at = snap();
const sum = { counts: {} as Record<string, number>, ms: {} as Record<string, number>, wall: 0, n: 0 };
try {
  await train({
    recipe: run,
    backend,
    engine: autogradEngine,
    onStep: (s) => {
      const now = snap();
      if (s.step > warmup) {
        for (const [k, v] of Object.entries(now.counts))
          sum.counts[k] = (sum.counts[k] ?? 0) + v - (at.counts[k] ?? 0);
        for (const [k, v] of Object.entries(now.ms)) sum.ms[k] = (sum.ms[k] ?? 0) + v - (at.ms[k] ?? 0);
        sum.wall += now.t - at.t;
        sum.n++;
      }
      at = now;
    },
  });
} finally {
  watch.stop();
  rmSync(out, { recursive: true, force: true });
}
if (!sum.n) throw new Error(`no step after the ${warmup} warm-up steps: raise --steps`);
const per = (v: number) => v / sum.n;
const kernels = Object.keys(sum.counts);
const total = (rec: Record<string, number>) =>
  Object.entries(rec).reduce((a, [k, v]) => (k.includes(':') ? a : a + v), 0);
const rows = kernels
  .map((k) => ({ op: k, calls: per(sum.counts[k]), ms: per(sum.ms[k] ?? 0) }))
  .sort((a, b) => b.ms - a.ms);
const result = {
  recipe: recipePath,
  device: o.device,
  videos: run.batch.videos,
  steps: sum.n,
  stepMs: per(sum.wall),
  callsPerStep: per(total(sum.counts)),
  callMsPerStep: per(total(sum.ms)),
  ops: rows,
};
console.log(
  `${recipePath} on ${o.device}, ${run.batch.videos} videos per step, mean of ${sum.n} steps: ` +
    `${result.stepMs.toFixed(1)} ms per step, ${result.callsPerStep.toFixed(0)} backend calls taking ` +
    `${result.callMsPerStep.toFixed(1)} ms of it`,
);
console.log('| op | calls/step | host ms/step | µs/call |\n|---|---|---|---|');
for (const r of rows.slice(0, 30))
  console.log(
    `| ${r.op} | ${r.calls.toFixed(1)} | ${r.ms.toFixed(2)} | ${((1000 * r.ms) / r.calls).toFixed(1)} |`,
  );
if (o.json) await writeFile(o.json, `${JSON.stringify(result, null, 2)}\n`);
