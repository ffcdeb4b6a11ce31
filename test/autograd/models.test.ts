/**
 * Whole models under the tape: a tiny random Nemotron-H (attention, Mamba-2 with groups, MLP) and the tiny
 * Vamba fixture (vision tower, video Mamba/cross-attention layers, text layers) run their training forward
 * inside valueAndGrad; every parameter gets a finite gradient (non-zero for the ones the loss depends on), the
 * value equals the plain forward's, memory is released and inference afterwards is unchanged. Nemotron-H's
 * gradients are also checked, at random elements of every parameter, against central differences of the
 * independent float64 recurrence of test/models/nemotron-h-reference.ts, and with every block checkpointed.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { checkpointEach, valueAndGrad } from '../../src/autograd/index.js';
import { parseNemotronHConfig } from '../../src/models/nemotron_h/config.js';
import { NemotronHForCausalLM } from '../../src/models/nemotron_h/model.js';
import { nemotronHSpecs } from '../../src/models/nemotron_h/weights.js';
import { Vamba } from '../../src/models/vamba/model.js';
import { ParamStore } from '../../src/nn/params.js';
import * as ops from '../../src/runtime/ops.js';
import { isTensor, tidy } from '../../src/runtime/scope.js';
import type { Tensor } from '../../src/runtime/tensor.js';
import { rng } from '../helpers.js';
import { NaiveNemotronH, randomWeights } from '../models/nemotron-h-reference.js';
import { readReference, VAMBA_FIXTURES } from '../models/vamba-fixtures.js';
import { assertClose, cpu } from './gradcheck.js';
import { assertFiniteGrads, parametersOf, projection, readTensors, score } from './params.js';

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
    const params = readTensors(model, named);
    const names = named.map(([n]) => n);
    const before = cpu.memory().current;
    const { value, grads } = valueAndGrad(() => score(model.forward(ids), R), params);
    assert.equal(value, plain);
    // Against central differences of the float64 recurrence (test/models/nemotron-h-reference.ts, independent
    // of the runtime) at random elements of every parameter: exact to ~1e-8, so 1e-3 bounds our f32 gradients.
    const w64 = new Map([...weights].map(([n, v]) => [n, Float64Array.from(v)]));
    const naive = new NaiveNemotronH(config, w64 as unknown as Map<string, Float32Array>);
    const Rv = await R.toArray();
    const loss64 = () => {
      const rows = naive.forward(ids, naive.newState());
      return rows.reduce((acc, row, t) => acc + row.reduce((a, v, j) => a + v * Rv[t * 32 + j], 0), 0);
    };
    const pick = rng(8);
    for (const [i, name] of names.entries()) {
      const g = await grads[i].toArray();
      const w = w64.get(name)!;
      for (let trial = 0; trial < 2; trial++) {
        const at = Math.floor(pick() * w.length);
        const h = 1e-4;
        const saved = w[at];
        w[at] = saved + h;
        const plus = loss64();
        w[at] = saved - h;
        const minus = loss64();
        w[at] = saved;
        const fd = (plus - minus) / (2 * h);
        assert.ok(
          Math.abs(g[at] - fd) <= 1e-3 * Math.max(Math.abs(fd), 1e-2),
          `${name}[${at}]: ${g[at]} vs ${fd}`,
        );
      }
    }
    // Checkpointing every block gives the same gradients.
    const restore = checkpointEach(model.backbone.layers, 'forward');
    const ck = valueAndGrad(() => score(model.forward(ids), R), params);
    restore();
    assert.equal(ck.value, value);
    for (const [i, g] of ck.grads.entries())
      assertClose(await g.toArray(), await grads[i].toArray(), 1e-6, `checkpointed ${names[i]}`);
    for (const g of ck.grads) g.dispose();
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
