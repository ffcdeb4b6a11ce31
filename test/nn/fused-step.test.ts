// Fused projections (Linear.fuse; q‖k‖v and gate‖up loaded as one weight) on the CPU: one GEMM equals the
// parts', the parts are views of the fused weight, and a one-token step of self-attention (plain and over a
// segmented cache) and of a gated MLP equals the unfused modules'. test-cuda/decode.test.ts checks the GPU.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import { Linear } from '../../src/nn/linear.js';
import * as ops from '../../src/runtime/ops.js';
import { assertCloseScaled, randn, rng } from '../helpers.js';
import { attentionStep, mlpStep } from './fused-step.js';

const be = cpuBackend();
const r = rng(3);
const lin = (o: number, i: number, bias: boolean) =>
  new Linear(ops.tensor(be, randn(o * i, r), [o, i]), bias ? ops.tensor(be, randn(o, r), [o]) : null);

describe('fused projections', () => {
  it('Linear.fuse: one GEMM gives every part, the parts are views of the fused weight', async () => {
    const parts = [lin(5, 8, true), lin(3, 8, true), lin(3, 8, true)];
    using x = ops.tensor(be, randn(2 * 8, r), [2, 8]);
    const want = await Promise.all(parts.map(async (l) => [...(await l.forward(x).data())]));
    const f = Linear.fuse(parts)!;
    assert.ok(f, 'same dtype, input size and biases fuse');
    assert.deepEqual(f.fused.weight.shape, [11, 8]);
    using y = f.fused.forward(x);
    const got = await y.data();
    for (const [i, l] of f.parts.entries()) {
      assert.equal(l.weight.buffer, f.fused.weight.buffer, `part ${i} shares the fused weight`);
      assertCloseScaled([...(await l.forward(x).data())], want[i], 1e-6);
    }
    const at = [0, 5, 8];
    for (let row = 0; row < 2; row++)
      for (const [i, w] of want.entries())
        assertCloseScaled(
          Array.from(got.subarray(row * 11 + at[i], row * 11 + at[i] + parts[i].outFeatures)),
          w.slice(row * parts[i].outFeatures, (row + 1) * parts[i].outFeatures),
          1e-6,
        );
    for (const l of [f.fused, ...f.parts]) l[Symbol.dispose]();
  });

  it('Linear.fuse: parts with and without a bias stay apart', () => {
    const parts = [lin(2, 4, true), lin(2, 4, false)];
    assert.equal(Linear.fuse(parts), null);
    for (const l of parts) assert.doesNotThrow(() => l.weight.assertLive('still usable'));
  });

  for (const dtype of ['f32', 'bf16'] as const) {
    const tol = dtype === 'f32' ? 1e-5 : 2e-2;
    it(`self-attention one-token step, fused = separate (${dtype})`, async () => {
      assertCloseScaled(await attentionStep(be, true, dtype), await attentionStep(be, false, dtype), tol);
    });
    it(`self-attention one-token step over a segmented cache = over a plain one (${dtype})`, async () => {
      const plain = await attentionStep(be, false, dtype);
      assertCloseScaled(await attentionStep(be, true, dtype, true), plain, tol);
      assertCloseScaled(await attentionStep(be, false, dtype, true), plain, tol);
    });
    it(`gated MLP one-token step, fused = separate (${dtype})`, async () => {
      assertCloseScaled(await mlpStep(be, true, dtype), await mlpStep(be, false, dtype), tol);
    });
  }
});
