// Autograd on the GPU against the CPU backend: whole-model gradients of a tiny random Nemotron-H (attention,
// Mamba-2 with groups, MLP; f32 and bf16 weights) and of the tiny Vamba fixture (vision tower, video layers,
// text layers), through the backward kernels where the backend has them and through the composites.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { useBackwardKernels, valueAndGrad } from '../src/autograd/index.js';
import { parseNemotronHConfig } from '../src/models/nemotron_h/config.js';
import { NemotronHForCausalLM } from '../src/models/nemotron_h/model.js';
import { nemotronHSpecs } from '../src/models/nemotron_h/weights.js';
import { Vamba } from '../src/models/vamba/model.js';
import { ParamStore } from '../src/nn/params.js';
import type { Backend } from '../src/runtime/backend.js';
import type { DType } from '../src/runtime/dtype.js';
import * as ops from '../src/runtime/ops.js';
import type { Tensor } from '../src/runtime/tensor.js';
import { parametersOf, readTensors } from '../test/autograd/params.js';
import { relErr, rng } from '../test/helpers.js';
import { randomWeights } from '../test/models/nemotron-h-reference.js';
import { readReference, VAMBA_FIXTURES } from '../test/models/vamba-fixtures.js';
import { assertParity, cpu, gpu } from './helpers.js';

const TOL: Record<string, number> = { f32: 2e-3, bf16: 6e-2 };

const config = parseNemotronHConfig({
  model_type: 'nemotron_h',
  vocab_size: 40,
  hidden_size: 32,
  intermediate_size: 48,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 8,
  mamba_num_heads: 8,
  mamba_head_dim: 8,
  n_groups: 2,
  ssm_state_size: 16,
  conv_kernel: 4,
  chunk_size: 8,
  layer_norm_epsilon: 1e-5,
  hybrid_override_pattern: 'M*-M-',
  bos_token_id: 1,
  eos_token_id: 2,
  pad_token_id: 0,
});
const weights = randomWeights(nemotronHSpecs(config), rng(3));
const ids = Array.from({ length: 37 }, (_, i) => (i * 7 + 3) % 40);
const r = rng(9);
const R = Float32Array.from({ length: ids.length * 40 }, () => r() * 2 - 1);

/** Gradients of Σ logits·R w.r.t. every named parameter, as f32 tensors on `backend`. */
function nemotronGrads(backend: Backend, dtype: DType): Tensor[] {
  const named = nemotronHSpecs(config).map((s): [string, Tensor] => [
    s.name,
    ops.tensor(backend, weights.get(s.name)!, s.shape, dtype),
  ]);
  using model = NemotronHForCausalLM.fromParams(config, new ParamStore(named));
  const Rt = ops.tensor(backend, R, [ids.length, 40]);
  const { grads } = valueAndGrad(
    () => ops.sum(ops.sum(ops.mul(model.forward(ids), Rt), -1), -1),
    readTensors(model, named),
  );
  Rt.dispose();
  return grads;
}

for (const kernels of [true, false])
  describe(`autograd on the GPU (${kernels ? 'backward kernels where present' : 'composites'})`, () => {
    before(() => useBackwardKernels(kernels));
    after(() => useBackwardKernels(true));
    for (const dtype of ['f32', 'bf16'] as const)
      test(`tiny Nemotron-H, ${dtype} weights: every parameter's gradient matches the CPU's`, async () => {
        const [g, c] = [nemotronGrads(gpu, dtype), nemotronGrads(cpu, dtype)];
        const specs = nemotronHSpecs(config);
        if (dtype === 'f32')
          for (let i = 0; i < g.length; i++) await assertParity(g[i], c[i], TOL.f32, specs[i].name);
        else {
          // bf16 activations and their gradients round at every op, and through five random blocks the two
          // backends' roundings part by more than any elementwise tolerance (a gradient that is a small sum of
          // large bf16 terms). So both are scored against the f32 gradients: the GPU's bf16 gradients must be
          // as close to them as the CPU's bf16 gradients are (within 2×, or within 5% of each tensor's scale).
          const exact = nemotronGrads(cpu, 'f32');
          for (let i = 0; i < g.length; i++) {
            const want = await exact[i].data();
            const [eg, ec] = [relErr(await g[i].data(), want), relErr(await c[i].data(), want)];
            assert.ok(
              eg <= Math.max(0.05, 2 * ec),
              `${specs[i].name}: GPU bf16 error ${eg}, CPU bf16 error ${ec}`,
            );
          }
          for (const t of exact) t.dispose();
        }
        for (const t of [...g, ...c]) t.dispose();
      });

    test('tiny Vamba fixture: every parameter’s gradient matches the CPU’s', async () => {
      const ref = await readReference('tiny-a');
      const grads = async (backend: Backend) => {
        using model = await Vamba.load(join(VAMBA_FIXTURES, 'tiny-a'), { backend, dtype: 'f32' });
        const { params, names } = parametersOf(model);
        const ms = model.config.vision.spatial_merge_size;
        const grid = [ref.grid[0], ref.grid[1] / ms, ref.grid[2] / ms] as const;
        const q = rng(4);
        const Rt = ops.tensor(
          backend,
          Float32Array.from({ length: ref.inputIds.length * ref.vocab }, () => q() * 2 - 1),
          [ref.inputIds.length, ref.vocab],
        );
        const { grads } = valueAndGrad(() => {
          const kvs = model.lm.encodeVideo(model.embedVideo(ref.pixelValues, ref.grid), grid, {
            chunkLen: 3,
          });
          using cache = model.lm.newCache();
          const loss = ops.sum(ops.sum(ops.mul(model.lm.forward(ref.inputIds, kvs, cache), Rt), -1), -1);
          for (const kv of kvs)
            for (const t of Object.values(kv)) if (t && typeof t === 'object' && 'dispose' in t) t.dispose();
          return loss;
        }, params);
        Rt.dispose();
        return { grads, names };
      };
      const g = await grads(gpu);
      const c = await grads(cpu);
      // Gradients that are zero in exact arithmetic (a key bias: softmax ignores a shift shared by all keys)
      // hold only rounding noise: each tensor's error is measured against the largest gradient of the model.
      let largest = 0;
      for (const t of c.grads) for (const v of await t.data()) largest = Math.max(largest, Math.abs(v));
      for (let i = 0; i < g.grads.length; i++) {
        let own = 0;
        for (const v of await c.grads[i].data()) own = Math.max(own, Math.abs(v));
        await assertParity(
          g.grads[i],
          c.grads[i],
          TOL.f32,
          g.names[i],
          Math.max(1e-3, (1e-4 * largest) / (own || 1)),
        );
      }
      for (const t of [...g.grads, ...c.grads]) t.dispose();
    });
  });
