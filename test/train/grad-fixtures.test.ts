/**
 * Whole-model gradients against PyTorch: the tiny Vamba of test/fixtures/grads/vamba.safetensors (made by
 * tools/reference/grad_fixtures.py with train_needle.py's model, torch 1.13, CPU, f32), loaded into the
 * trainer's Vamba; valueAndGrad of the answer-token cross-entropy gives PyTorch's loss and every gradient
 * within f32 tolerance (α excepted: the model code reads it as a number, so it does not train).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import '../../src/backends/cpu/index.js';
import { getBackend } from '../../src/runtime/device.js';
import { VambaTrainModel } from '../../src/train/vamba.js';
import { answerLossAndGrads, assertGradClose, fixtureExample, loadGradFixture } from './grad-fixture.js';

test('tiny Vamba: loss and gradients of every trainable parameter match PyTorch (f32)', async () => {
  const cpu = await getBackend('cpu');
  const fx = await loadGradFixture('vamba.safetensors', cpu);
  using model = await VambaTrainModel.create(fx.config, fx.weights, 2);
  const names = [...fx.weights.keys()].filter((n) => !model.untrainable.has(n));
  assert.deepEqual([...model.untrainable.keys()], ['model.layers.0.alpha', 'model.layers.1.alpha']);
  const { value, grads } = await answerLossAndGrads(
    model,
    fixtureExample(fx),
    names.map((n) => fx.weights.get(n)!),
    cpu,
  );
  assert.ok(Math.abs(value - fx.refLoss) < 1e-5 * fx.refLoss, `loss ${value} vs PyTorch ${fx.refLoss}`);
  let checked = 0;
  for (const [i, n] of names.entries()) if (assertGradClose(n, grads[i], fx.refGrads.get(n)!) > 0) checked++;
  // Every parameter but the last layer's video block (which feeds nothing) has a gradient to compare.
  assert.equal(checked, names.filter((n) => !n.startsWith('model.layers.1.vision_mixer.')).length);
});
