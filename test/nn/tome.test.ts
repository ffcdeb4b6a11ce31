/**
 * ToMe against the official TimeViper `ToMe16_mlp_hd64.merge_tokens` (tools/reference/timeviper_fixtures.py, made
 * with the official tome.py): the merged features and which original tokens each output token averages, for a
 * 729-token grid (SigLIP so400m's 27×27, to 16) and an even count; and the device matching against the plain
 * f64 JavaScript reference (test/nn/tome-reference.ts: groups and output order) on random frames of several
 * sizes, odd counts, exact ties and chunked clips.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { TOME_HEADS, tomeApply, tomeMerge, tomePlan, tomeSchedule } from '../../src/nn/tome.js';
import * as ops from '../../src/runtime/ops.js';
import { ShapeError } from '../../src/runtime/shape.js';
import type { Tensor } from '../../src/runtime/tensor.js';
import { randn, relErr, rng } from '../helpers.js';
import { referenceGroups } from './tome-reference.js';

const be = cpuBackend();
const file = await SafetensorsFile.open(
  join(import.meta.dirname, '..', 'fixtures', 'timeviper', 'tome.safetensors'),
);
after(() => file.close());

const load = (name: string) => file.loadTensor(be, name, { dtype: 'f32' });

/** Each frame's head-averaged metric [tokens, dim] in f64, computed here from x [frames, tokens, C]. */
async function headMetric(x: Tensor): Promise<Float64Array[]> {
  const [frames, tokens, channels] = x.shape;
  const dim = channels / TOME_HEADS;
  const xs = await x.data();
  return Array.from({ length: frames }, (_, f) => {
    const metric = new Float64Array(tokens * dim);
    for (let t = 0; t < tokens; t++)
      for (let h = 0; h < TOME_HEADS; h++)
        for (let d = 0; d < dim; d++)
          metric[t * dim + d] += xs[(f * tokens + t) * channels + h * dim + d] / TOME_HEADS;
    return metric;
  });
}

describe('ToMe', () => {
  it('merges 729 tokens to 16 in the rounds TimeViper takes (half, then the remainder)', () => {
    assert.deepEqual(tomeSchedule(729, 16), [364, 182, 91, 46, 23, 7]);
    assert.deepEqual(tomeSchedule(50, 5), [25, 12, 6, 2]);
    assert.deepEqual(tomeSchedule(17, 16), [1]);
    assert.throws(() => tomeSchedule(16, 16), ShapeError);
  });

  for (const [name, keep] of [
    ['grid729', 16],
    ['even50', 5],
  ] as const) {
    it(`${name}: the official merged features and groups, in the official order`, async () => {
      using x = await load(`${name}.x`);
      using want = await load(`${name}.merged`);
      using groups = await load(`${name}.groups`);
      using got = await tomeMerge(x, keep);
      assert.deepEqual(got.shape, want.shape);
      assert.ok(relErr(await got.data(), await want.data()) <= 1e-5);
      // Membership: each output token's original tokens (the order is the merged features' above).
      const [frames, tokens] = x.shape;
      const plan = await tomePlan(x, keep);
      const member = await groups.data();
      for (let f = 0; f < frames; f++) {
        const theirs = Array.from({ length: keep }, (_, k) => {
          const row: number[] = [];
          for (let i = 0; i < tokens; i++) if (member[(f * keep + k) * tokens + i] > 0.5) row.push(i);
          return row;
        });
        assert.deepEqual(
          plan[f].map((g) => [...g].sort((a, b) => a - b)),
          theirs,
        );
      }
    });
  }

  // [frames, tokens, channels, keep]: TimeViper's 729 → 16 (full width and narrow), odd and even small ones.
  for (const [frames, tokens, channels, keep] of [
    [1, 729, 1152, 16],
    [3, 729, 64, 16],
    [5, 50, 32, 5],
    [4, 97, 48, 7],
    [6, 33, 16, 4],
    [2, 17, 32, 16],
  ] as const) {
    it(`${frames} random frames of ${tokens} tokens × ${channels} to ${keep}: the reference's groups and order`, async () => {
      const xs = randn(frames * tokens * channels, rng(tokens * 31 + channels), -1, 1);
      using x = ops.tensor(be, xs, [frames, tokens, channels]);
      const plan = await tomePlan(x, keep);
      const metrics = await headMetric(x);
      const dim = channels / TOME_HEADS;
      // The device scores in f32 (as the official torch code), the reference in f64: a frame may differ only
      // where a decision is a near tie in f64 (which kernels — TypeScript, C, wasm — then break by their
      // rounding: metric dim 1 normalises to ±1 and ties every score).
      for (let f = 0; f < frames; f++) {
        const ref = referenceGroups(metrics[f], tokens, dim, keep);
        if (JSON.stringify(plan[f]) !== JSON.stringify(ref.groups))
          assert.ok(
            ref.margin < 1e-6,
            `frame ${f}: groups differ from f64's with a decision margin of ${ref.margin}`,
          );
      }
      // One frame per chunk gives the same plan; bf16 features match their f32 copy (the metric is f32).
      assert.deepEqual(await tomePlan(x, keep, TOME_HEADS, 1), plan);
      using h = ops.cast(x, 'bf16');
      using h32 = ops.cast(h, 'f32');
      assert.deepEqual(await tomePlan(h, keep), await tomePlan(h32, keep));
    });
  }

  // Metric dim 1 with powers of two: every normalised metric is exactly ±1 and every score ±1, in f32 and f64
  // alike (for one round: later sums of such tokens need not normalise exactly).
  it('exact ties: the first maximum, then the lower index', async () => {
    const [frames, tokens, keep] = [3, 61, 31];
    const r = rng(9);
    const palette = [0.5, -0.25, 1, -2];
    const xs = Float32Array.from({ length: frames * tokens }, () => palette[Math.floor(r() * 4)]);
    using x = ops.tensor(
      be,
      Float32Array.from({ length: xs.length * TOME_HEADS }, (_, i) => xs[i >> 4]),
      [frames, tokens, TOME_HEADS],
    );
    const plan = await tomePlan(x, keep);
    for (let f = 0; f < frames; f++) {
      const metric = xs.subarray(f * tokens, (f + 1) * tokens);
      assert.deepEqual(plan[f], referenceGroups(metric, tokens, 1, keep).groups);
    }
  });

  it('merges by the groups: each output token the mean of its group, in the features dtype', async () => {
    const xs = randn(2 * 7 * 16, rng(3), -1, 1);
    const groups = [
      [[0, 3], [1], [2, 4, 5, 6]],
      [[6], [5, 0, 1], [2, 3, 4]],
    ];
    for (const dtype of ['f32', 'bf16'] as const) {
      using x = ops.tensor(be, xs, [2, 7, 16], dtype);
      const xv = await x.data();
      using y = tomeApply(x, groups);
      assert.equal(y.dtype, dtype);
      assert.deepEqual(y.shape, [2, 3, 16]);
      const want = groups.flatMap((frame, f) =>
        frame.flatMap((g) =>
          Array.from(
            { length: 16 },
            (_, c) => g.reduce((s, i) => s + xv[(f * 7 + i) * 16 + c], 0) / g.length,
          ),
        ),
      );
      assert.ok(relErr(await y.data(), want) <= (dtype === 'f32' ? 1e-6 : 1e-2));
    }
  });

  it('refuses groups that do not fit the features: unequal counts, more members than tokens', () => {
    using x = ops.zeros(be, [2, 3, 16]);
    assert.throws(
      () =>
        tomeApply(x, [
          [[0, 1], [2]],
          [[0], [1], [2]],
        ]),
      /frame 1 has 3 groups of 3 tokens \(frame 0: 2 groups; at most 3 tokens\)/,
    );
    assert.throws(() => tomeApply(x, [[[0, 1, 1, 2]], [[0, 1, 2]]]), /frame 0 has 1 groups of 4 tokens/);
  });

  it('refuses features whose channels do not split into the metric heads', async () => {
    using x = ops.zeros(be, [1, 20, 30]);
    await assert.rejects(tomeMerge(x, 4), /30 channels do not split into 16 metric heads/);
  });
});
