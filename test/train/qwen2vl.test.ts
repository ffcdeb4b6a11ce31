/**
 * The Qwen2-VL baseline trains too: the tiny recipe's model as a Qwen2-VL (the video's tokens in the sequence
 * after <|vision_start|>), from scratch on the pool of 8 videos — the loss falls well below where it starts and
 * below the blind bound of learns.test.ts's data, and the checkpoint loads as a Qwen2-VL.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import '../../src/backends/cpu/index.js';
import { Qwen2VL } from '../../src/models/qwen2vl/model.js';
import { getBackend } from '../../src/runtime/device.js';
import { autogradEngine } from '../../src/train/engine.js';
import { train } from '../../src/train/trainer.js';
import { dropVambaFields } from '../helpers.js';
import { tinyRecipe } from './tiny.js';

test('a tiny Qwen2-VL trained on CPU learns the pool; its checkpoint loads', async () => {
  const recipe = tinyRecipe((j) => {
    j.name = 'tiny-needle-qwen2vl';
    j.model.family = 'qwen2vl';
    dropVambaFields(j.model.config);
    j.schedule = { steps: 200, warmup: 10, minRatio: 0.1 };
    j.output = { dir: 'x', logEvery: 50, evalEvery: 1000 };
  });
  const losses: number[] = [];
  const r = await train({
    recipe,
    backend: await getBackend('cpu'),
    engine: autogradEngine,
    onStep: (s) => losses.push(s.loss),
  });
  const last = losses.slice(-20).reduce((a, b) => a + b) / 20;
  assert.ok(losses[0] > 3, `starts near ln(vocab): ${losses[0]}`);
  assert.ok(last < 0.1, `final loss ${last}`);
  assert.ok(r.eval && r.eval.accuracy >= 0.75, `pool accuracy ${r.eval?.accuracy}`);
  const m = await Qwen2VL.load(r.checkpoint);
  assert.equal(m.config.text.hidden_size, 32);
  m[Symbol.dispose]();
});
