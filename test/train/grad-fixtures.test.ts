/**
 * Whole-model gradients against PyTorch: the tiny Vamba of test/fixtures/grads/vamba.safetensors (made by
 * tools/reference/grad_fixtures.py with train_needle.py's model, torch 1.13, CPU, f32), loaded into the
 * trainer's Vamba; valueAndGrad of the answer-token cross-entropy gives PyTorch's loss and every gradient
 * within f32 tolerance (α excepted: the model code reads it as a number, so it does not train).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import '../../src/backends/cpu/index.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { getBackend } from '../../src/runtime/device.js';
import * as ops from '../../src/runtime/ops.js';
import type { Tensor } from '../../src/runtime/tensor.js';
import { autogradEngine as engine } from '../../src/train/engine.js';
import { teacherForced } from '../../src/train/model.js';
import { VambaTrainModel } from '../../src/train/vamba.js';

const FIXTURE = join(import.meta.dirname, '..', 'fixtures', 'grads', 'vamba.safetensors');

test('tiny Vamba: loss and gradients of every trainable parameter match PyTorch (f32)', async () => {
  const cpu = await getBackend('cpu');
  const f = await SafetensorsFile.open(FIXTURE);
  const read = async (n: string) => (await f.read(n)).data;
  const weights = new Map<string, Tensor>();
  const refGrads = new Map<string, Float32Array>();
  for (const n of f.names()) {
    if (n.startsWith('weight.')) {
      const name = n.slice('weight.'.length);
      weights.set(name, ops.tensor(cpu, (await read(n)) as Float32Array, f.info(n).shape, 'f32'));
      refGrads.set(name, (await read(`grad.${name}`)) as Float32Array);
    }
  }
  const config = JSON.parse(f.metadata.config);
  const model = await VambaTrainModel.create(config, weights, 2);
  const frames = (await read('frames')) as Uint8Array;
  const ex = {
    frames,
    count: 2,
    width: 56,
    height: 56,
    prompt: Array.from((await read('prompt')) as Int32Array),
    answer: Array.from((await read('answer')) as Int32Array),
    group: '',
  };
  const refLoss = ((await read('loss')) as Float32Array)[0];
  await f.close();
  const names = [...weights.keys()].filter((n) => !model.untrainable.has(n));
  assert.deepEqual([...model.untrainable.keys()], ['model.layers.0.alpha', 'model.layers.1.alpha']);
  const targets = ops.tensor(
    cpu,
    teacherForced(ex).targets,
    [ex.prompt.length + ex.answer.length - 1],
    'i32',
  );
  const { value, grads } = engine.valueAndGrad(
    () => {
      using fwd = model.forward();
      return engine.crossEntropy(fwd.logits(ex), targets, { ignoreIndex: -100 });
    },
    names.map((n) => weights.get(n)!),
  );
  assert.ok(Math.abs(value - refLoss) < 1e-5 * refLoss, `loss ${value} vs PyTorch ${refLoss}`);
  let checked = 0;
  for (const [i, n] of names.entries()) {
    const got = (await grads[i].data()) as Float32Array;
    const want = refGrads.get(n)!;
    let scale = 0;
    let worst = 0;
    for (let j = 0; j < want.length; j++) {
      scale = Math.max(scale, Math.abs(want[j]));
      worst = Math.max(worst, Math.abs(got[j] - want[j]));
    }
    assert.ok(worst <= 1e-3 * scale + 1e-6, `${n}: largest difference ${worst} (largest gradient ${scale})`);
    if (scale > 0) checked++;
    grads[i].dispose();
  }
  // Every parameter but the last layer's video block (which feeds nothing) has a gradient to compare.
  assert.equal(checked, names.filter((n) => !n.startsWith('model.layers.1.vision_mixer.')).length);
  targets.dispose();
  model[Symbol.dispose]();
});
