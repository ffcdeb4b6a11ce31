/**
 * Whole-model gradients of TSTAR-MambaMia against PyTorch: the tiny model of test/fixtures/grads/mambamia.safetensors
 * (tools/reference/grad_fixtures_mambamia.py: needle_mambamia.py's PyTorch TSTAR — Qwen2-VL's vision tower, the
 * bidirectional gated MambaMia compressor, a Qwen2 decoder —, torch 1.13, CPU, f32), loaded into the trainer's
 * TSTAR; valueAndGrad of the answer-token cross-entropy gives PyTorch's loss and the gradient of every parameter
 * (tower, compressor and LLM) within 1e-4 of its largest element (f32; the worst is ~1e-5).
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
import { TstarTrainModel } from '../../src/train/tstar.js';
import { relErr } from '../helpers.js';

const FIXTURE = join(import.meta.dirname, '..', 'fixtures', 'grads', 'mambamia.safetensors');

test('tiny TSTAR-MambaMia: loss and the gradient of every parameter match PyTorch (f32)', async () => {
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
  const model = TstarTrainModel.create(JSON.parse(f.metadata.config), weights, 2);
  const ex = {
    frames: (await read('frames')) as Uint8Array,
    count: 2,
    width: 56,
    height: 56,
    prompt: Array.from((await read('prompt')) as Int32Array),
    answer: Array.from((await read('answer')) as Int32Array),
    group: '',
  };
  const refLoss = ((await read('loss')) as Float32Array)[0];
  await f.close();
  // The whole model trains: tower, compressor (both scan directions, the pooling heads) and LLM.
  const names = [...weights.keys()];
  assert.equal(model.untrainable.size, 0);
  for (const part of [
    'visual.',
    'mm_projector.model.layers.1.mixer.A_b_log',
    'mm_projector.query_token',
    'lm_head.',
  ])
    assert.ok(
      names.some((n) => n.startsWith(part)),
      part,
    );
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
  const worst: [string, number][] = [];
  for (const [i, n] of names.entries()) {
    const got = (await grads[i].data()) as Float32Array;
    const want = refGrads.get(n)!;
    assert.ok(
      want.some((v) => v !== 0),
      `${n}: PyTorch's gradient is zero (the fixture must reach it)`,
    );
    worst.push([n, relErr(got, want)]);
    grads[i].dispose();
  }
  const bad = worst.filter(([, e]) => !(e <= 1e-4));
  assert.deepEqual(
    bad,
    [],
    `gradients off by more than 1e-4 of their largest element: ${JSON.stringify(bad)}`,
  );
  targets.dispose();
  model[Symbol.dispose]();
});
