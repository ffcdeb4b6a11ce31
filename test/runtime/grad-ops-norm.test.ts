// The backward kernels of the norms and the embedding, the fused losses and AdamW on the CPU backend against
// float64 references written here (central differences for gradients, a plain loop for AdamW), at odd sizes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import { parallelCalls, warmUp } from '../../src/backends/cpu/pool.js';
import { bf16ToF32, f32ToBf16 } from '../../src/runtime/dtype.js';

/** Values exactly representable in bf16. */
const roundBf16 = (v: Float32Array) => v.map((x) => bf16ToF32(f32ToBf16(x)));

import * as g from '../../src/runtime/grad-ops.js';
import * as ops from '../../src/runtime/ops.js';
import { ShapeError } from '../../src/runtime/shape.js';
import type { Tensor } from '../../src/runtime/tensor.js';
import { assertClose, assertCloseScaled, randint, randn, seeded } from '../helpers.js';
import { checkDirections, checkGrads, dot } from './grad-check.js';

const cpu = cpuBackend();
const t = (v: Float32Array | Int32Array, shape: readonly number[], dtype: 'f32' | 'bf16' | 'i32' = 'f32') =>
  ops.tensor(cpu, v, shape, dtype);
const f32 = async (x: Tensor | null) => (x ? Float32Array.from(await x.data()) : null);
const silu = (v: number) => v / (1 + Math.exp(-v));

// ---- RMSNorm / LayerNorm -------------------------------------------------------------------------

interface RmsCase {
  name: string;
  gate: 'none' | 'before' | 'after';
  groupSize?: number;
  weight: boolean;
}

function rmsRef(
  [x, w, gate]: Float64Array[],
  rows: number,
  dim: number,
  c: RmsCase,
  eps: number,
): Float64Array {
  const G = c.groupSize ?? dim;
  const y = new Float64Array(rows * dim);
  for (let r = 0; r < rows; r++)
    for (let g0 = 0; g0 < dim; g0 += G) {
      const u = Array.from({ length: G }, (_, i) => {
        const k = r * dim + g0 + i;
        return c.gate === 'before' ? x[k] * silu(gate[k]) : x[k];
      });
      const inv = 1 / Math.sqrt(u.reduce((a, v) => a + v * v, 0) / G + eps);
      for (let i = 0; i < G; i++) {
        const k = r * dim + g0 + i;
        y[k] = u[i] * inv * (c.weight ? w[g0 + i] : 1) * (c.gate === 'after' ? silu(gate[k]) : 1);
      }
    }
  return y;
}

for (const c of [
  { name: 'plain', gate: 'none', weight: true },
  { name: 'no weight', gate: 'none', weight: false },
  { name: 'gate before the norm (mamba_ssm default)', gate: 'before', weight: true },
  { name: 'gate after the norm, grouped', gate: 'after', weight: true, groupSize: 3 },
  { name: 'gate before, grouped', gate: 'before', weight: true, groupSize: 5 },
] satisfies RmsCase[])
  test(
    `rmsNormBackward matches float64 finite differences: ${c.name}`,
    seeded(async (r) => {
      const [rows, dim, eps] = [3, 15, 1e-5];
      const xv = randn(rows * dim, r, -2, 2);
      const wv = randn(dim, r, 0.5, 1.5);
      const gv = randn(rows * dim, r, -2, 2);
      const dyv = randn(rows * dim, r);
      const x = t(xv, [rows, dim]);
      const weight = c.weight ? t(wv, [dim]) : null;
      const gate = c.gate === 'none' ? null : t(gv, [rows, dim]);
      const opts = { eps, gate, normBeforeGate: c.gate === 'after', groupSize: c.groupSize };
      const raw = [xv, wv, gv];
      const ref = (xs: Float64Array[]) => rmsRef(xs, rows, dim, c, eps);
      assertClose(
        (await ops.rmsNorm(x, weight, opts).data()) as Float32Array,
        ref(raw.map((a) => Float64Array.from(a))),
        1e-5,
        'forward vs reference',
      );
      const gr = g.rmsNormBackward(x, weight, t(dyv, [rows, dim]), opts);
      checkGrads(
        'rmsNorm',
        (xs) => dot(ref(xs), dyv),
        raw,
        [await f32(gr.dx), await f32(gr.dWeight), await f32(gr.dGate)],
        {
          names: ['x', 'weight', 'gate'],
        },
      );
      assert.equal(gr.dWeight === null, !c.weight);
    }),
  );

test(
  'rmsNormBackward with dSum is the gradient of both inputs of addRmsNorm (out and the residual stream used)',
  seeded(async (r) => {
    const [rows, dim, eps] = [4, 7, 1e-6];
    const xv = randn(rows * dim, r);
    const resv = randn(rows * dim, r);
    const wv = randn(dim, r, 0.5, 1.5);
    const wOut = randn(rows * dim, r);
    const wSum = randn(rows * dim, r);
    const c: RmsCase = { name: '', gate: 'none', weight: true };
    const { sum, out } = ops.addRmsNorm(t(xv, [rows, dim]), t(resv, [rows, dim]), t(wv, [dim]), { eps });
    const sumRef = xv.map((v, i) => v + resv[i]);
    assertClose(
      (await out.data()) as Float32Array,
      rmsRef(
        [sumRef, wv, wv].map((a) => Float64Array.from(a)),
        rows,
        dim,
        c,
        eps,
      ),
      1e-5,
    );
    const gr = g.rmsNormBackward(sum, t(wv, [dim]), t(wOut, [rows, dim]), {
      eps,
      dSum: t(wSum, [rows, dim]),
    });
    const loss = ([x, res, w]: Float64Array[]) => {
      const s = x.map((v, i) => v + res[i]);
      return dot(rmsRef([s, w, s], rows, dim, c, eps), wOut) + dot(s, wSum);
    };
    const dx = await f32(gr.dx);
    checkGrads('addRmsNorm', loss, [xv, resv, wv], [dx, dx, await f32(gr.dWeight)], {
      names: ['x', 'residual', 'weight'],
    });
  }),
);

function lnRef(
  [x, w, b]: Float64Array[],
  rows: number,
  dim: number,
  eps: number,
  affine: boolean,
): Float64Array {
  const y = new Float64Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    const row = x.subarray(r * dim, (r + 1) * dim);
    const mean = row.reduce((a, v) => a + v, 0) / dim;
    const inv = 1 / Math.sqrt(row.reduce((a, v) => a + (v - mean) ** 2, 0) / dim + eps);
    for (let i = 0; i < dim; i++)
      y[r * dim + i] = (row[i] - mean) * inv * (affine ? w[i] : 1) + (affine ? b[i] : 0);
  }
  return y;
}

for (const affine of [true, false])
  test(
    `layerNormBackward matches float64 finite differences (${affine ? 'weight and bias, dSum' : 'no parameters'})`,
    seeded(async (r) => {
      const [rows, dim, eps] = [3, 11, 1e-5];
      const xv = randn(rows * dim, r, -2, 2);
      const wv = randn(dim, r, 0.5, 1.5);
      const bv = randn(dim, r);
      const dyv = randn(rows * dim, r);
      const dsv = randn(rows * dim, r);
      const x = t(xv, [rows, dim]);
      const [w, b] = affine ? [t(wv, [dim]), t(bv, [dim])] : [null, null];
      const ref = (xs: Float64Array[]) => lnRef(xs, rows, dim, eps, affine);
      const raw = [xv, wv, bv];
      assertCloseScaled(
        (await ops.layerNorm(x, w, b, eps).data()) as Float32Array,
        ref(raw.map((a) => Float64Array.from(a))),
        1e-5,
        'forward (n·w + b cancels: against the largest output)',
      );
      const gr = g.layerNormBackward(x, w, b, eps, t(dyv, [rows, dim]), {
        dSum: affine ? t(dsv, [rows, dim]) : null,
      });
      checkGrads(
        'layerNorm',
        (xs) => dot(ref(xs), dyv) + (affine ? dot(xs[0], dsv) : 0),
        raw,
        [await f32(gr.dx), affine ? await f32(gr.dWeight) : null, affine ? await f32(gr.dBias) : null],
        { names: ['x', 'weight', 'bias'] },
      );
      assert.equal(gr.dBias === null, !affine);
    }),
  );

test(
  'norm backward of bf16 activations: dx and dGate in bf16, dWeight in f32, equal to the f32 kernel on the same values',
  seeded(async (r) => {
    const [rows, dim] = [5, 8];
    const xv = roundBf16(randn(rows * dim, r));
    const gv = roundBf16(randn(rows * dim, r));
    const dyv = roundBf16(randn(rows * dim, r));
    const wv = roundBf16(randn(dim, r, 0.5, 1.5));
    const run = (dt: 'f32' | 'bf16') =>
      g.rmsNormBackward(t(xv, [rows, dim], dt), t(wv, [dim], dt), t(dyv, [rows, dim], dt), {
        eps: 1e-5,
        gate: t(gv, [rows, dim], dt),
      });
    const [a, b] = [run('bf16'), run('f32')];
    assert.equal(a.dx.dtype, 'bf16');
    assert.equal(a.dGate!.dtype, 'bf16');
    assert.equal(a.dWeight!.dtype, 'f32');
    assertClose((await f32(a.dx))!, (await f32(b.dx))!, 8e-3, 'dx', 1e-2);
    assertClose((await f32(a.dWeight))!, (await f32(b.dWeight))!, 1e-3, 'dWeight', 1e-2);
  }),
);

// ---- embedding -----------------------------------------------------------------------------------

test(
  'embeddingBackward adds each position’s gradient row into its id’s row (repeated ids add up)',
  seeded(async (r) => {
    const [vocab, dim] = [6, 5];
    const ids = Int32Array.from([4, 1, 4, 0, 4, 5, 1]);
    const tv = randn(vocab * dim, r);
    const wv = randn(ids.length * dim, r);
    const idT = t(ids, [7], 'i32');
    const emb = ops.embedding(t(tv, [vocab, dim]), idT);
    assert.deepEqual(emb.shape, [7, dim]);
    const dTable = g.embeddingBackward(t(wv, [7, dim]), idT, vocab);
    assert.equal(dTable.dtype, 'f32');
    const lookup = ([table]: Float64Array[]) => {
      let s = 0;
      for (const [i, id] of ids.entries())
        for (let e = 0; e < dim; e++) s += table[id * dim + e] * wv[i * dim + e];
      return s;
    };
    checkGrads('embedding', lookup, [tv], [await f32(dTable)], { names: ['table'] });
    assert.throws(
      () =>
        g.embeddingBackward(t(wv, [7, dim]), t(Int32Array.from([0, 1, 2, 3, 4, 5, 6]), [7], 'i32'), vocab),
      /id 6 is outside the vocabulary of 6/,
    );
  }),
);

// ---- losses --------------------------------------------------------------------------------------

function ceRef([logits]: Float64Array[], targets: Int32Array, vocab: number, ignore: number): number {
  let total = 0;
  let n = 0;
  for (const [r, tg] of targets.entries()) {
    if (tg === ignore) continue;
    const row = logits.subarray(r * vocab, (r + 1) * vocab);
    const max = Math.max(...row);
    total += max + Math.log(row.reduce((a, v) => a + Math.exp(v - max), 0)) - row[tg];
    n++;
  }
  return n ? total / n : 0;
}

test(
  'crossEntropy: the loss and its fused gradient match float64 (ignored rows, gradScale, leading dims)',
  seeded(async (r) => {
    const [rows, vocab] = [7, 13];
    const lv = randn(rows * vocab, r, -4, 4);
    const targets = Int32Array.from({ length: rows }, (_, i) =>
      i % 3 === 1 ? -100 : randint(r, 0, vocab - 1),
    );
    const logits = t(lv, [1, rows, vocab]);
    const { loss, dLogits } = g.crossEntropy(logits, t(targets, [1, rows], 'i32'), { gradScale: 2.5 });
    assert.deepEqual(loss.shape, []);
    assertClose([await loss.item()], [ceRef([Float64Array.from(lv)], targets, vocab, -100)], 1e-6, 'loss');
    checkGrads('crossEntropy', (xs) => 2.5 * ceRef(xs, targets, vocab, -100), [lv], [await f32(dLogits)]);
    const none = g.crossEntropy(logits, t(new Int32Array(rows).fill(7), [1, rows], 'i32'), {
      ignoreIndex: 7,
    });
    assert.equal(await none.loss.item(), 0);
    assert.ok(((await none.dLogits!.data()) as Float32Array).every((v) => v === 0));
    assert.equal(g.crossEntropy(logits, t(targets, [1, rows], 'i32'), { grad: false }).dLogits, null);
    assert.throws(
      () => g.crossEntropy(logits, t(new Int32Array(rows).fill(vocab), [1, rows], 'i32')),
      /target 13 of row 0 is outside the vocabulary of 13/,
    );
    assert.throws(() => g.crossEntropy(logits, t(targets, [rows], 'i32')), ShapeError);
  }),
);

test(
  'crossEntropy of bf16 logits equals the f32 kernel on the rounded values; dLogits is bf16',
  seeded(async (r) => {
    const [rows, vocab] = [4, 33];
    const lv = roundBf16(randn(rows * vocab, r, -3, 3));
    const tg = t(Int32Array.from([3, 0, 32, 17]), [rows], 'i32');
    const a = g.crossEntropy(t(lv, [rows, vocab], 'bf16'), tg);
    const b = g.crossEntropy(t(lv, [rows, vocab]), tg);
    assert.equal(a.dLogits!.dtype, 'bf16');
    assertClose([await a.loss.item()], [await b.loss.item()], 1e-6);
    assertClose((await f32(a.dLogits))!, (await f32(b.dLogits))!, 8e-3, 'dLogits', 1e-3);
  }),
);

/** Σ p·(log p − log q) over each row's valid entries, renormalised over them; mean over rows with one. */
function klRef([logits, tv]: Float64Array[], ids: Int32Array, vocab: number, k: number): number {
  let total = 0;
  let n = 0;
  for (let r = 0; r < ids.length / k; r++) {
    const js = [...Array(k).keys()].filter((j) => ids[r * k + j] >= 0);
    if (!js.length) continue;
    const s = js.map((j) => logits[r * vocab + ids[r * k + j]]);
    const te = js.map((j) => tv[r * k + j]);
    const lse = (a: number[]) => {
      const m = Math.max(...a);
      return m + Math.log(a.reduce((acc, v) => acc + Math.exp(v - m), 0));
    };
    const [ls, lt] = [lse(s), lse(te)];
    total += te.reduce((acc, v, i) => acc + Math.exp(v - lt) * (v - lt - (s[i] - ls)), 0);
    n++;
  }
  return n ? total / n : 0;
}

test(
  'klTopK: the top-k renormalised KL(teacher ‖ student) and its gradient match float64 (padding entries and rows)',
  seeded(async (r) => {
    const [rows, vocab, k] = [5, 17, 4];
    const lv = randn(rows * vocab, r, -3, 3);
    const ids = new Int32Array(rows * k);
    for (let row = 0; row < rows; row++) {
      const perm = [...Array(vocab).keys()].sort(() => r() - 0.5);
      for (let j = 0; j < k; j++) ids[row * k + j] = perm[j];
    }
    ids[1 * k + 3] = -1; // one padding entry
    ids.fill(-1, 3 * k, 4 * k); // a row with none: left out of the mean
    // Teacher values as full-vocabulary log-probabilities (renormalised over the k, so any shift is the same).
    const tv = randn(rows * k, r, -6, -0.5);
    const logits = t(lv, [rows, vocab]);
    const res = g.klTopK(logits, t(ids, [rows, k], 'i32'), t(tv, [rows, k]), { gradScale: 0.5 });
    assertClose(
      [await res.loss.item()],
      [
        klRef(
          [lv, tv].map((a) => Float64Array.from(a)),
          ids,
          vocab,
          k,
        ),
      ],
      1e-6,
      'loss',
    );
    checkGrads(
      'klTopK',
      (xs) => 0.5 * klRef([xs[0], Float64Array.from(tv)], ids, vocab, k),
      [lv],
      [await f32(res.dLogits)],
    );
    const shifted = g.klTopK(
      logits,
      t(ids, [rows, k], 'i32'),
      t(
        tv.map((v) => v + 3),
        [rows, k],
      ),
      { grad: false },
    );
    assertClose([await shifted.loss.item()], [await res.loss.item()], 1e-5, 'shift invariance');
    assert.ok((await res.loss.item()) > 0);
    assert.throws(() => g.klTopK(logits, t(ids, [rows, k], 'i32'), t(tv, [rows * k])), ShapeError);
  }),
);

// ---- AdamW ---------------------------------------------------------------------------------------

/** torch.optim.AdamW's update in float64, in place on P, M, V. */
function adamwRef(
  P: Float64Array,
  M: Float64Array,
  V: Float64Array,
  gr: ArrayLike<number>,
  o: {
    lr: number;
    beta1: number;
    beta2: number;
    eps: number;
    weightDecay: number;
    gradScale: number;
    step: number;
  },
): void {
  for (let i = 0; i < P.length; i++) {
    const gi = gr[i] * o.gradScale;
    P[i] *= 1 - o.lr * o.weightDecay;
    M[i] = o.beta1 * M[i] + (1 - o.beta1) * gi;
    V[i] = o.beta2 * V[i] + (1 - o.beta2) * gi * gi;
    const mh = M[i] / (1 - o.beta1 ** o.step);
    const vh = V[i] / (1 - o.beta2 ** o.step);
    P[i] -= (o.lr * mh) / (Math.sqrt(vh) + o.eps);
  }
}

test(
  'adamwStep matches a float64 loop of torch.optim.AdamW over 4 steps, writing a bf16 copy',
  seeded(async (r) => {
    const n = 37;
    const o = { lr: 3e-3, beta1: 0.8, beta2: 0.95, eps: 1e-6, weightDecay: 0.1, gradScale: 0.5 };
    const p0 = randn(n, r);
    const grads = [0, 1, 2, 3].map(() => randn(n, r, -2, 2));
    const param = t(p0, [n]);
    const m = ops.zeros(cpu, [n]);
    const v = ops.zeros(cpu, [n]);
    const copy = ops.zeros(cpu, [n], 'bf16');
    const P = Float64Array.from(p0);
    const M = new Float64Array(n);
    const V = new Float64Array(n);
    for (const [s, gr] of grads.entries()) {
      g.adamwStep(param, m, v, t(gr, [n]), { ...o, step: s + 1, copy });
      adamwRef(P, M, V, gr, { ...o, step: s + 1 });
    }
    assertClose((await param.data()) as Float32Array, P, 1e-5, 'param');
    assertClose((await m.data()) as Float32Array, M, 1e-5, 'm');
    assertClose((await v.data()) as Float32Array, V, 1e-5, 'v', 1e-6);
    assertClose((await copy.data()) as Float32Array, P, 4e-3, 'bf16 copy');
    assert.throws(() => g.adamwStep(param, m, v, t(grads[0], [n]), { lr: 1e-3, step: 0 }), /step 0/);
    assert.throws(
      () => g.adamwStep(param, m, v, ops.zeros(cpu, [n], 'bf16'), { lr: 1e-3, step: 1 }),
      ShapeError,
    );
  }),
);

test(
  'adamwSteps updates several parameters in one call (each its own decay, copies of two dtypes) as float64 AdamW',
  seeded(async (r) => {
    const sizes = [37, 1, 64, 5];
    const copyTypes = ['bf16', null, 'f16', 'f32'] as const;
    const decay = [0.1, 0, 0.05, 0.2];
    const o = { lr: 2e-3, beta1: 0.9, beta2: 0.98, eps: 1e-8, gradScale: 0.7 };
    const p0 = sizes.map((n) => randn(n, r));
    const slots = sizes.map((n, i) => ({
      param: t(p0[i], [n]),
      m: ops.zeros(cpu, [n]),
      v: ops.zeros(cpu, [n]),
      copy: copyTypes[i] ? ops.zeros(cpu, [n], copyTypes[i]) : null,
      weightDecay: decay[i],
    }));
    const ref = sizes.map((n, i) => ({
      P: Float64Array.from(p0[i]),
      M: new Float64Array(n),
      V: new Float64Array(n),
    }));
    for (let step = 1; step <= 3; step++) {
      const grads = sizes.map((n) => randn(n, r, -2, 2));
      g.adamwSteps(
        slots.map((s, i) => ({ ...s, grad: t(grads[i], [sizes[i]]) })),
        { ...o, step },
      );
      for (const [i, x] of ref.entries())
        adamwRef(x.P, x.M, x.V, grads[i], { ...o, weightDecay: decay[i], step });
    }
    for (const [i, s] of slots.entries()) {
      assertClose((await s.param.data()) as Float32Array, ref[i].P, 1e-5, `slot ${i} param`);
      assertClose((await s.m.data()) as Float32Array, ref[i].M, 1e-5, `slot ${i} m`);
      assertClose((await s.v.data()) as Float32Array, ref[i].V, 1e-5, `slot ${i} v`, 1e-6);
      if (s.copy) assertClose((await s.copy.data()) as Float32Array, ref[i].P, 4e-3, `slot ${i} copy`);
    }
    assert.throws(
      () => g.adamwSteps([{ ...slots[0], grad: t(randn(36, r), [36]) }], { ...o, step: 1 }),
      ShapeError,
    );
    assert.throws(
      () => g.adamwSteps([{ ...slots[0], grad: t(randn(37, r), [37]), weightDecay: -1 }], { ...o, step: 1 }),
      /weight decay -1/,
    );
  }),
);

test(
  'sumSquares is Σx² over every tensor (float64 reference), and refuses other dtypes',
  seeded(async (r) => {
    const xs = [randn(37, r), randn(1, r), randn(6 * 7, r, -3, 3)];
    let ref = 0;
    for (const x of xs) for (const v of x) ref += v * v;
    const out = g.sumSquares(xs.map((x) => t(x, [x.length])));
    assert.deepEqual(out.shape, []);
    const got = await out.item();
    assert.ok(Math.abs(got - ref) <= 1e-6 * ref, `${got} vs ${ref}`);
    assert.throws(() => g.sumSquares([ops.zeros(cpu, [3], 'bf16')]), /f32/);
    assert.throws(() => g.sumSquares([]), /at least one/);
  }),
);

test(
  'rmsNormBackward and layerNormBackward at sizes split across worker threads: directional derivatives match float64 differences',
  seeded(async (r) => {
    const threads = await warmUp();
    const before = parallelCalls();
    const [rows, dim, eps] = [701, 96, 1e-5];
    const c: RmsCase = { name: '', gate: 'before', weight: true, groupSize: 32 };
    const raw = [randn(rows * dim, r, -2, 2), randn(dim, r, 0.5, 1.5), randn(rows * dim, r, -2, 2)];
    const dyv = randn(rows * dim, r);
    const [x, w, gate] = [t(raw[0], [rows, dim]), t(raw[1], [dim]), t(raw[2], [rows, dim])];
    const gr = g.rmsNormBackward(x, w, t(dyv, [rows, dim]), { eps, gate, groupSize: 32 });
    checkDirections(
      'rmsNorm',
      (xs) => dot(rmsRef(xs, rows, dim, c, eps), dyv),
      raw,
      [await f32(gr.dx), await f32(gr.dWeight), await f32(gr.dGate)],
      r,
    );
    const lraw = [raw[0], raw[1], randn(dim, r)];
    const dsv = randn(rows * dim, r);
    const lg = g.layerNormBackward(x, w, t(lraw[2], [dim]), eps, t(dyv, [rows, dim]), {
      dSum: t(dsv, [rows, dim]),
    });
    checkDirections(
      'layerNorm',
      (xs) => dot(lnRef(xs, rows, dim, eps, true), dyv) + dot(xs[0], dsv),
      lraw,
      [await f32(lg.dx), await f32(lg.dWeight), await f32(lg.dBias)],
      r,
    );
    if (threads > 1) assert.ok(parallelCalls() >= before + 2, 'both ran on the worker pool');
  }),
);
