/**
 * The attention probe against a case worked by hand: keys 0, 1, 2 (head dim 1, scale 1), a query head at
 * ln 2 sees scores 0, ln 2, 2·ln 2 → probabilities 1/7, 2/7, 4/7; a query head at 0 sees each key at 1/3.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import { AttentionProbe } from '../../src/nn/attention-probe.js';
import * as ops from '../../src/runtime/ops.js';
import { assertClose } from '../helpers.js';

const be = cpuBackend();
const LN2 = Math.log(2);
/** [1, 3 keys, 1 kv head, d 1] keys 0, 1, 2. */
const keys = () => ops.tensor(be, new Float32Array([0, 1, 2]), [1, 3, 1, 1]);
/** [1, seq, 2 heads, 1]: rows of (head 0, head 1) query values. */
const queries = (rows: number[][]) => ops.tensor(be, new Float32Array(rows.flat()), [1, rows.length, 2, 1]);

describe('AttentionProbe', () => {
  it('adds the last query row’s softmax over the span, summed over the heads (GQA)', async () => {
    using probe = new AttentionProbe(1, 3);
    using k = keys();
    // The first query row (9, 9) is not the last position: it must not count.
    using q = queries([
      [9, 9],
      [LN2, 0],
    ]);
    probe.record(q, k);
    assertClose(await probe.read(), [2 / 7 + 1 / 3, 4 / 7 + 1 / 3], 1e-6, 'one record');
    // A second step with head 0 at 0 and head 1 at ln 2 adds the same masses with the heads swapped.
    using q2 = queries([[0, LN2]]);
    probe.record(q2, k);
    assertClose(await probe.read(), [2 * (2 / 7 + 1 / 3), 2 * (4 / 7 + 1 / 3)], 1e-6, 'two records');
  });

  it('reads only the valid keys of a pre-allocated cache', async () => {
    using probe = new AttentionProbe(0, 2);
    using k = keys();
    using q = queries([[LN2, LN2]]);
    // kvLength 2: keys 0 and 1 only → 1/3, 2/3 per head.
    probe.record(q, k, 2);
    assertClose(await probe.read(), [2 / 3, 4 / 3], 1e-6);
  });

  it('reads zeros before any record and refuses spans outside the keys', async () => {
    using probe = new AttentionProbe(0, 3);
    assert.deepEqual([...(await probe.read())], [0, 0, 0]);
    using wide = new AttentionProbe(0, 4);
    using k = keys();
    using q = queries([[0, 0]]);
    assert.throws(() => wide.record(q, k), /span \[0, 4\) exceeds 3 keys/);
    assert.throws(() => new AttentionProbe(2, 2), /bad key span/);
  });
});

describe('ops.attentionMass', () => {
  it('gives one position’s softmax mass per key of a span, summed over the heads', async () => {
    using k = keys();
    // Heads at ln 2 and 0 over keys 0..2 (scale 1): 1/7, 2/7, 4/7 and 1/3 each; keys [1, 3).
    using q = ops.tensor(be, new Float32Array([LN2, 0]), [1, 1, 2, 1]);
    using mass = ops.attentionMass(q, k, { from: 1, to: 3, scale: 1 });
    assert.deepEqual(mass.shape, [2]);
    assertClose(await mass.data(), [2 / 7 + 1 / 3, 4 / 7 + 1 / 3], 1e-6);
  });

  it('refuses several positions and spans outside the valid keys, naming them', () => {
    using k = keys();
    using q = queries([
      [0, 0],
      [0, 0],
    ]);
    assert.throws(() => ops.attentionMass(q, k), /must be one position/);
    using one = queries([[0, 0]]);
    assert.throws(
      () => ops.attentionMass(one, k, { kvLength: 2, from: 0, to: 3 }),
      /keys \[0, 3\) of 2 valid/,
    );
  });
});
