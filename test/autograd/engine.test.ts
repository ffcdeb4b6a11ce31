/** The tape itself: API contract, memory, errors, in-place writes, noGrad and activation checkpointing. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  AutogradError,
  checkpoint,
  coveredOps,
  noGrad,
  requiresGrad,
  valueAndGrad,
  valueAndGradAsync,
} from '../../src/autograd/index.js';
import * as ops from '../../src/runtime/ops.js';
import { tidy } from '../../src/runtime/scope.js';
import type { Tensor } from '../../src/runtime/tensor.js';
import { rng } from '../helpers.js';
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

  it('parameters that are views of one tensor the forward reads whole (q‖k‖v fused at load) get their rows', async () => {
    const fused = T([1, 2, 3, 4, 5, 6], [3, 2]);
    const [a, b] = [fused.narrow(0, 1), fused.narrow(1, 3)]; // rows 0 and 1–2, made before recording
    const x = T([1, -1], [1, 2]);
    const { grads } = valueAndGrad(() => ops.sum(ops.sum(ops.linear(x, fused), -1), -1), [a, b]);
    // loss = Σ_r W_r·x: each row's gradient is x.
    assert.deepEqual(await grads[0].toArray(), [1, -1]);
    assert.deepEqual(await grads[1].toArray(), [1, -1, 1, -1]);
    for (const t of [fused, a, b, x, ...grads]) t.dispose();
  });

  it('a bf16 parameter gets an f32 gradient', async () => {
    const w = ops.cast(T([0.5, -2], [2]), 'bf16');
    const { grads } = valueAndGrad(() => ops.cast(ops.sum(ops.mul(w, w), -1), 'f32'), [requiresGrad(w)]);
    assert.equal(grads[0].dtype, 'f32');
    assert.deepEqual(await grads[0].toArray(), [1, -4]);
    w.dispose();
    grads[0].dispose();
  });

  it('bf16 activations: a kernel’s bf16 gradient shared by two inputs (the fused residual add)', async () => {
    const r = rng(3);
    const host = (n: number) => Float32Array.from({ length: n }, () => r() * 2 - 1);
    const [xv, rv, wv] = [host(15), host(15), host(5)];
    const grads = async (dtype: 'f32' | 'bf16') => {
      const [x, res, w] = [
        ops.tensor(cpu, xv, [3, 5], dtype),
        ops.tensor(cpu, rv, [3, 5], dtype),
        ops.tensor(cpu, wv, [5], dtype),
      ];
      const { grads: g } = valueAndGrad(() => {
        const { sum, out } = ops.addRmsNorm(x, res, w, { eps: 1e-5 });
        return ops.cast(ops.sum(ops.sum(ops.mul(out, sum), -1), -1), 'f32');
      }, [x, res, w]);
      const values = await Promise.all(g.map((t) => t.toArray()));
      for (const t of [x, res, w, ...g]) t.dispose();
      return values;
    };
    const [lo, hi] = [await grads('bf16'), await grads('f32')];
    // bf16 rounds activations and the kernel's dx to 8 bits of mantissa: agreement to a few percent.
    for (let i = 0; i < 3; i++) assertClose(lo[i], hi[i], 5e-2, `input ${i}`);
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

  it('accepts writes elsewhere in a saved tensor’s memory (a cache’s later rows)', async () => {
    const x = T([1, 2, 3], [1, 3]);
    const cache = ops.zeros(cpu, [4, 3]);
    const { grads } = valueAndGrad(() => {
      ops.writeSlice(cache, ops.exp(x), 0, 0);
      const row = cache.narrow(0, 1);
      const s = ops.sum(ops.sum(ops.mul(row, row), -1), -1); // mul saves the view of row 0
      ops.writeSlice(cache, T([9, 9, 9], [1, 3]), 0, 1);
      return s;
    }, [x]);
    assertClose(
      await grads[0].toArray(),
      [1, 2, 3].map((v) => 2 * Math.exp(2 * v)),
      1e-6,
      'grad',
    );
    for (const t of [x, cache, ...grads]) t.dispose();
  });

  it('a write through a view of untracked memory reaches the base and its other views (zeros filled per part)', async () => {
    const a = T([1, 2, 3, 4, 5, 6], [3, 2]);
    for (const through of ['base', 'narrow', 'reshaped narrow'] as const) {
      const { value, grads } = valueAndGrad(() => {
        const x = ops.zeros(cpu, [2, 4, 2]);
        const flat = x.reshape([8, 2]); // a view made before the write
        if (through === 'base') ops.writeSlice(flat, a, 0, 1);
        else if (through === 'narrow') ops.writeSlice(flat.narrow(1, 4), a, 0, 0);
        else ops.writeSlice(x.narrow(0, 1).reshape([4, 2]).narrow(1, 4), a, 0, 0);
        return ops.add(ops.sum(ops.mul(flat, flat).reshape([-1]), 0), ops.sum(x.reshape([-1]), 0));
      }, [a]);
      // Σx² + Σx over the written elements: 91 + 21, gradient 2a + 1.
      assert.equal(value, 112, through);
      assert.deepEqual(await grads[0].toArray(), [3, 5, 7, 9, 11, 13], through);
      grads[0].dispose();
    }
    a.dispose();
  });

  it('valueAndGradAsync records across awaits (a host decision between ops)', async () => {
    const x = T([0.5, -2, 1.5], [3]);
    const { value, grads } = await valueAndGradAsync(async () => {
      const e = ops.mul(x, x);
      const host = await e.toArray(); // e.g. which tokens to keep
      const keep = host.indexOf(Math.max(...host));
      const picked = ops.slice(e, 0, keep, keep + 1);
      const loss = ops.sum(ops.mul(picked, x.narrow(keep, keep + 1)), -1);
      e.dispose();
      picked.dispose();
      return loss;
    }, [x]);
    // loss = x₁³ at the largest square (x₁ = −2): −8, gradient 3·x₁² there.
    assert.equal(value, -8);
    assert.deepEqual(await grads[0].toArray(), [0, 12, 0]);
    x.dispose();
    grads[0].dispose();
  });

  it('every op the runtime records has a backward rule, but the decode-time ones', () => {
    const src = ['runtime/ops.ts', 'runtime/tensor.ts']
      .map((f) => readFileSync(join(import.meta.dirname, '..', '..', 'src', f), 'utf8'))
      .join('\n');
    const recorded = new Set([...src.matchAll(/record(?:InPlace)?\(\s*'(\w+)'/g)].map((m) => m[1]));
    const decodeOnly = new Set(['attentionRows', 'scatterRows', 'ssmStep', 'mambaStepRows']);
    assert.ok(recorded.size >= 20, `found ${recorded.size} recorded ops`);
    const covered = new Set(coveredOps());
    for (const op of recorded) assert.equal(covered.has(op), !decodeOnly.has(op), op);
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

  it('a frozen weight’s matmul does not keep its activation', () => {
    const r = rng(2);
    const w = ops.tensor(
      cpu,
      Float32Array.from({ length: 64 * 64 }, () => (r() - 0.5) / 8),
      [64, 64],
    );
    const x = ops.tensor(
      cpu,
      Float32Array.from({ length: 64 * 64 }, () => r() - 0.5),
      [64, 64],
    );
    const peak = (params: Tensor[]) => {
      cpu.resetPeak();
      const before = cpu.memory().current;
      const { grads } = valueAndGrad(() => {
        let h = x;
        for (let i = 0; i < 8; i++) {
          const hh = h;
          h = tidy(() => ops.matmul(ops.affine(hh, 2), w)); // affine keeps nothing; matmul keeps A for dW
        }
        return ops.sum(ops.sum(h, -1), -1);
      }, params);
      for (const g of grads) g.dispose();
      return cpu.memory().peak - before;
    };
    const frozen = peak([x]);
    const trained = peak([x, w]);
    assert.ok(frozen < 0.6 * trained, `peak ${frozen} bytes with w frozen vs ${trained} trained`);
    w.dispose();
    x.dispose();
  });

  it('checkpoint lowers the peak memory of a deep chain (it keeps only each block’s input)', () => {
    const r = rng(1);
    const w = ops.tensor(
      cpu,
      Float32Array.from({ length: 64 * 64 }, () => (r() - 0.5) / 8),
      [64, 64],
    );
    const x = ops.tensor(
      cpu,
      Float32Array.from({ length: 64 * 64 }, () => r() - 0.5),
      [64, 64],
    );
    const peak = (ck: boolean) => {
      cpu.resetPeak();
      const { grads } = valueAndGrad(() => {
        let h = x;
        for (let i = 0; i < 8; i++) {
          const hh = h;
          // As model code does, the block frees its temporaries: only what the tape saves stays alive (three
          // activations per block without checkpointing; with it, the block's input only).
          const block = () => tidy(() => ops.mul(ops.sigmoid(ops.matmul(hh, w)), ops.matmul(hh, w)));
          h = ck ? checkpoint(block) : block();
        }
        return ops.sum(ops.sum(h, -1), -1);
      }, [w]);
      grads[0].dispose();
      return cpu.memory().peak - cpu.memory().current;
    };
    const [plain, ck] = [peak(false), peak(true)];
    assert.ok(ck < 0.6 * plain, `peak above the resting memory: ${ck} bytes checkpointed vs ${plain} plain`);
    w.dispose();
    x.dispose();
  });
});
