/**
 * Whole models under the tape: tiny random Nemotron-H (attention, Mamba-2 with groups, MLP) and the tiny Vamba
 * fixture (vision tower, video Mamba/cross-attention layers, text layers) run their training forward inside
 * valueAndGrad; every parameter the forward reads gets a finite gradient (non-zero for the ones the loss
 * depends on), the value equals the plain forward's, and inference afterwards is unchanged.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { valueAndGrad } from '../../src/autograd/index.js';
import { parseNemotronHConfig } from '../../src/models/nemotron_h/config.js';
import { NemotronHForCausalLM } from '../../src/models/nemotron_h/model.js';
import { nemotronHSpecs } from '../../src/models/nemotron_h/weights.js';
import { Vamba } from '../../src/models/vamba/model.js';
import { ParamStore } from '../../src/nn/params.js';
import * as ops from '../../src/runtime/ops.js';
import { isTensor, tidy } from '../../src/runtime/scope.js';
import type { Tensor } from '../../src/runtime/tensor.js';
import { rng } from '../helpers.js';
import { randomWeights } from '../models/nemotron-h-reference.js';
import { readReference, VAMBA_FIXTURES } from '../models/vamba-fixtures.js';
import { cpu } from './gradcheck.js';
import { parametersOf } from './params.js';

/** Σ logits·R for a fixed random R: a scalar that depends on every logit. */
function projection(rows: number, vocab: number): Tensor {
  const r = rng(11);
  return ops.tensor(
    cpu,
    Float32Array.from({ length: rows * vocab }, () => r() * 2 - 1),
    [rows, vocab],
  );
}
const score = (logits: Tensor, R: Tensor) => ops.sum(ops.sum(ops.mul(logits, R), -1), -1);

async function assertFiniteGrads(grads: Tensor[], names: string[], mustMove: (name: string) => boolean) {
  for (const [i, g] of grads.entries()) {
    const v = await g.toArray();
    assert.ok(v.every(Number.isFinite), `${names[i]}: non-finite gradient`);
    if (mustMove(names[i]))
      assert.ok(
        v.some((x) => x !== 0),
        `${names[i]}: zero gradient`,
      );
    g.dispose();
  }
}

describe('autograd on a tiny Nemotron-H', () => {
  const config = parseNemotronHConfig({
    model_type: 'nemotron_h',
    vocab_size: 32,
    hidden_size: 16,
    intermediate_size: 24,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    head_dim: 6,
    mamba_num_heads: 4,
    mamba_head_dim: 5,
    n_groups: 2,
    ssm_state_size: 4,
    conv_kernel: 4,
    chunk_size: 4,
    layer_norm_epsilon: 1e-5,
    hybrid_override_pattern: 'M*-M',
    bos_token_id: 1,
    eos_token_id: 2,
    pad_token_id: 0,
  });
  const specs = nemotronHSpecs(config);
  const weights = randomWeights(specs, rng(5));
  const named = specs.map((s): [string, Tensor] => [s.name, ops.tensor(cpu, weights.get(s.name)!, s.shape)]);
  const model = NemotronHForCausalLM.fromParams(config, new ParamStore(named));
  const ids = [1, 7, 3, 30, 12, 9, 4, 21, 5];

  it('every parameter the forward reads gets a finite gradient; the value is the forward’s', async () => {
    const R = projection(ids.length, 32);
    const plain = await tidy(() => score(model.forward(ids), R)).item();
    const params = named.map(([, t]) => t);
    const names = named.map(([n]) => n);
    const before = cpu.memory().current;
    const { value, grads } = valueAndGrad(() => score(model.forward(ids), R), params);
    assert.equal(value, plain);
    // Spot checks against central differences of the f32 forward (h = 1e-2: the loss is O(1) and smooth,
    // rounding then contributes ~1e-5 and curvature ~1e-4 relative, so 1e-2 separates right from wrong).
    for (const name of [
      'backbone.layers.0.mixer.A_log',
      'backbone.layers.0.mixer.in_proj.weight',
      'backbone.layers.0.mixer.conv1d.weight',
      'backbone.layers.1.mixer.q_proj.weight',
      'backbone.embeddings.weight',
    ]) {
      const i = names.indexOf(name);
      assert.ok(i >= 0, name);
      const at = 3;
      const analytic = (await grads[i].toArray())[at];
      const base = weights.get(name)!;
      const probe = async (h: number) => {
        const w = Float32Array.from(base);
        w[at] += h;
        cpu.upload(params[i], w);
        // Under a tape (tracking nothing), as load-time derivations like Mamba's −exp(A_log) are then redone.
        return valueAndGrad(() => score(model.forward(ids), R), []).value;
      };
      const fd = ((await probe(1e-2)) - (await probe(-1e-2))) / 2e-2;
      cpu.upload(params[i], base);
      assert.ok(
        Math.abs(analytic - fd) <= 1e-2 * Math.max(Math.abs(fd), 0.1),
        `${name}[${at}]: ${analytic} vs ${fd}`,
      );
    }
    await assertFiniteGrads(grads, names, () => true);
    assert.equal(cpu.memory().current, before, 'the tape released everything');
    const again = await tidy(() => score(model.forward(ids), R)).item();
    assert.equal(again, plain, 'inference after training is unchanged');
    R.dispose();
  });
});

describe('autograd on the tiny Vamba fixture (vision tower, video layers, text layers)', () => {
  it('every parameter gets a finite gradient through video encoding and the text forward', async () => {
    const dir = join(VAMBA_FIXTURES, 'tiny-a');
    const model = await Vamba.load(dir, { backend: cpu });
    // The parameters: every tensor the model holds but the views of a larger one (weights split at load).
    const { params, names } = parametersOf(model);
    const ref = await readReference('tiny-a');
    const ms = model.config.vision.spatial_merge_size;
    const grid = [ref.grid[0], ref.grid[1] / ms, ref.grid[2] / ms] as const;
    const ids = ref.inputIds;
    const R = projection(ids.length, ref.vocab);
    const forward = () => {
      const kvs = model.lm.encodeVideo(model.embedVideo(ref.pixelValues, ref.grid), grid, { chunkLen: 3 });
      using cache = model.lm.newCache();
      const loss = score(model.lm.forward(ids, kvs, cache), R);
      for (const kv of kvs) for (const t of Object.values(kv)) if (isTensor(t)) t.dispose();
      return loss;
    };
    const plain = await tidy(forward).item();
    const before = cpu.memory().current;
    const { value, grads } = valueAndGrad(forward, params);
    assert.ok(Math.abs(value - plain) <= 1e-6 * Math.abs(plain), `${value} vs ${plain}`);
    // The last layer's video Mamba block does not run (nothing reads its video update): its gradient is zero.
    const idle = `lm.layers.${model.config.text.num_hidden_layers - 1}.vision_mixer.`;
    await assertFiniteGrads(grads, names, (name) => !name.startsWith(idle));
    assert.equal(cpu.memory().current, before, 'the tape released everything');
    assert.equal(await tidy(forward).item(), plain, 'inference after training is unchanged');
    R.dispose();
    model[Symbol.dispose]();
  });
});
