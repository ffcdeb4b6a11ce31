/**
 * Autograd cost on the shipped tiny needle Vamba: milliseconds per plain forward and per training step
 * (valueAndGrad: the recorded forward, then backward) on a synthetic video, through the backward kernels and
 * through the composites. The ratio step/forward is the number to compare with PyTorch's (~3 for a
 * kernel-bound model; launch-bound tiny models pay per op).
 *
 *   npx tsx bench/autograd.ts                                  # CPU, f32
 *   npx tsx bench/autograd.ts --device cuda --out DIR          # GPU, bf16; writes DIR/autograd.json
 *   options: --frames 16 --size 112 --tokens 64 --steps 10
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import '../src/backends/index.js';
import { useBackwardKernels, valueAndGrad } from '../src/autograd/index.js';
import { Vamba } from '../src/models/vamba/model.js';
import { getBackend } from '../src/runtime/device.js';
import * as ops from '../src/runtime/ops.js';
import { isTensor, tidy } from '../src/runtime/scope.js';
import type { Tensor } from '../src/runtime/tensor.js';
import { seededUniform } from '../src/util/random.js';

const { values: a } = parseArgs({
  options: {
    device: { type: 'string', default: 'cpu' },
    frames: { type: 'string', default: '16' },
    size: { type: 'string', default: '112' },
    tokens: { type: 'string', default: '64' },
    steps: { type: 'string', default: '10' },
    out: { type: 'string' },
  },
});
const backend = await getBackend(a.device as 'cpu' | 'cuda');
const dtype = backend.name === 'cpu' ? 'f32' : 'bf16';
const model = await Vamba.load(join(import.meta.dirname, '..', 'models', 'needle-vamba-tiny'), {
  backend,
  dtype,
});
const v = model.config.vision;
const side = Number(a.size) / v.patch_size;
const grid = [Number(a.frames) / v.temporal_patch_size, side, side] as [number, number, number];
const rowLen = v.in_channels * v.temporal_patch_size * v.patch_size ** 2;
const r = seededUniform(1);
const pixels = Float32Array.from({ length: grid[0] * grid[1] * grid[2] * rowLen }, () => r() * 2 - 1);
const ids = Array.from({ length: Number(a.tokens) }, () => Math.floor(r() * model.config.text.vocab_size));
const ms = v.spatial_merge_size;
const merged = [grid[0], grid[1] / ms, grid[2] / ms] as const;

// Every tensor of the model but the views of a larger one: the trainable weights.
const all: Tensor[] = [];
const seen = new Set<unknown>();
const walk = (x: unknown) => {
  if (x === null || typeof x !== 'object' || seen.has(x)) return;
  seen.add(x);
  if (isTensor(x)) {
    if (x.dtype !== 'i32') all.push(x);
    return;
  }
  for (const y of Array.isArray(x) ? x : Object.values(x)) walk(y);
};
walk(model);
const params = all.filter((t) => !all.some((p) => p.buffer === t.buffer && p.size > t.size));

const loss = () => {
  const kvs = model.lm.encodeVideo(model.embedVideo(pixels, grid), merged);
  using cache = model.lm.newCache();
  const logits = model.lm.forward(ids, kvs, cache);
  for (const kv of kvs) for (const t of Object.values(kv)) if (isTensor(t)) t.dispose();
  return ops.mean(ops.mean(logits, -1), -1);
};

async function time(what: string, run: () => void): Promise<number> {
  run(); // warm-up
  await backend.synchronize();
  const t0 = performance.now();
  for (let i = 0; i < Number(a.steps); i++) run();
  await backend.synchronize();
  const per = (performance.now() - t0) / Number(a.steps);
  console.log(`${what.padEnd(34)} ${per.toFixed(1).padStart(9)} ms`);
  return per;
}

console.log(
  `needle-vamba-tiny on ${backend.name} (${dtype}): ${grid.join('×')} patches, ${ids.length} tokens`,
);
const forward = await time('forward', () => tidy(loss).dispose());
const result: Record<string, number> = { forward };
for (const kernels of [true, false]) {
  useBackwardKernels(kernels);
  result[kernels ? 'step_kernels' : 'step_composites'] = await time(
    `forward + backward (${kernels ? 'kernels' : 'composites'})`,
    () => {
      for (const g of valueAndGrad(loss, params).grads) g.dispose();
    },
  );
}
useBackwardKernels(true);
console.log(`step / forward: ${(result.step_kernels / forward).toFixed(2)} (kernels)`);
if (a.out)
  await writeFile(
    join(a.out, 'autograd.json'),
    `${JSON.stringify({ device: backend.name, dtype, grid, tokens: ids.length, ...result }, null, 1)}\n`,
  );
model[Symbol.dispose]();
