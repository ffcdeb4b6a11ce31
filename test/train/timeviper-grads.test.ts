/**
 * Whole-model gradients of TimeViper against PyTorch: the tiny TimeViper of test/fixtures/grads/timeviper.safetensors
 * (tools/reference/grad_fixtures.py --model timeviper: needle_timeviper.py's model, torch 1.13, CPU, f32 — SigLIP,
 * ToMe, the projector, Nemotron-H with Mamba-2, attention and MLP blocks) loaded into the trainer's TimeViper;
 * the recorded forward's answer-token cross-entropy gives PyTorch's loss and every parameter's gradient.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { valueAndGradAsync } from '../../src/autograd/index.js';
import '../../src/backends/cpu/index.js';
import { Tokenizer } from '../../src/io/tokenizer.js';
import { getBackend } from '../../src/runtime/device.js';
import * as ops from '../../src/runtime/ops.js';
import { autogradEngine as engine } from '../../src/train/engine.js';
import { IGNORE, teacherForced } from '../../src/train/model.js';
import { TimeViperTrainModel } from '../../src/train/timeviper.js';
import { writeTimeViperTokenizer } from '../models/tiny-timeviper.js';
import { assertGradClose, fixtureExample, loadGradFixture } from './grad-fixture.js';

/** grad_fixtures.py's timeviper_frames: element j of frame f is (37·j + 101·f) mod 256. */
const frames = (count: number, side: number) =>
  Uint8Array.from({ length: count * side * side * 3 }, (_, i) => {
    const n = side * side * 3;
    return (37 * (i % n) + 101 * Math.floor(i / n)) % 256;
  });

test('tiny TimeViper: loss and the gradient of every parameter match PyTorch (f32)', async () => {
  const cpu = await getBackend('cpu');
  const fx = await loadGradFixture('timeviper.safetensors', cpu);
  const { config, weights } = fx;
  const dir = mkdtempSync(join(tmpdir(), 'longshot-tv-grads-'));
  writeTimeViperTokenizer(dir, config.image_token_index);
  using model = TimeViperTrainModel.create(config, weights, await Tokenizer.fromDir(dir));
  const side = config.vision_config.image_size;
  const ex = fixtureExample(fx, frames(2, side), side);
  // PyTorch's module holds every tensor of the layout; the trainer's model reads exactly those with a gradient.
  assert.deepEqual([...weights.keys()].sort(), [...model.weights.keys()].sort());
  const names = [...weights.keys()];
  const { targets } = teacherForced(ex);
  const { value, grads } = await valueAndGradAsync(
    async () => {
      using fwd = model.forward();
      const logits = await fwd.logits(ex);
      const t = ops.tensor(cpu, targets, [targets.length], 'i32');
      return engine.crossEntropy(logits, t, { ignoreIndex: IGNORE });
    },
    names.map((n) => weights.get(n)!),
  );
  assert.ok(Math.abs(value - fx.refLoss) < 1e-5 * fx.refLoss, `loss ${value} vs PyTorch ${fx.refLoss}`);
  for (const [i, n] of names.entries()) {
    const scale = assertGradClose(n, (await grads[i].data()) as Float32Array, fx.refGrads.get(n)!);
    assert.ok(scale > 0, `${n}: PyTorch's gradient is zero`);
    grads[i].dispose();
  }
});
