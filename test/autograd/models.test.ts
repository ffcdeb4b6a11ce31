/**
 * Whole models under the tape: tiny random Nemotron-H (attention, Mamba-2 with groups, MLP) and the tiny Vamba
 * fixture (vision tower, video Mamba/cross-attention layers, text layers) run their training forward inside
 * valueAndGrad; every parameter gets a finite gradient (non-zero for the ones the loss depends on), the value
 * equals the plain forward's, memory is released and inference afterwards is unchanged. Nemotron-H's
 * gradients are also checked, at random elements of every parameter, against central differences of the
 * independent float64 recurrence of test/models/nemotron-h-reference.ts.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { checkpointEach, valueAndGrad } from '../../src/autograd/index.js';
import { MambaMiaCompressor } from '../../src/models/mambamia/compressor.js';
import { parseMambaMiaConfig } from '../../src/models/mambamia/config.js';
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

describe('autograd on tiny MambaMia compressors (gated aggregation, bidirectional scans)', () => {
  const base = {
    input_size: 6,
    output_size: 10,
    hidden_size: 8,
    num_hidden_layers: 2,
    num_heads: 4,
    head_dim: 4,
    state_size: 4,
    chunk_size: 5,
    mambamia_chunk_size: 3,
  };
  const variants = {
    'v04 (causal)': { version: 'v04' },
    'v2, gated aggregation, concat': {
      version: 'v2',
      mambamia_gated_aggregation: true,
      mambamia_bidirectional_combine: 'concat',
    },
  };
  for (const [label, v] of Object.entries(variants))
    it(`${label}: every parameter gets a finite, non-zero gradient that finite differences confirm`, async () => {
      const c = parseMambaMiaConfig({ ...base, ...v });
      const r = rng(21);
      const named = MambaMiaCompressor.specs('', c).map((s): [string, Tensor] => {
        const n = s.shape.reduce((a, b) => a * b, 1);
        const [lo, hi] = /dt_bias/.test(s.name)
          ? [-3, -1]
          : /A_(b_)?log/.test(s.name)
            ? [0, 2]
            : /norm/.test(s.name)
              ? [0.8, 1.2]
              : [-0.5, 0.5];
        return [
          s.name,
          ops.tensor(
            cpu,
            Float32Array.from({ length: n }, () => lo + (hi - lo) * r()),
            s.shape,
          ),
        ];
      });
      using m = MambaMiaCompressor.load(new ParamStore(named), '', c);
      const x = ops.tensor(
        cpu,
        Float32Array.from({ length: 3 * 6 * 6 }, () => r() * 2 - 1),
        [3, 6, 6],
      );
      const rows = tidy(() => m.forward(x));
      const R = projection(rows.shape[0], rows.shape[1]);
      rows.dispose();
      const loss = () => score(m.forward(x), R);
      const { grads } = valueAndGrad(
        loss,
        named.map(([, t]) => t),
      );
      // Central differences of the f32 forward under a tape tracking nothing (so load-time derivations are
      // redone): with h = 1e-2 on an O(1) smooth loss, 2e-2 separates a right gradient from a wrong one.
      for (const name of named.map(([n]) => n).filter((n) => /weight_fc|gate_fc|A_b_log|in_proj/.test(n))) {
        const i = named.findIndex(([n]) => n === name);
        const t = named[i][1];
        const base64 = Float32Array.from(await t.toArray());
        const at = Math.floor(r() * t.size);
        const probe = (h: number) => {
          const w = Float32Array.from(base64);
          w[at] += h;
          cpu.upload(t, w);
          return valueAndGrad(loss, []).value;
        };
        const fd = (probe(1e-2) - probe(-1e-2)) / 2e-2;
        cpu.upload(t, base64);
        const g = (await grads[i].toArray())[at];
        assert.ok(Math.abs(g - fd) <= 2e-2 * Math.max(Math.abs(fd), 0.05), `${name}[${at}]: ${g} vs ${fd}`);
      }
      await assertFiniteGrads(
        grads,
        named.map(([n]) => n),
        () => true,
      );
      x.dispose();
      R.dispose();
    });
});
