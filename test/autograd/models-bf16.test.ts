/**
 * bf16 training on the CPU backend (the dtype of GPU training): the tiny Vamba fixture in bf16 under
 * valueAndGrad gets f32 gradients that point the same way as the f32 model's. Cosine similarity is the fair
 * measure here: bf16 keeps 8 bits of mantissa in every activation, so elementwise agreement is only ~1e-2.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { it } from 'node:test';
import { valueAndGrad } from '../../src/autograd/index.js';
import { Vamba } from '../../src/models/vamba/model.js';
import * as ops from '../../src/runtime/ops.js';
import { isTensor, keep } from '../../src/runtime/scope.js';
import type { Tensor } from '../../src/runtime/tensor.js';
import { readReference, VAMBA_FIXTURES } from '../models/vamba-fixtures.js';
import { cpu } from './gradcheck.js';
import { parametersOf, projection, score } from './params.js';

it('tiny Vamba in bf16: every gradient is f32, finite and aligned with the f32 model’s', async () => {
  const ref = await readReference('tiny-a');
  const run = async (dtype: 'f32' | 'bf16') => {
    using model = await Vamba.load(join(VAMBA_FIXTURES, 'tiny-a'), { backend: cpu, dtype });
    const { params, names } = parametersOf(model);
    const ms = model.config.vision.spatial_merge_size;
    const grid = [ref.grid[0], ref.grid[1] / ms, ref.grid[2] / ms] as const;
    using R = projection(ref.inputIds.length, ref.vocab);
    let magnitude: Tensor | null = null;
    const { value, grads } = valueAndGrad(() => {
      const kvs = model.lm.encodeVideo(model.embedVideo(ref.pixelValues, ref.grid), grid, { chunkLen: 3 });
      using cache = model.lm.newCache();
      const logits = model.lm.forward(ref.inputIds, kvs, cache);
      // Σ|logit·R|: the score is a sum of ± terms that largely cancel.
      magnitude = keep(score(ops.unary('abs', logits), ops.unary('abs', R)));
      const loss = score(logits, R);
      for (const kv of kvs) for (const t of Object.values(kv)) if (isTensor(t)) t.dispose();
      return loss;
    }, params);
    const scale = await (magnitude as Tensor | null)!.item();
    (magnitude as Tensor | null)!.dispose();
    assert.ok(grads.every((g) => g.dtype === 'f32'));
    const g = await Promise.all(grads.map((t) => t.toArray()));
    for (const t of grads) t.dispose();
    return { value, g, names, scale };
  };
  const [hi, lo] = [await run('f32'), await run('bf16')];
  // The score cancels ~3,600-fold (≈2.6 from terms of magnitude ≈9,300), so it is judged against the terms:
  // bf16 rounds every activation to 8 mantissa bits (2⁻⁹ relative); measured 4·10⁻⁵ of the magnitude.
  assert.ok(
    Math.abs(lo.value - hi.value) <= 1e-3 * hi.scale,
    `loss ${lo.value} vs ${hi.value} (terms' magnitude ${hi.scale})`,
  );
  const norm = (v: number[]) => Math.sqrt(v.reduce((a, x) => a + x * x, 0));
  const largest = Math.max(...hi.g.map(norm));
  for (const [i, name] of hi.names.entries()) {
    assert.ok(lo.g[i].every(Number.isFinite), `${name}: non-finite`);
    // Gradients that vanish in exact arithmetic (a key bias shifts every score of a query alike; the last
    // layer's idle video block) are rounding noise in both: nothing to align.
    if (norm(hi.g[i]) < 1e-3 * largest) continue;
    const cos = hi.g[i].reduce((a, x, j) => a + x * lo.g[i][j], 0) / (norm(hi.g[i]) * norm(lo.g[i]));
    assert.ok(cos > 0.98, `${name}: cosine ${cos.toFixed(4)}`);
  }
});
