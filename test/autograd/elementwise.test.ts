/** Gradient checks of the elementwise rules: every unary op, every binary op (with broadcasting), affine. */
import { describe, it } from 'node:test';
import type { BinaryOp, UnaryOp } from '../../src/runtime/backend.js';
import * as ops from '../../src/runtime/ops.js';
import { gradCheck } from './gradcheck.js';
import * as ref from './reference.js';

const S = [3, 5, 7];
const POSITIVE = new Set(['log', 'sqrt', 'rsqrt']);

describe('autograd: unary ops', () => {
  for (const op of Object.keys(ref.UNARY) as UnaryOp[])
    it(op, () =>
      gradCheck({
        inputs: [POSITIVE.has(op) ? { shape: S, lo: 0.5, hi: 2 } : { shape: S, lo: -2, hi: 2 }],
        run: ([x]) => ops.unary(op, x),
        ref: ([x]) => x.map(ref.UNARY[op]),
      }),
    );
  it('softplus above its linear threshold', () =>
    gradCheck({
      inputs: [{ shape: [7], lo: 19, hi: 23 }],
      run: ([x]) => ops.softplus(x),
      ref: ([x]) => x.map(ref.UNARY.softplus),
    }));
});

describe('autograd: binary ops with broadcasting', () => {
  const pairs: [number[], number[]][] = [
    [S, S],
    [S, [7]],
    [
      [3, 1, 7],
      [5, 1],
    ],
    [[1], S],
  ];
  for (const op of Object.keys(ref.BINARY) as BinaryOp[])
    for (const [as, bs] of pairs)
      it(`${op} ${JSON.stringify(as)} ${JSON.stringify(bs)}`, () =>
        gradCheck({
          inputs: [
            { shape: as, lo: -2, hi: 2 },
            op === 'div' ? { shape: bs, lo: 0.5, hi: 2 } : { shape: bs, lo: -2, hi: 2 },
          ],
          run: ([a, b]) => ops.binary(op, a, b),
          ref: ([a, b]) => ref.broadcast(ref.BINARY[op], a, as, b, bs),
        }));
  it('the same tensor on both sides (its gradients add up)', () =>
    gradCheck({
      inputs: [{ shape: S }],
      run: ([x]) => ops.mul(x, x),
      ref: ([x]) => x.map((v) => v * v),
    }));
});

describe('autograd: affine', () => {
  it('x·scale + shift', () =>
    gradCheck({
      inputs: [{ shape: S }],
      run: ([x]) => ops.affine(x, -1.7, 0.3),
      ref: ([x]) => x.map((v) => -1.7 * v + 0.3),
    }));
});
