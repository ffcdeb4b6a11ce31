import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { BinaryOp, UnaryOp } from '../src/runtime/backend.js';
import type { DType } from '../src/runtime/dtype.js';
import * as ops from '../src/runtime/ops.js';
import { assertParity, cpu, gpu, pair, randomPair, TOL, values } from './helpers.js';

const FLOATS: DType[] = ['f32', 'bf16'];

test('cast between every dtype pair matches the CPU rounding exactly', async () => {
  const host = values(1037, -300, 300);
  for (const from of ['f32', 'bf16', 'f16', 'i32'] as DType[])
    for (const to of ['f32', 'bf16', 'f16', 'i32', 'u8'] as DType[]) {
      if (to === 'u8' && from !== 'i32') continue; // u8 of negative floats is implementation-defined
      const src = from === 'i32' ? Int32Array.from(host, (v) => Math.trunc(Math.abs(v))) : host;
      const [g, c] = pair(src, [1037], from);
      await assertParity(ops.cast(g, to), ops.cast(c, to), 0, `cast ${from}→${to}`);
    }
});

test('fill writes the rounded value', async () => {
  for (const dtype of ['f32', 'bf16', 'f16', 'i32', 'u8'] as DType[]) {
    const g = ops.full(gpu, [3, 37], 1.23456, dtype);
    const c = ops.full(cpu, [3, 37], 1.23456, dtype);
    await assertParity(g, c, 0, `fill ${dtype}`);
  }
});

const UNARY: UnaryOp[] = [
  'neg',
  'exp',
  'log',
  'sqrt',
  'rsqrt',
  'abs',
  'sigmoid',
  'tanh',
  'relu',
  'relu2',
  'silu',
  'gelu',
  'gelu_tanh',
  'quick_gelu',
  'softplus',
];

test('every unary op, f32 and bf16, odd and vector-sized lengths', async () => {
  for (const dtype of FLOATS)
    for (const n of [1, 7, 1000, 4099])
      for (const op of UNARY) {
        const positive = op === 'log' || op === 'sqrt' || op === 'rsqrt';
        // The first value is 2, so every array has outputs of order 1: a lone tail value (gelu(−8) ≈ −5e-15)
        // would otherwise be compared at its own scale, where the CPU's f64 and the GPU's f32 formulas differ.
        const host = values(n, positive ? 0.05 : -25, positive ? 30 : 25);
        host[0] = 2;
        const [g, c] = pair(host, [n], dtype);
        await assertParity(ops.unary(op, g), ops.unary(op, c), TOL[dtype], `${op} ${dtype} n=${n}`);
      }
});

test('binary ops with broadcasting and unaligned views', async () => {
  const shapes: [number[], number[]][] = [
    [
      [5, 37],
      [5, 37],
    ],
    [[3, 5, 37], [37]],
    [
      [3, 5, 37],
      [5, 1],
    ],
    [
      [3, 1, 37],
      [1, 5, 1],
    ],
    [
      [2, 3, 5, 7],
      [3, 1, 7],
    ],
    [[4099], [1]],
    [[5, 64], [64]],
    [
      [6, 4, 64],
      [4, 1],
    ],
    [[64], [3, 1]],
  ];
  const OPS: BinaryOp[] = ['add', 'sub', 'mul', 'div', 'max', 'min', 'silu_mul'];
  for (const dtype of FLOATS)
    for (const [sa, sb] of shapes)
      for (const op of OPS) {
        const [ga, ca] = randomPair(sa, dtype);
        const [gb, cb] = randomPair(sb, dtype, 0.5, 3); // away from zero for div
        await assertParity(
          ops.binary(op, ga, gb),
          ops.binary(op, ca, cb),
          TOL[dtype],
          `${op} ${sa}×${sb} ${dtype}`,
        );
      }
  // A view that starts one element into its buffer defeats 16-byte packing: the scalar path must agree.
  const [ga, ca] = randomPair([1 + 64 * 9], 'bf16');
  const [gb, cb] = randomPair([64 * 9], 'bf16');
  await assertParity(
    ops.add(ga.narrow(1, 577), gb),
    ops.add(ca.narrow(1, 577), cb),
    TOL.bf16,
    'add unaligned',
  );
});

test('affine', async () => {
  for (const dtype of FLOATS) {
    const [g, c] = randomPair([13, 129], dtype);
    await assertParity(ops.affine(g, -1.75, 0.3), ops.affine(c, -1.75, 0.3), TOL[dtype], `affine ${dtype}`);
  }
});

test('upload/download round-trips raw bits, including a multi-chunk tensor', async () => {
  const n = 5_000_001; // > 8 MiB staging buffer in f32
  const host = values(n);
  const [g] = pair(host, [n]);
  const back = await g.raw();
  assert.deepEqual(back, host);
});
