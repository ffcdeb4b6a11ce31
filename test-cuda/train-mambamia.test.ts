/**
 * TSTAR-MambaMia training on CUDA: the gradient fixture's loss and every gradient against PyTorch's (as
 * test/train/grad-mambamia.test.ts on the CPU), three f32 steps of the tiny needle TSTAR-MambaMia recipe equal the
 * CPU trainer's losses and weights, and a bf16 run (bf16 weights, f32 masters) learns.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { autogradEngine } from '../src/train/engine.js';
import { type StepInfo, train } from '../src/train/trainer.js';
import { compareMambaMiaGrads } from '../test/train/mambamia-fixture.js';
import { TINY_MAMBAMIA_PATH, tinyRecipe } from '../test/train/tiny.js';
import { cpu, gpu } from './helpers.js';

const f32Body = (path: string) => {
  const b = readFileSync(path);
  const n = Number(b.readBigUInt64LE(0));
  const body = b.subarray(8 + n);
  return new Float32Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength));
};

test('the TSTAR-MambaMia gradient fixture on CUDA: PyTorch’s loss and gradients (f32)', async () => {
  const r = await compareMambaMiaGrads(gpu);
  assert.ok(Math.abs(r.loss - r.refLoss) < 1e-4 * r.refLoss, `loss ${r.loss} vs PyTorch ${r.refLoss}`);
  const bad = r.errors.filter(([, e]) => !(e <= 1e-3));
  assert.deepEqual(
    bad,
    [],
    `gradients off by more than 1e-3 of their largest element: ${JSON.stringify(bad)}`,
  );
});

test('three f32 TSTAR-MambaMia training steps on CUDA match the CPU trainer', async () => {
  const runs = [];
  for (const backend of [gpu, cpu]) {
    const recipe = tinyRecipe((j) => {
      j.schedule = { steps: 3, warmup: 1, minRatio: 0.1 };
      j.precision = 'f32';
      delete j.data.eval;
    }, TINY_MAMBAMIA_PATH);
    const steps: StepInfo[] = [];
    const r = await train({ recipe, backend, engine: autogradEngine, onStep: (s) => steps.push(s) });
    runs.push({ steps, weights: f32Body(join(r.checkpoint, 'model.safetensors')) });
  }
  const [g, c] = runs;
  g.steps.forEach((s, i) => {
    assert.ok(
      Math.abs(s.loss - c.steps[i].loss) < 1e-4 * c.steps[i].loss,
      `step ${i + 1}: ${s.loss} vs ${c.steps[i].loss}`,
    );
  });
  let worst = 0;
  for (let i = 0; i < c.weights.length; i++) worst = Math.max(worst, Math.abs(g.weights[i] - c.weights[i]));
  // Adam moves a weight by about lr (1.5e-3) per step: disagreement far below one step.
  assert.ok(worst < 2e-4, `largest weight difference ${worst}`);
});

test('a bf16 TSTAR-MambaMia (f32 masters) learns on CUDA', async () => {
  const recipe = tinyRecipe((j) => {
    j.schedule = { steps: 150, warmup: 10, minRatio: 0.1 };
    j.precision = 'bf16';
  }, TINY_MAMBAMIA_PATH);
  const losses: number[] = [];
  const r = await train({ recipe, backend: gpu, engine: autogradEngine, onStep: (s) => losses.push(s.loss) });
  assert.equal(r.dtype, 'bf16');
  const last = losses.slice(-10).reduce((a, b) => a + b) / 10;
  assert.ok(last < losses[0] / 4, `loss ${losses[0]} → ${last}`);
});
