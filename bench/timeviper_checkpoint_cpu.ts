/**
 * TimeViper's activation checkpointing of the vision half (recipe batch.checkpoint): bytes the recorded forward
 * of one micro-batch holds for backward, and CPU-seconds of its forward and backward, with and without — the
 * recipe's model from scratch, `videos` needle videos of `frames` frames, f32 on the CPU backend (the second
 * of two runs each: the first warms up).
 *
 *   node --import tsx bench/timeviper_checkpoint_cpu.ts recipes/needle-timeviper.json [videos 4] [frames 32]
 */
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { valueAndGradAsync } from '../src/autograd/index.js';
import '../src/backends/cpu/index.js';
import { getBackend } from '../src/runtime/device.js';
import * as ops from '../src/runtime/ops.js';
import { openSource } from '../src/train/data.js';
import { autogradEngine as engine } from '../src/train/engine.js';
import { IGNORE, padded } from '../src/train/model.js';
import { parseRecipe } from '../src/train/recipe.js';
import { setupModel } from '../src/train/setup.js';
import { Random } from '../src/util/random.js';

const [path, videos = 4, frames = 32] = process.argv.slice(2).map((a, i) => (i ? Number(a) : a)) as [
  string,
  number?,
  number?,
];
if (!path) throw new Error('usage: timeviper_checkpoint_cpu.ts <recipe.json> [videos] [frames]');
const backend = await getBackend('cpu');
const recipe = parseRecipe(JSON.parse(readFileSync(path, 'utf8')), path, dirname(path));
const { model, tokenizer } = await setupModel(recipe, backend, 'f32', null);
const src = await openSource(recipe.data.train, { tokenizer, prompt: (q) => model.prompt?.(q) ?? q });
const rng = new Random(1);
const exs = await Promise.all(Array.from({ length: videos }, () => src.draw(rng, frames)));
await src.close();
const { targets } = padded(exs, 0);
const params = [...model.weights.values()];

async function run(checkpoint: boolean): Promise<{ held: number; seconds: number }> {
  const before = backend.memory().current;
  let held = 0;
  const t = process.cpuUsage();
  const r = await valueAndGradAsync(async () => {
    using fwd = model.forward(checkpoint ? engine.checkpoint : undefined);
    const logits = await fwd.batchLogits!(exs);
    held = backend.memory().current - before;
    return engine.crossEntropy(logits, ops.tensor(backend, targets, [targets.length], 'i32'), {
      ignoreIndex: IGNORE,
    });
  }, params);
  const used = process.cpuUsage(t);
  for (const g of r.grads) g.dispose();
  return { held, seconds: (used.user + used.system) / 1e6 };
}

for (const checkpoint of [false, true]) {
  await run(checkpoint);
  const { held, seconds } = await run(checkpoint);
  console.log(
    `${path}: ${videos} videos × ${frames} frames, checkpoint ${checkpoint}: ${(held / 2 ** 20).toFixed(1)} MiB held after the forward, ${seconds.toFixed(2)} CPU-s forward + backward`,
  );
}
model[Symbol.dispose]();
