/**
 * Video-side models under the tape: tiny MambaMia compressors (causal; bidirectional with gated aggregation)
 * with finite-difference checks, and the TimeViper TransV fixture (SigLIP, ToMe, projector, token drops,
 * TransV), whose forward awaits host decisions, under valueAndGradAsync.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { valueAndGrad, valueAndGradAsync } from '../../src/autograd/index.js';
import { Checkpoint } from '../../src/io/checkpoint.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { MambaMiaCompressor } from '../../src/models/mambamia/compressor.js';
import { parseMambaMiaConfig } from '../../src/models/mambamia/config.js';
import { readTimeViperConfig } from '../../src/models/timeviper/config.js';
import { TimeViperModel } from '../../src/models/timeviper/model.js';
import { loadTimeViperParams } from '../../src/models/timeviper/weights.js';
import { ParamStore } from '../../src/nn/params.js';
import * as ops from '../../src/runtime/ops.js';
import { tidy } from '../../src/runtime/scope.js';
import type { Tensor } from '../../src/runtime/tensor.js';
import { rng } from '../helpers.js';
import { cpu } from './gradcheck.js';
import { assertFiniteGrads, parametersOf, projection, score } from './params.js';

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

describe('autograd on the TimeViper TransV fixture (SigLIP, ToMe, projector, drops and TransV)', () => {
  it('the awaiting forward trains under valueAndGradAsync: every parameter gets a finite, non-zero gradient', async () => {
    const dir = join(import.meta.dirname, '..', 'fixtures', 'timeviper', 'transv');
    const config = await readTimeViperConfig(dir);
    const ckpt = await Checkpoint.open(dir);
    using m = await TimeViperModel.fromParams(
      config,
      await loadTimeViperParams(ckpt, config, cpu, 'f32', dir),
    );
    await ckpt.close();
    const f = await SafetensorsFile.open(join(dir, 'reference.safetensors'));
    using pixels = await f.loadTensor(cpu, 'pixels', { dtype: 'f32' });
    using idsT = await f.loadTensor(cpu, 'input_ids');
    await f.close();
    const ids = Array.from(await idsT.data());
    const { params, names } = parametersOf(m);
    const forward = async () => {
      using visual = await m.encode(pixels);
      const { x, vision } = m.embedPrompt({ ids, visual });
      const caches = m.lm.newCaches();
      const out = await m.lm.forward(x, vision, caches);
      x.dispose();
      for (const c of caches) c[Symbol.dispose]();
      const R = projection(1, out.logits.shape[1]);
      const loss = tidy(() => score(out.logits, R));
      out.logits.dispose();
      R.dispose();
      return loss;
    };
    const plain = await forward();
    const { value, grads } = await valueAndGradAsync(forward, params);
    assert.ok(Math.abs(value - (await plain.item())) <= 1e-6 * Math.abs(value), 'the value is the forward’s');
    plain.dispose();
    await assertFiniteGrads(grads, names, () => true);
  });
});
