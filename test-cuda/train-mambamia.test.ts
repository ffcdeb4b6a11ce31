/**
 * TSTAR-MambaMia training on CUDA: the gradient fixture's loss and every gradient against PyTorch's (as
 * test/train/grad-mambamia.test.ts on the CPU), three f32 steps of the tiny needle TSTAR-MambaMia recipe equal the
 * CPU trainer's losses and weights, and a bf16 run (bf16 weights, f32 masters) learns.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compareMambaMiaGrads } from '../test/train/mambamia-fixture.js';
import { TINY_MAMBAMIA_PATH } from '../test/train/tiny.js';
import { assertBf16Learns, assertWeightsClose, gpu, trainThreeStepsOnBoth } from './helpers.js';

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
  const [g, c] = await trainThreeStepsOnBoth(TINY_MAMBAMIA_PATH);
  // Adam moves a weight by about lr (1.5e-3) per step: disagreement far below one step.
  assertWeightsClose(g, c, 2e-4);
});

test('a bf16 TSTAR-MambaMia (f32 masters) learns on CUDA', () => assertBf16Learns(TINY_MAMBAMIA_PATH));
