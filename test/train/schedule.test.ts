import assert from 'node:assert/strict';
import { test } from 'node:test';
import { learningRate } from '../../src/train/schedule.js';

// tools/reference/train_needle.py: lr · min(1, step/warmup) · (0.5·(1 + cos(π·progress))·0.95 + 0.05).
const reference = (lr: number, warmup: number, steps: number, step: number) =>
  lr * Math.min(1, step / warmup) * (0.5 * (1 + Math.cos((Math.PI * step) / steps)) * 0.95 + 0.05);

test('warm-up then cosine: the reference trainer’s formula at every step', () => {
  const s = { lr: 1e-3, warmup: 150, steps: 3000, minRatio: 0.05 };
  for (const step of [1, 2, 75, 149, 150, 151, 1000, 1500, 2999, 3000])
    assert.ok(Math.abs(learningRate(s, step) - reference(1e-3, 150, 3000, step)) < 1e-15, `step ${step}`);
});

test('the shape: linear warm-up, peak after it, monotone decay to the floor', () => {
  const s = { lr: 2e-3, warmup: 10, steps: 100, minRatio: 0.1 };
  assert.equal(learningRate(s, 5), 2e-3 * 0.5 * (0.5 * (1 + Math.cos(Math.PI * 0.05)) * 0.9 + 0.1));
  assert.ok(learningRate(s, 10) > learningRate(s, 9));
  for (let i = 11; i <= 100; i++) assert.ok(learningRate(s, i) <= learningRate(s, i - 1));
  assert.ok(Math.abs(learningRate(s, 100) - 2e-4) < 1e-15); // the floor: minRatio · lr
  assert.ok(Math.abs(learningRate(s, 500) - 2e-4) < 1e-15); // past the end it stays there
  assert.equal(
    learningRate({ ...s, warmup: 0 }, 1),
    2e-3 * (0.5 * (1 + Math.cos(Math.PI / 100)) * 0.9 + 0.1),
  );
});
