/**
 * ToMe against the official TimeViper `ToMe16_mlp_hd64.merge_tokens` (tools/reference/timeviper_fixtures.py, made
 * with the official tome.py): the merged features and which original tokens each output token averages, in the
 * official output order, for a 729-token grid (SigLIP so400m's 27×27, to 16) and an even count.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { TOME_HEADS, tomeGroups, tomeMerge, tomeSchedule } from '../../src/nn/tome.js';
import * as ops from '../../src/runtime/ops.js';
import { ShapeError } from '../../src/runtime/shape.js';
import { relErr } from '../helpers.js';

const be = cpuBackend();
const file = await SafetensorsFile.open(
  join(import.meta.dirname, '..', 'fixtures', 'timeviper', 'tome.safetensors'),
);
after(() => file.close());

const load = (name: string) => file.loadTensor(be, name, { dtype: 'f32' });

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
      // Membership: each output token's original tokens (the metric computed here from x by hand).
      const [frames, tokens, channels] = x.shape;
      const dim = channels / TOME_HEADS;
      const xs = await x.data();
      const member = await groups.data();
      for (let f = 0; f < frames; f++) {
        const metric = new Float32Array(tokens * dim);
        for (let t = 0; t < tokens; t++)
          for (let h = 0; h < TOME_HEADS; h++)
            for (let d = 0; d < dim; d++)
              metric[t * dim + d] += xs[(f * tokens + t) * channels + h * dim + d] / TOME_HEADS;
        const ours = tomeGroups(metric, tokens, dim, keep);
        const theirs = Array.from({ length: keep }, (_, k) => {
          const row: number[] = [];
          for (let i = 0; i < tokens; i++) if (member[(f * keep + k) * tokens + i] > 0.5) row.push(i);
          return row;
        });
        assert.deepEqual(
          ours.map((g) => [...g].sort((a, b) => a - b)),
          theirs,
        );
      }
    });
  }

  it('refuses features whose channels do not split into the metric heads', async () => {
    using x = ops.zeros(be, [1, 20, 30]);
    await assert.rejects(tomeMerge(x, 4), /30 channels do not split into 16 metric heads/);
  });
});
