/**
 * recipes/needle-<model>.json over exported needle shards (tools/needle/export_training_data.ts), for the GPU
 * benchmarks: the training and held-out shard directories, the steps and warm-up, the output directory (where
 * the recipe is written as recipe.json; checkpoint and evaluation at the last step, a log line per step).
 *
 *   node --import tsx tools/needle/shard_recipe.ts <model> <out dir> <train dirs,…> <held-out dir | -> <steps> <warmup> [videos per step] [lr]
 */
import { readFileSync, writeFileSync } from 'node:fs';

const [model, out, train, heldout, steps, warmup, videos, lr] = process.argv.slice(2);
if (!warmup) {
  console.error(
    'usage: shard_recipe.ts <model> <out dir> <train dirs,…> <held-out dir | -> <steps> <warmup> [videos per step] [lr]',
  );
  process.exit(2);
}
const r = JSON.parse(readFileSync(`recipes/needle-${model}.json`, 'utf8'));
r.data = {
  train: { kind: 'shards', dirs: train.split(',') },
  eval: heldout === '-' ? null : { kind: 'shards', dirs: [heldout] },
};
r.schedule = { ...r.schedule, steps: Number(steps), warmup: Number(warmup) };
if (videos) r.batch = { ...r.batch, videos: Number(videos) };
if (lr) r.optimizer = { ...r.optimizer, lr: Number(lr) };
r.output = { ...r.output, dir: out, checkpointEvery: Number(steps), evalEvery: Number(steps), logEvery: 1 };
writeFileSync(`${out}/recipe.json`, `${JSON.stringify(r, null, 2)}\n`);
