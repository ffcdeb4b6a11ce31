/** Gradient checks of matmul/linear, the views and layout ops, reductions, softmax and embedding. */
import { describe, it } from 'node:test';
import { useBackwardKernels, valueAndGrad } from '../../src/autograd/index.js';
import * as ops from '../../src/runtime/ops.js';
import type { Tensor } from '../../src/runtime/tensor.js';
import { assertClose, cpu, gradCheck } from './gradcheck.js';
import * as ref from './reference.js';

describe('autograd: matmul and linear', () => {
  const cases: {
    a: number[];
    b: number[];
    transA?: boolean;
    transB?: boolean;
    bias?: boolean;
    alpha?: number;
  }[] = [
    { a: [3, 5], b: [5, 7] },
    { a: [5, 3], b: [5, 7], transA: true },
    { a: [3, 5], b: [7, 5], transB: true, bias: true },
    { a: [5, 3], b: [7, 5], transA: true, transB: true, alpha: 0.5 },
    { a: [2, 3, 5], b: [5, 7], bias: true },
    { a: [2, 3, 5], b: [7, 5], transB: true },
    { a: [2, 5, 3], b: [5, 7], transA: true },
    { a: [2, 5, 3], b: [7, 5], transA: true, transB: true },
    { a: [2, 3, 5], b: [2, 5, 7], alpha: 1.5 },
    { a: [2, 5, 3], b: [2, 7, 5], transA: true, transB: true },
  ];
  for (const c of cases) {
    const n = c.b[c.b.length - (c.transB ? 2 : 1)];
    it(JSON.stringify(c), () =>
      gradCheck({
        inputs: [{ shape: c.a }, { shape: c.b }, ...(c.bias ? [{ shape: [n] }] : [])],
        run: ([a, b, bias]) => ops.matmul(a, b, { transA: c.transA, transB: c.transB, alpha: c.alpha, bias }),
        ref: ([a, b, bias]) => ref.matmul(a, c.a, b, c.b, { ...c, bias: bias ?? null }),
      }),
    );
  }
  // bf16 operands (GPU training): each product takes the upstream gradient rounded to bf16 once and returns
  // f32, so the gradients equal the f32 rule's on the rounded operands and the rounded upstream gradient.
  for (const c of cases.filter((c) => !c.bias))
    it(`bf16 operands: ${JSON.stringify(c)}`, async () => {
      const n = c.b[c.b.length - (c.transB ? 2 : 1)];
      const outShape = [...c.a.slice(0, -2), c.a[c.a.length - (c.transA ? 1 : 2)], n];
      const rand = (shape: number[], seed: number) =>
        ops.tensor(
          cpu,
          Float32Array.from({ length: shape.reduce((x, y) => x * y, 1) }, (_, i) =>
            Math.sin(seed * 97 + i * 1.37),
          ),
          shape,
        );
      using a32 = rand(c.a, 1);
      using b32 = rand(c.b, 2);
      using r32 = rand(outShape, 3);
      const round = (t: Tensor) => ops.cast(ops.cast(t, 'bf16'), 'f32');
      using a = ops.cast(a32, 'bf16');
      using b = ops.cast(b32, 'bf16');
      using aR = round(a32);
      using bR = round(b32);
      using rR = round(r32);
      const opts = { transA: c.transA, transB: c.transB, alpha: c.alpha };
      const total = (t: Tensor) => ops.sum(t.reshape([-1]), 0);
      const low = valueAndGrad(() => total(ops.mul(ops.cast(ops.matmul(a, b, opts), 'f32'), r32)), [a, b]);
      const want = valueAndGrad(() => total(ops.mul(ops.matmul(aR, bR, opts), rR)), [aR, bR]);
      for (const [i, g] of low.grads.entries()) {
        if (g.dtype !== 'f32') throw new Error(`gradient ${i} is ${g.dtype}`);
        assertClose(await g.data(), await want.grads[i].data(), 1e-6, `d${'ab'[i]}`);
      }
      for (const g of [...low.grads, ...want.grads]) g.dispose();
    });
  it('linear on [2, 3, 5] with weight [7, 5] and bias', () =>
    gradCheck({
      inputs: [{ shape: [2, 3, 5] }, { shape: [7, 5] }, { shape: [7] }],
      run: ([x, w, b]) => ops.linear(x, w, b),
      ref: ([x, w, b]) => ref.matmul(x, [6, 5], w, [7, 5], { transB: true, bias: b }),
    }));
});

describe('autograd: views and layout', () => {
  const S = [3, 5, 7];
  it('reshape and narrow (views)', () =>
    gradCheck({
      inputs: [{ shape: S }],
      run: ([x]) => ops.mul(x.reshape([15, 7]).narrow(4, 11), x.reshape([15, 7]).narrow(2, 9)),
      ref: ([x]) => {
        const a = ref.slice(x, [15, 7], 0, 4, 11);
        const b = ref.slice(x, [15, 7], 0, 2, 9);
        return a.map((v, i) => v * b[i]);
      },
    }));
  it('permute and transpose', () =>
    gradCheck({
      inputs: [{ shape: S }],
      run: ([x]) => ops.add(ops.permute(x, [2, 0, 1]), ops.transpose(ops.permute(x, [2, 1, 0]), 1, 2)),
      ref: ([x]) => {
        const a = ref.permute(x, S, [2, 0, 1]);
        const b = ref.permute(x, S, [2, 0, 1]);
        return a.map((v, i) => v + b[i]);
      },
    }));
  for (const axis of [0, 1, 2])
    it(`slice, split and concat along axis ${axis}`, () =>
      gradCheck({
        inputs: [{ shape: S }, { shape: S }],
        run: ([x, y]) => {
          const [p, q] = ops.split(x, axis, [1, S[axis] - 1]);
          return ops.concat([q, ops.slice(y, axis, 1, 3), p], axis);
        },
        ref: ([x, y]) =>
          ref.concat(
            [
              { v: ref.slice(x, S, axis, 1, S[axis]), s: S.map((d, i) => (i === axis ? d - 1 : d)) },
              { v: ref.slice(y, S, axis, 1, 3), s: S.map((d, i) => (i === axis ? 2 : d)) },
              { v: ref.slice(x, S, axis, 0, 1), s: S.map((d, i) => (i === axis ? 1 : d)) },
            ],
            axis,
          ),
      }));
  it('flip', () =>
    gradCheck({
      inputs: [{ shape: S }],
      run: ([x]) => ops.mul(ops.flip(x, 1), x),
      ref: ([x]) => ref.flip(x, S, 1).map((v, i) => v * x[i]),
    }));
  it('cast to bf16 and back passes the gradient through', () =>
    gradCheck({
      inputs: [{ shape: [5], values: [0.5, -1.25, 2, 0.75, -3] }],
      run: ([x]) => ops.cast(ops.mul(ops.cast(x, 'bf16'), ops.cast(x, 'bf16')), 'f32'),
      ref: ([x]) => x.map((v) => v * v),
    }));
  it('writeSlice into a fresh tensor and over a tracked one', () =>
    gradCheck({
      inputs: [{ shape: [3, 2, 7] }, { shape: S }],
      run: ([x, y]) => {
        const out = ops.zeros(cpu, S);
        ops.writeSlice(out, x, 1, 3);
        const z = ops.mul(y, ops.full(cpu, [1], 2));
        ops.writeSlice(z, x, 1, 0);
        return ops.add(out, z);
      },
      ref: ([x, y]) => {
        const out = new Float64Array(105);
        for (let a = 0; a < 3; a++)
          for (let d = 0; d < 5; d++)
            for (let c = 0; c < 7; c++) {
              const i = (a * 5 + d) * 7 + c;
              const xv = (dd: number) => x[(a * 2 + dd) * 7 + c];
              out[i] = (d >= 3 ? xv(d - 3) : 0) + (d < 2 ? xv(d) : 2 * y[i]);
            }
        return out;
      },
    }));
});

describe('autograd: reductions and softmax', () => {
  const S = [3, 5, 7];
  for (const op of ['sum', 'mean', 'max'] as const)
    for (const axis of [0, 1, 2])
      it(`${op} over axis ${axis}`, () =>
        gradCheck({
          inputs: [{ shape: S }],
          run: ([x]) => ops.reduce(op, x, axis, axis === 1),
          ref: ([x]) => ref.reduce(op, x, S, axis),
        }));
  it('softmax over the last axis', () =>
    gradCheck({
      inputs: [{ shape: S, lo: -3, hi: 3 }],
      run: ([x]) => ops.softmax(x),
      ref: ([x]) => ref.softmax(x, 7),
    }));
});

describe('autograd: embedding', () => {
  const ids = [4, 0, 4, 2, 6, 5, 4];
  for (const kernel of [true, false])
    it(`repeated and scattered ids add their rows (${kernel ? 'scatter-add kernel' : 'host-indexed fallback'})`, async () => {
      useBackwardKernels(kernel);
      try {
        await gradCheck({
          inputs: [{ shape: [7, 5] }],
          run: ([t]) => ops.embedding(t, ops.tensor(cpu, Int32Array.from(ids), [7], 'i32')),
          ref: ([t]) => ref.embedding(t, 5, ids),
        });
      } finally {
        useBackwardKernels(true);
      }
    });
});

describe('autograd: embeddingBag', () => {
  // Bags of 3, 1, 0 and 3 rows (an empty bag too), ids repeated within and across bags.
  const ids = [4, 0, 4, 2, 6, 5, 4];
  const offsets = [0, 3, 4, 4, 7];
  const bags = (table: Float64Array, mean: boolean): Float64Array => {
    const out = new Float64Array((offsets.length - 1) * 5);
    for (let r = 0; r + 1 < offsets.length; r++) {
      const n = offsets[r + 1] - offsets[r];
      for (let j = offsets[r]; j < offsets[r + 1]; j++)
        for (let d = 0; d < 5; d++) out[r * 5 + d] += table[ids[j] * 5 + d] / (mean && n ? n : 1);
    }
    return out;
  };
  for (const mode of ['sum', 'mean'] as const)
    for (const kernel of [true, false])
      it(`${mode} of each bag's rows (${kernel ? 'scatter-add kernel' : 'host-indexed fallback'})`, async () => {
        useBackwardKernels(kernel);
        try {
          await gradCheck({
            inputs: [{ shape: [7, 5] }],
            run: ([t]) =>
              ops.embeddingBag(
                t,
                ops.tensor(cpu, Int32Array.from(ids), [ids.length], 'i32'),
                ops.tensor(cpu, Int32Array.from(offsets), [offsets.length], 'i32'),
                mode,
              ),
            ref: ([t]) => bags(t, mode === 'mean'),
          });
        } finally {
          useBackwardKernels(true);
        }
      });
});

describe('autograd: in-place writes through views', () => {
  it('a write into a view changes the tensor it views (MambaMia’s gated aggregation pattern)', () =>
    gradCheck({
      inputs: [{ shape: [2, 6, 3] }, { shape: [2, 2, 3] }, { shape: [2, 6, 3] }],
      run: ([x, y, c]) => {
        const h = ops.mul(x, x);
        const groups = h.reshape([4, 3, 3]);
        // Row 2 of each group becomes y's row mixed with that group's row 0.
        const mixed = ops.add(ops.slice(groups, 1, 0, 1), y.reshape([4, 1, 3]));
        ops.writeSlice(groups, mixed, 1, 2);
        return ops.mul(h, c);
      },
      ref: ([x, y, c]) => {
        const h = x.map((v) => v * v);
        for (let g = 0; g < 4; g++)
          for (let j = 0; j < 3; j++) h[(g * 3 + 2) * 3 + j] = h[g * 9 + j] + y[g * 3 + j];
        return h.map((v, i) => v * c[i]);
      },
    }));
});
