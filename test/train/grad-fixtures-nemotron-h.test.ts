/**
 * Whole-model gradients against PyTorch: the tiny Nemotron-H of test/fixtures/grads/nemotron_h.safetensors
 * (pattern M-M*-, Mamba-2 with 3 norm groups and a binding time_step_limit, GQA attention, relu² MLP; 15 tokens
 * over SSD chunks of 4; made by tools/reference/nemotron_h_grad_fixtures.py, torch 1.13, CPU, f32) loaded into
 * NemotronHForCausalLM; valueAndGrad of the mean cross-entropy on the fixture's targets gives PyTorch's loss and
 * every parameter's gradient within f32 tolerance, and, with the weights in bf16, within bf16's.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { useBackwardKernels } from '../../src/autograd/index.js';
import '../../src/backends/cpu/index.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { parseNemotronHConfig } from '../../src/models/nemotron_h/config.js';
import { NemotronHForCausalLM } from '../../src/models/nemotron_h/model.js';
import { ParamStore } from '../../src/nn/params.js';
import { getBackend } from '../../src/runtime/device.js';
import type { DType } from '../../src/runtime/dtype.js';
import * as ops from '../../src/runtime/ops.js';
import type { Tensor } from '../../src/runtime/tensor.js';
import { autogradEngine as engine } from '../../src/train/engine.js';
import { readTensors } from '../autograd/params.js';
import { relErr } from '../helpers.js';

const FIXTURE = join(import.meta.dirname, '..', 'fixtures', 'grads', 'nemotron_h.safetensors');

async function readFixture() {
  const f = await SafetensorsFile.open(FIXTURE);
  const read = async (n: string) => (await f.read(n)).data;
  const weights = new Map<string, { data: Float32Array; shape: number[] }>();
  const grads = new Map<string, Float32Array>();
  for (const n of f.names())
    if (n.startsWith('weight.')) {
      const name = n.slice('weight.'.length);
      weights.set(name, { data: (await read(n)) as Float32Array, shape: [...f.info(n).shape] });
      grads.set(name, (await read(`grad.${name}`)) as Float32Array);
    }
  const fixture = {
    config: parseNemotronHConfig(JSON.parse(f.metadata.config), FIXTURE),
    weights,
    grads,
    ids: Array.from((await read('input_ids')) as Int32Array),
    targets: (await read('targets')) as Int32Array,
    loss: ((await read('loss')) as Float32Array)[0],
  };
  await f.close();
  return fixture;
}

/** The loss and every parameter's gradient (by name) of the fixture's model with its weights in `dtype`. */
async function lossAndGrads(fx: Awaited<ReturnType<typeof readFixture>>, dtype: DType) {
  const cpu = await getBackend('cpu');
  const named = [...fx.weights].map(([n, w]): [string, Tensor] => [
    n,
    ops.tensor(cpu, w.data, w.shape, 'f32'),
  ]);
  const cast = named.map(([n, t]): [string, Tensor] => [n, dtype === 'f32' ? t : ops.cast(t, dtype)]);
  if (dtype !== 'f32') for (const [, t] of named) t.dispose();
  using model = NemotronHForCausalLM.fromParams(fx.config, new ParamStore(cast));
  // The tensors the model reads (attention's q/k/v are fused at load; theirs are views of the fused weight).
  const params = readTensors(model, cast);
  using targets = ops.tensor(cpu, fx.targets, [fx.targets.length], 'i32');
  const { value, grads } = engine.valueAndGrad(
    () => engine.crossEntropy(model.forward(fx.ids), targets, { ignoreIndex: -100 }),
    params,
  );
  const out = new Map<string, Float32Array>();
  for (const [i, [n]] of cast.entries()) {
    assert.equal(grads[i].dtype, 'f32');
    out.set(n, (await grads[i].data()) as Float32Array);
    grads[i].dispose();
  }
  return { value, grads: out };
}

for (const kernels of [true, false])
  test(`tiny Nemotron-H: loss and every parameter’s gradient match PyTorch (f32, ${kernels ? 'backward kernels' : 'composite rules'})`, async () => {
    const fx = await readFixture();
    // Every parameter of the published layout (2 Mamba-2, 1 attention, 2 MLP blocks) is compared.
    assert.equal(fx.weights.size, 1 + 2 * 9 + 5 + 2 * 3 + 2);
    useBackwardKernels(kernels);
    try {
      const { value, grads } = await lossAndGrads(fx, 'f32');
      assert.ok(Math.abs(value - fx.loss) <= 1e-6 * fx.loss, `loss ${value} vs PyTorch ${fx.loss}`);
      for (const [n, want] of fx.grads) {
        assert.ok(
          want.some((x) => x !== 0),
          `${n}: the fixture has no gradient to compare`,
        );
        // Gradients are sums that cancel: the error is judged against the tensor's largest gradient. PyTorch's
        // own f32 gradients are within 5e-6 of float64's (the fixture's metadata); ours within 4e-6 of them.
        const e = relErr(grads.get(n)!, want);
        assert.ok(e <= 3e-5, `${n}: gradient off by ${e.toExponential(2)} of its largest`);
      }
    } finally {
      useBackwardKernels(true);
    }
  });

test('tiny Nemotron-H in bf16: the loss and f32 gradients stay within bf16 rounding of PyTorch’s f32', async () => {
  const fx = await readFixture();
  const { value, grads } = await lossAndGrads(fx, 'bf16');
  assert.ok(Math.abs(value - fx.loss) <= 1e-2 * fx.loss, `loss ${value} vs PyTorch ${fx.loss}`);
  for (const [n, want] of fx.grads) {
    const got = grads.get(n)!;
    assert.ok(got.every(Number.isFinite), `${n}: non-finite gradient`);
    // bf16 rounds every weight and activation to 8 bits: ~8e-2 of the largest gradient at worst here (the
    // first layers, through the most bf16 ops), while the directions agree to a cosine of 0.998.
    const e = relErr(got, want);
    assert.ok(e <= 0.15, `${n}: gradient off by ${e.toExponential(2)} of its largest`);
    let dot = 0;
    let gg = 0;
    let ww = 0;
    for (let j = 0; j < want.length; j++) {
      dot += got[j] * want[j];
      gg += got[j] * got[j];
      ww += want[j] * want[j];
    }
    assert.ok(dot / Math.sqrt(gg * ww) > 0.99, `${n}: cosine ${dot / Math.sqrt(gg * ww)} with PyTorch's`);
  }
});
