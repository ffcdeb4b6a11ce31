// Elementwise ops, casts and fills against float64 formulas written here.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import type { BinaryOp, UnaryOp } from '../../src/runtime/backend.js';
import { DTYPES, type DType } from '../../src/runtime/dtype.js';
import * as ops from '../../src/runtime/ops.js';
import { assertClose, randn, seeded } from '../helpers.js';

const cpu = cpuBackend();

/** erf by its Maclaurin series (f64; accurate to ~1e-11 for |x| ≤ 4). */
function erf(x: number): number {
  let term = x;
  let sum = x;
  for (let n = 1; n < 120; n++) {
    term *= (-x * x) / n;
    sum += term / (2 * n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}
const sig = (v: number) => 1 / (1 + Math.exp(-v));

const UNARY_REF: Record<UnaryOp, (v: number) => number> = {
  neg: (v) => -v,
  exp: Math.exp,
  log: (v) => Math.log(Math.abs(v)),
  sqrt: (v) => Math.sqrt(Math.abs(v)),
  rsqrt: (v) => 1 / Math.sqrt(Math.abs(v)),
  abs: Math.abs,
  sigmoid: sig,
  tanh: Math.tanh,
  relu: (v) => Math.max(v, 0),
  relu2: (v) => Math.max(v, 0) ** 2,
  silu: (v) => v * sig(v),
  gelu: (v) => 0.5 * v * (1 + erf(v / Math.SQRT2)),
  gelu_tanh: (v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))),
  quick_gelu: (v) => v * sig(1.702 * v),
  softplus: (v) => Math.log(1 + Math.exp(v)),
};

test(
  'unary: every op equals its f64 formula (f32 and bf16 storage)',
  seeded(async (r) => {
    const n = 257;
    for (const op of Object.keys(UNARY_REF) as UnaryOp[]) {
      const positive = op === 'log' || op === 'sqrt' || op === 'rsqrt';
      const xv = randn(n, r, positive ? 0.05 : -4, 4);
      const y = await ops.unary(op, ops.tensor(cpu, xv, [n])).toArray();
      const ref = Array.from(xv, (v) => UNARY_REF[op](v));
      // Near-zero outputs (e.g. gelu of a large negative x) are compared absolutely below 1e-3.
      assertClose(y, ref, 2e-6, op);
      const yb = await ops.unary(op, ops.tensor(cpu, xv, [n], 'bf16')).toArray();
      const refB = Array.from(xv, (v) => roundMantissa(UNARY_REF[op](roundMantissa(v, 7)), 7));
      assertClose(yb, refB, 1.6e-2, `${op} bf16`);
    }
  }),
);

test('unary: softplus switches to x above 20 and stays accurate far below 0', async () => {
  const y = await ops.softplus(ops.tensor(cpu, [25, 20.5, -30, 0], [4])).toArray();
  assert.equal(y[0], 25);
  assert.equal(y[1], 20.5);
  assertClose([y[2], y[3]], [Math.exp(-30), Math.LN2], 1e-6, 'softplus tails');
  // GELU variants differ where they should: exact vs tanh approximation at x = 1.
  const x = ops.tensor(cpu, [1], [1]);
  const [g, gt, qg] = await Promise.all(
    [ops.gelu(x), ops.geluTanh(x), ops.quickGelu(x)].map((t) => t.item()),
  );
  assertClose([g, gt, qg], [0.8413447460685429, 0.8411919906082768, 1 * sig(1.702)], 1e-6, 'gelu family');
  assert.ok(Math.abs(g - gt) > 1e-4);
});

/** Numpy broadcasting, written directly: the output index mapped back to each operand. */
function broadcastRef(
  op: (a: number, b: number) => number,
  a: Float32Array,
  as: number[],
  b: Float32Array,
  bs: number[],
) {
  const rank = Math.max(as.length, bs.length);
  const pa = [...Array(rank - as.length).fill(1), ...as];
  const pb = [...Array(rank - bs.length).fill(1), ...bs];
  const os = pa.map((d, i) => Math.max(d, pb[i]));
  const total = os.reduce((x, y) => x * y, 1);
  const out = new Float64Array(total);
  for (let f = 0; f < total; f++) {
    let rem = f;
    let ia = 0;
    let ib = 0;
    let sa = 1;
    let sb = 1;
    for (let ax = rank - 1; ax >= 0; ax--) {
      const i = rem % os[ax];
      rem = Math.floor(rem / os[ax]);
      ia += (pa[ax] === 1 ? 0 : i) * sa;
      ib += (pb[ax] === 1 ? 0 : i) * sb;
      sa *= pa[ax];
      sb *= pb[ax];
    }
    out[f] = op(a[ia], b[ib]);
  }
  return { out, shape: os };
}

const BINARY_REF: Record<BinaryOp, (a: number, b: number) => number> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  max: Math.max,
  min: Math.min,
  silu_mul: (a, b) => (a / (1 + Math.exp(-a))) * b,
};

test(
  'binary: every op over several broadcasting patterns',
  seeded(async (r) => {
    const patterns: [number[], number[]][] = [
      [
        [3, 5],
        [3, 5],
      ],
      [[2, 3, 7], [7]],
      [
        [2, 1, 7],
        [3, 1],
      ],
      [
        [5, 1],
        [1, 6],
      ],
      [
        [2, 3, 4],
        [2, 3, 1],
      ],
      [[1], [4, 3]],
      [[], [2, 3]],
      [
        [2, 1, 3, 1],
        [1, 4, 1, 5],
      ],
    ];
    for (const [as, bs] of patterns)
      for (const op of Object.keys(BINARY_REF) as BinaryOp[]) {
        const av = randn(
          as.reduce((x, y) => x * y, 1),
          r,
          0.1,
          2,
        );
        const bv = randn(
          bs.reduce((x, y) => x * y, 1),
          r,
          -2,
          -0.1,
        );
        if (r() < 0.5) for (let i = 0; i < bv.length; i++) bv[i] = -bv[i];
        const ref = broadcastRef(BINARY_REF[op], av, as, bv, bs);
        const y = ops.binary(op, ops.tensor(cpu, av, as), ops.tensor(cpu, bv, bs));
        assert.deepEqual(y.shape, ref.shape, `${op} ${as} ${bs} shape`);
        assertClose(await y.toArray(), ref.out, 1e-6, `${op} [${as}] [${bs}]`);
      }
    assert.throws(() => ops.add(ops.zeros(cpu, [2, 3]), ops.zeros(cpu, [4])), /do not broadcast/);
    assert.throws(() => ops.add(ops.zeros(cpu, [2]), ops.zeros(cpu, [2], 'bf16')), /dtypes differ/);
  }),
);

test(
  'affine and fill',
  seeded(async (r) => {
    const xv = randn(33, r);
    const y = await ops.affine(ops.tensor(cpu, xv, [3, 11]), 1.5, -0.25).toArray();
    assertClose(
      y,
      Array.from(xv, (v) => v * 1.5 - 0.25),
      1e-6,
      'affine',
    );
    assert.deepEqual(await ops.full(cpu, [2, 2], 3.25).toArray(), [3.25, 3.25, 3.25, 3.25]);
    assert.deepEqual(await ops.full(cpu, [3], 7, 'i32').toArray(), [7, 7, 7]);
    assert.deepEqual(await ops.full(cpu, [2], 1 / 3, 'bf16').toArray(), [0.333984375, 0.333984375]);
    assert.deepEqual(await ops.zeros(cpu, [2], 'u8').toArray(), [0, 0]);
  }),
);

/** Round-to-nearest-even to `bits` explicit mantissa bits (bf16: 7, f16: 10), in f64 (normal range). */
function roundMantissa(v: number, bits: number): number {
  if (v === 0) return 0;
  const e = Math.floor(Math.log2(Math.abs(v)));
  const ulp = 2 ** (e - bits);
  const q = v / ulp;
  const f = Math.floor(q);
  const d = q - f;
  const n = d > 0.5 || (d === 0.5 && f % 2 !== 0) ? f + 1 : f;
  return n * ulp;
}

test(
  'cast: every dtype pair; bf16/f16 round to nearest even; integers truncate',
  seeded(async (r) => {
    // Halfway cases: 1 + 2^-8 is halfway between two bf16 values and rounds to the even one (1).
    const halfway = [1 + 2 ** -8, 1 + 3 * 2 ** -8, -(1 + 2 ** -8), 1 + 2 ** -11, 1 + 3 * 2 ** -11];
    assert.deepEqual(await ops.cast(ops.tensor(cpu, halfway, [5]), 'bf16').toArray(), [
      1,
      1 + 2 ** -6,
      -1,
      1,
      1,
    ]);
    assert.deepEqual(await ops.cast(ops.tensor(cpu, halfway, [5]), 'f16').toArray(), [
      1 + 2 ** -8,
      1 + 3 * 2 ** -8,
      -(1 + 2 ** -8),
      1,
      1 + 2 ** -9,
    ]);
    const xv = randn(64, r, -100, 100);
    const x = ops.tensor(cpu, xv, [64]);
    assert.deepEqual(
      await ops.cast(x, 'bf16').toArray(),
      Array.from(xv, (v) => roundMantissa(v, 7)),
    );
    assert.deepEqual(
      await ops.cast(x, 'f16').toArray(),
      Array.from(xv, (v) => roundMantissa(v, 10)),
    );
    assert.deepEqual(
      await ops.cast(x, 'i32').toArray(),
      Array.from(xv, (v) => Math.trunc(v) + 0), // + 0 turns −0 into 0 as integers have no −0
    );
    // Values every dtype holds exactly survive every pair of casts.
    const exact = Array.from({ length: 16 }, (_, i) => (i * 7) % 200);
    for (const from of DTYPES)
      for (const to of DTYPES) {
        const y = ops.cast(ops.tensor(cpu, exact, [4, 4], from), to);
        assert.equal(y.dtype, to);
        assert.deepEqual(await y.toArray(), exact, `${from} → ${to}`);
      }
    const dt: DType = 'bf16';
    assert.deepEqual(await ops.clone(ops.tensor(cpu, [1.5, -2], [2], dt)).toArray(), [1.5, -2]);
  }),
);
