/** The tape itself: API contract, memory, errors, in-place writes, noGrad and activation checkpointing. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AutogradError, checkpoint, noGrad, requiresGrad, valueAndGrad } from '../../src/autograd/index.js';
import * as ops from '../../src/runtime/ops.js';
import { tidy } from '../../src/runtime/scope.js';
import { assertClose, cpu } from './gradcheck.js';

const T = (v: number[], s: number[]) => ops.tensor(cpu, v, s);

describe('autograd engine', () => {
  it('returns f32 gradients of the params’ shapes, zeros for unused ones, and frees the rest', async () => {
    const w = T([1, 2, 3, 4, 5, 6], [2, 3]);
    const x = T([1, -1, 2], [1, 3]);
    const unused = T([7, 8], [2]);
    const before = cpu.memory().current;
    const { value, grads } = valueAndGrad(() => {
      const y = ops.linear(x, w);
      return ops.sum(ops.sum(ops.mul(y, y), -1), -1);
    }, [w, x, unused]);
    // y = W·x = [5, 11]; loss = 146; dW = 2·y·xᵀ; dx = 2·Wᵀ·y.
    assert.equal(value, 146);
    assert.deepEqual(await grads[0].toArray(), [10, -10, 20, 22, -22, 44]);
    assert.deepEqual(await grads[1].toArray(), [98, 130, 162]);
    assert.deepEqual(await grads[2].toArray(), [0, 0]);
    assert.deepEqual(grads[0].shape, [2, 3]);
    assert.ok(grads.every((g) => g.dtype === 'f32'));
    assert.equal(cpu.memory().current, before + (6 + 3 + 2) * 4, 'only the gradients remain');
    for (const t of [w, x, unused, ...grads]) t.dispose();
  });

  it('a bf16 parameter gets an f32 gradient', async () => {
    const w = ops.cast(T([0.5, -2], [2]), 'bf16');
    const { grads } = valueAndGrad(() => ops.cast(ops.sum(ops.mul(w, w), -1), 'f32'), [requiresGrad(w)]);
    assert.equal(grads[0].dtype, 'f32');
    assert.deepEqual(await grads[0].toArray(), [1, -4]);
    w.dispose();
    grads[0].dispose();
  });

  it('saved tensors survive the model code disposing them', async () => {
    const x = T([1, 2, 3], [3]);
    const { grads } = valueAndGrad(() => {
      const e = ops.exp(x);
      const s = ops.sum(ops.mul(e, e), -1);
      e.dispose();
      return s;
    }, [x]);
    assertClose(
      await grads[0].toArray(),
      [1, 2, 3].map((v) => 2 * Math.exp(2 * v)),
      1e-6,
      'grad',
    );
    x.dispose();
    grads[0].dispose();
  });

  it('rejects a non-scalar loss and nested recording, and frees the tape', () => {
    const x = T([1, 2], [2]);
    const before = cpu.memory().current;
    assert.throws(() => valueAndGrad(() => ops.exp(x), [x]), AutogradError);
    assert.throws(
      () => valueAndGrad(() => valueAndGrad(() => ops.sum(x), [x]).grads[0], [x]),
      /already recording/,
    );
    assert.equal(cpu.memory().current, before);
    x.dispose();
  });

  it('a decode-time op on tensors that need gradients fails clearly', () => {
    const x = T([1, 2, 3, 4], [1, 2, 2]);
    const dst = ops.zeros(cpu, [1, 4, 2]);
    const scatter = () => {
      ops.scatterRows(x, [{ dst, at: 1 }]);
      return ops.sum(ops.sum(dst, -1), -1);
    };
    assert.throws(() => valueAndGrad(scatter, [x]), /'scatterRows' has no backward rule/);
    x.dispose();
    dst.dispose();
  });

  it('refuses a saved tensor that was overwritten in place before backward', () => {
    const x = T([1, 2, 3], [3]);
    assert.throws(
      () =>
        valueAndGrad(() => {
          const e = ops.exp(x); // exp saves its output
          const s = ops.sum(e, -1);
          ops.writeSlice(e, T([0], [1]), 0, 0);
          return s;
        }, [x]),
      /overwritten in place/,
    );
    x.dispose();
  });

  it('noGrad records nothing (the loss then depends on no parameter)', async () => {
    const x = T([1, 2], [2]);
    const { grads } = valueAndGrad(
      () =>
        ops.add(
          ops.sum(x),
          noGrad(() => ops.sum(ops.mul(x, x))),
        ),
      [x],
    );
    assert.deepEqual(await grads[0].toArray(), [1, 1]);
    x.dispose();
    grads[0].dispose();
  });

  it('inference outside valueAndGrad is unchanged and records nothing', async () => {
    const x = T([0.5, -1, 2], [3]);
    const y = tidy(() => ops.silu(ops.mul(x, x)));
    assert.deepEqual(
      await y.toArray(),
      [0.25, 1, 4].map((v) => Math.fround(v / (1 + Math.exp(-v)))),
    );
    x.dispose();
    y.dispose();
  });

  it('checkpoint gives the same gradients, replaying inputs the model code disposed', async () => {
    const w = T([0.3, -0.7, 1.1, 0.2], [2, 2]);
    const x = T([1, -2, 0.5, 3], [2, 2]);
    const block = (h: ReturnType<typeof T>) => ops.silu(ops.matmul(h, w));
    const loss = (ck: boolean) =>
      valueAndGrad(() => {
        let h = ops.mul(x, x);
        for (let i = 0; i < 3; i++) {
          const hh = h;
          const next = ck ? checkpoint(() => block(hh)) : block(hh);
          h.dispose();
          h = next;
        }
        return ops.sum(ops.sum(h, -1), -1);
      }, [w, x]);
    const plain = loss(false);
    const before = cpu.memory().current;
    const ck = loss(true);
    assert.equal(ck.value, plain.value);
    for (let i = 0; i < 2; i++)
      assertClose(await ck.grads[i].toArray(), await plain.grads[i].toArray(), 1e-6, `grad ${i}`);
    for (const g of ck.grads) g.dispose();
    assert.equal(cpu.memory().current, before);
    for (const t of [w, x, ...plain.grads]) t.dispose();
  });
});
