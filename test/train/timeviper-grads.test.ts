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
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { Tokenizer } from '../../src/io/tokenizer.js';
import { getBackend } from '../../src/runtime/device.js';
import * as ops from '../../src/runtime/ops.js';
import type { Tensor } from '../../src/runtime/tensor.js';
import { autogradEngine as engine } from '../../src/train/engine.js';
import { IGNORE, teacherForced } from '../../src/train/model.js';
import { TimeViperTrainModel } from '../../src/train/timeviper.js';
import { writeTimeViperTokenizer } from '../models/tiny-timeviper.js';

const FIXTURE = join(import.meta.dirname, '..', 'fixtures', 'grads', 'timeviper.safetensors');

/** grad_fixtures.py's timeviper_frames: element j of frame f is (37·j + 101·f) mod 256. */
const frames = (count: number, side: number) =>
  Uint8Array.from({ length: count * side * side * 3 }, (_, i) => {
    const n = side * side * 3;
    return (37 * (i % n) + 101 * Math.floor(i / n)) % 256;
  });

test('tiny TimeViper: loss and the gradient of every parameter match PyTorch (f32)', async () => {
  const cpu = await getBackend('cpu');
  const f = await SafetensorsFile.open(FIXTURE);
  const read = async (n: string) => (await f.read(n)).data;
  const weights = new Map<string, Tensor>();
  const refGrads = new Map<string, Float32Array>();
  for (const n of f.names())
    if (n.startsWith('weight.')) {
      const name = n.slice('weight.'.length);
      weights.set(name, ops.tensor(cpu, (await read(n)) as Float32Array, f.info(n).shape, 'f32'));
      refGrads.set(name, (await read(`grad.${name}`)) as Float32Array);
    }
  const config = JSON.parse(f.metadata.config);
  const dir = mkdtempSync(join(tmpdir(), 'longshot-tv-grads-'));
  writeTimeViperTokenizer(dir, config.image_token_index);
  using model = TimeViperTrainModel.create(config, weights, await Tokenizer.fromDir(dir));
  const side = config.vision_config.image_size;
  const ex = {
    frames: frames(2, side),
    count: 2,
    width: side,
    height: side,
    prompt: Array.from((await read('prompt')) as Int32Array),
    answer: Array.from((await read('answer')) as Int32Array),
    group: '',
  };
  const refLoss = ((await read('loss')) as Float32Array)[0];
  await f.close();
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
  assert.ok(Math.abs(value - refLoss) < 1e-5 * refLoss, `loss ${value} vs PyTorch ${refLoss}`);
  for (const [i, n] of names.entries()) {
    const got = (await grads[i].data()) as Float32Array;
    const want = refGrads.get(n)!;
    let scale = 0;
    let worst = 0;
    for (let j = 0; j < want.length; j++) {
      scale = Math.max(scale, Math.abs(want[j]));
      worst = Math.max(worst, Math.abs(got[j] - want[j]));
    }
    assert.ok(scale > 0, `${n}: PyTorch's gradient is zero`);
    assert.ok(worst <= 1e-3 * scale + 1e-6, `${n}: largest difference ${worst} (largest gradient ${scale})`);
    grads[i].dispose();
  }
});
