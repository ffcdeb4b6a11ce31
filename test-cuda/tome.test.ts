// ToMe on the GPU (src/nn/tome.ts): the embeddingBag op against the CPU backend, and the device matching's groups
// and merged tokens on CUDA against the CPU backend's, for TimeViper's 729 → 16 (f32 and bf16 features) and
// small odd sizes, chunked or not, and the official fixture's groups. The two backends round the f32 scores
// differently in the last bit, so a frame whose groups differ must hold a near tie (its f64 decision margin,
// from test/nn/tome-reference.ts, under 1e-6), and at most a quarter of the frames may differ.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { SafetensorsFile } from '../src/io/safetensors.js';
import { TOME_HEADS, tomeApply, tomePlan } from '../src/nn/tome.js';
import * as ops from '../src/runtime/ops.js';
import { relErr } from '../test/helpers.js';
import { referenceGroups } from '../test/nn/tome-reference.js';
import { cpu, gpu, pair, values } from './helpers.js';

/** Frame f's head-averaged metric [tokens, dim] in f64 from the features xs [frames, tokens, channels]. */
function metricOf(xs: ArrayLike<number>, f: number, tokens: number, channels: number): Float64Array {
  const dim = channels / TOME_HEADS;
  const m = new Float64Array(tokens * dim);
  for (let t = 0; t < tokens; t++)
    for (let c = 0; c < channels; c++)
      m[t * dim + (c % dim)] += xs[(f * tokens + t) * channels + c] / TOME_HEADS;
  return m;
}

describe('ToMe on CUDA against the CPU backend', () => {
  test('embeddingBag: sums and means of bags (empty ones too), f32 exactly, bf16', async () => {
    const [rows, dim] = [300, 1152];
    const bags = 97;
    const ids: number[] = [];
    const offsets = [0];
    for (let b = 0; b < bags; b++) {
      const n = b % 11 === 0 ? 0 : 1 + ((b * 7) % 40);
      for (let i = 0; i < n; i++) ids.push((b * 31 + i * 17) % rows);
      offsets.push(ids.length);
    }
    const host = values(rows * dim);
    for (const dtype of ['f32', 'bf16'] as const)
      for (const mode of ['sum', 'mean'] as const) {
        const [gt, ct] = pair(host, [rows, dim], dtype);
        const [gi, ci] = pair(ids, [ids.length], 'i32');
        const [go, co] = pair(offsets, [offsets.length], 'i32');
        using g = ops.embeddingBag(gt, gi, go, mode);
        using c = ops.embeddingBag(ct, ci, co, mode);
        const [gv, cv] = [await g.data(), await c.data()];
        if (dtype === 'f32') assert.deepEqual(gv, cv, `${mode}: the same f32 additions in the same order`);
        else assert.ok(relErr(gv, cv) <= 1e-2, `${dtype} ${mode}: ${relErr(gv, cv)}`);
        for (const t of [gt, ct, gi, ci, go, co]) t.dispose();
      }
  });

  for (const [frames, tokens, channels, keep] of [
    [8, 729, 1152, 16],
    [16, 97, 48, 7],
    [12, 50, 32, 5],
  ] as const)
    for (const dtype of ['f32', 'bf16'] as const)
      test(`${frames} frames of ${tokens} tokens × ${channels} (${dtype}) to ${keep}: groups and merged tokens`, async () => {
        const [gx, cx] = pair(values(frames * tokens * channels, -1, 1), [frames, tokens, channels], dtype);
        const xs = await cx.data(); // the features as the dtype holds them
        const [gPlan, cPlan] = [await tomePlan(gx, keep), await tomePlan(cx, keep)];
        let differ = 0;
        for (let f = 0; f < frames; f++) {
          if (JSON.stringify(gPlan[f]) === JSON.stringify(cPlan[f])) continue;
          differ++;
          const { margin } = referenceGroups(
            metricOf(xs, f, tokens, channels),
            tokens,
            channels / TOME_HEADS,
            keep,
          );
          assert.ok(margin < 1e-6, `frame ${f}: groups differ with a decision margin of ${margin}`);
        }
        assert.ok(differ <= frames / 4, `${differ} of ${frames} frames differ`);
        // Chunks of one frame give the same plan on the device.
        assert.deepEqual(await tomePlan(gx, keep, TOME_HEADS, 1), gPlan);
        // The merge by the same groups.
        using gm = tomeApply(gx, gPlan);
        using cm = tomeApply(cx, gPlan);
        assert.equal(gm.dtype, dtype);
        assert.ok(relErr(await gm.data(), await cm.data()) <= (dtype === 'f32' ? 1e-6 : 1e-2));
        gx.dispose();
        cx.dispose();
      });

  test('the official fixture: the same groups as the official merge on CUDA', async () => {
    const dir = join(import.meta.dirname, '..', 'test', 'fixtures', 'timeviper');
    await using file = await SafetensorsFile.open(join(dir, 'tome.safetensors'));
    for (const [name, keep] of [
      ['grid729', 16],
      ['even50', 5],
    ] as const) {
      using x = await file.loadTensor(gpu, `${name}.x`, { dtype: 'f32' });
      using groups = await file.loadTensor(cpu, `${name}.groups`, { dtype: 'f32' });
      const member = await groups.data();
      const [frames, tokens] = x.shape;
      const plan = await tomePlan(x, keep);
      for (let f = 0; f < frames; f++)
        plan[f].forEach((g, k) => {
          const want: number[] = [];
          for (let i = 0; i < tokens; i++) if (member[(f * keep + k) * tokens + i] > 0.5) want.push(i);
          assert.deepEqual(
            [...g].sort((a, b) => a - b),
            want,
            `${name} frame ${f} token ${k}`,
          );
        });
    }
  });
});
