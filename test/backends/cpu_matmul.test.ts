// GEMM against a float64 triple loop: every transpose, batched and shared B, bias, alpha, 16-bit storage,
// the small-m (decode) path and sizes that cross the cache blocks and run on the worker pool.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import { parallelCalls, warmUp } from '../../src/backends/cpu/pool.js';
import { bf16ToF32, type DType, f16ToF32, f32ToBf16, f32ToF16 } from '../../src/runtime/dtype.js';
import * as ops from '../../src/runtime/ops.js';
import { assertClose, randint, randn, seeded } from '../helpers.js';

const cpu = cpuBackend();

interface Case {
  batch: number;
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
  bBatched: boolean;
  bias: boolean;
  alpha: number;
  dtype: DType;
}

/** Values as the dtype stores them (the reference multiplies the rounded inputs). */
const rounded = (v: Float32Array, dtype: DType) =>
  dtype === 'bf16'
    ? v.map((x) => bf16ToF32(f32ToBf16(x)))
    : dtype === 'f16'
      ? v.map((x) => f16ToF32(f32ToF16(x)))
      : v;

async function check(c: Case, r: () => number): Promise<void> {
  const { batch, m, n, k, transA, transB, bBatched, alpha, dtype } = c;
  const av = rounded(randn(batch * m * k, r), dtype);
  const bv = rounded(randn((bBatched ? batch : 1) * n * k, r), dtype);
  const biasv = c.bias ? rounded(randn(n, r), dtype) : null;
  const A = ops.tensor(cpu, av, transA ? [batch, k, m] : [batch, m, k], dtype);
  const bShape = transB ? [n, k] : [k, n];
  const B = ops.tensor(cpu, bv, bBatched ? [batch, ...bShape] : bShape, dtype);
  const bias = biasv ? ops.tensor(cpu, biasv, [n], dtype) : null;
  const C = await ops.matmul(A, B, { transA, transB, bias, alpha }).toArray();
  const ref = new Float64Array(batch * m * n);
  for (let p = 0; p < batch; p++)
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let t = 0; t < k; t++) {
          const a = transA ? av[p * m * k + t * m + i] : av[p * m * k + i * k + t];
          const bo = bBatched ? p * n * k : 0;
          s += a * (transB ? bv[bo + j * k + t] : bv[bo + t * n + j]);
        }
        ref[(p * m + i) * n + j] = alpha * s + (biasv ? biasv[j] : 0);
      }
  const tol = dtype === 'bf16' ? 1e-2 : dtype === 'f16' ? 2e-3 : 1e-5;
  // Sums of k products of ±1 values cancel: compare relative to √k, their typical magnitude (f32 rounding of
  // such a sum grows like √k·ε times it; a tenth of it as the floor failed at k = 2100 once).
  assertClose(C, ref, tol, JSON.stringify(c), Math.sqrt(k));
  for (const t of [A, B, bias]) t?.dispose();
}

test(
  'matmul: all transposes × batched/shared B × bias/alpha, odd sizes',
  seeded(async (r) => {
    for (const transA of [false, true])
      for (const transB of [false, true])
        for (const bBatched of [false, true])
          await check(
            {
              batch: randint(r, 1, 3),
              m: randint(r, 1, 13),
              n: randint(r, 1, 19),
              k: randint(r, 1, 21),
              transA,
              transB,
              bBatched,
              bias: r() < 0.5,
              alpha: r() < 0.5 ? 1 : 0.37,
              dtype: 'f32',
            },
            r,
          );
  }),
);

test('matmul: an empty inner dimension gives alpha·0 + bias', async () => {
  const bias = ops.tensor(cpu, [1, 2, 3], [3]);
  for (const m of [2, 6]) {
    const y = ops.matmul(ops.zeros(cpu, [m, 0]), ops.zeros(cpu, [0, 3]), { bias });
    assert.deepEqual(
      await y.toArray(),
      Array.from({ length: m * 3 }, (_, i) => (i % 3) + 1),
    );
  }
});

test(
  'matmul: bf16 and f16 storage round like torch (f32 accumulation)',
  seeded(async (r) => {
    for (const dtype of ['bf16', 'f16'] as const)
      for (const transB of [false, true])
        await check(
          {
            batch: 2,
            m: 9,
            n: 11,
            k: 37,
            transA: false,
            transB,
            bBatched: false,
            bias: true,
            alpha: 1,
            dtype,
          },
          r,
        );
  }),
);

test(
  'matmul: blocked path across K/M/N blocks and tile edges, on the worker pool',
  seeded(async (r) => {
    const threads = await warmUp();
    const before = parallelCalls();
    // k > 256 (two K blocks), m > 128 (two M blocks), n not a multiple of 8; a batched case; decode rows.
    await check(
      {
        batch: 1,
        m: 133,
        n: 75,
        k: 300,
        transA: false,
        transB: true,
        bBatched: false,
        bias: true,
        alpha: 1,
        dtype: 'f32',
      },
      r,
    );
    await check(
      {
        batch: 1,
        m: 61,
        n: 203,
        k: 270,
        transA: true,
        transB: false,
        bBatched: false,
        bias: false,
        alpha: 0.5,
        dtype: 'f32',
      },
      r,
    );
    await check(
      {
        batch: 5,
        m: 37,
        n: 29,
        k: 411,
        transA: false,
        transB: false,
        bBatched: true,
        bias: true,
        alpha: 1,
        dtype: 'f32',
      },
      r,
    );
    for (const transB of [false, true])
      await check(
        {
          batch: 1,
          m: 1,
          n: 1030,
          k: 2100,
          transA: false,
          transB,
          bBatched: false,
          bias: true,
          alpha: 1,
          dtype: 'f32',
        },
        r,
      );
    if (threads > 1) assert.ok(parallelCalls() >= before + 5, 'the large GEMMs ran on the worker pool');
  }),
);
