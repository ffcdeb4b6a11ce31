import type { BinaryOp, BroadcastDesc, UnaryOp } from '../../runtime/backend.js';
import { fromF32 } from '../../runtime/dtype.js';
import type { Tensor } from '../../runtime/tensor.js';
import { f32Of, f32Out, rawOf } from './memory.js';

/** erf with |error| < 1.2e-7 (Numerical Recipes' Chebyshev fit of erfc). */
export function erf(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t *
          (1.00002368 +
            t *
              (0.37409196 +
                t *
                  (0.09678418 +
                    t *
                      (-0.18628806 +
                        t *
                          (0.27886807 +
                            t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? 1 - r : r - 1;
}

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));

export const UNARY: Record<UnaryOp, (v: number) => number> = {
  neg: (v) => -v,
  exp: Math.exp,
  log: Math.log,
  sqrt: Math.sqrt,
  rsqrt: (v) => 1 / Math.sqrt(v),
  abs: Math.abs,
  sigmoid,
  tanh: Math.tanh,
  relu: (v) => (v > 0 ? v : 0),
  relu2: (v) => (v > 0 ? v * v : 0),
  silu: (v) => v * sigmoid(v),
  gelu: (v) => 0.5 * v * (1 + erf(v / Math.SQRT2)),
  gelu_tanh: (v) => 0.5 * v * (1 + Math.tanh(0.7978845608028654 * (v + 0.044715 * v * v * v))),
  quick_gelu: (v) => v * sigmoid(1.702 * v),
  softplus: (v) => (v > 20 ? v : Math.log1p(Math.exp(v))),
};

const BINARY: Record<BinaryOp, (a: number, b: number) => number> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  max: (a, b) => (a > b ? a : b),
  min: (a, b) => (a < b ? a : b),
};

export function cast(out: Tensor, x: Tensor): void {
  if (out.dtype === x.dtype) rawOf(out).set(rawOf(x));
  else rawOf(out).set(fromF32(out.dtype, f32Of(x)));
}

export function fill(out: Tensor, value: number): void {
  rawOf(out).fill(fromF32(out.dtype, [value])[0]);
}

export function unary(out: Tensor, op: UnaryOp, x: Tensor): void {
  const f = UNARY[op];
  const src = f32Of(x);
  const o = f32Out(out);
  for (let i = 0; i < src.length; i++) o.data[i] = f(src[i]);
  o.commit();
}

export function affine(out: Tensor, x: Tensor, scale: number, shift: number): void {
  const src = f32Of(x);
  const o = f32Out(out);
  for (let i = 0; i < src.length; i++) o.data[i] = src[i] * scale + shift;
  o.commit();
}

export function binary(out: Tensor, op: BinaryOp, a: Tensor, b: Tensor, desc: BroadcastDesc): void {
  const f = BINARY[op];
  const av = f32Of(a);
  const bv = f32Of(b);
  const o = f32Out(out);
  const { outShape, aStrides, bStrides } = desc;
  const rank = outShape.length;
  const n = out.size;
  if (a.size === n && b.size === n) {
    for (let i = 0; i < n; i++) o.data[i] = f(av[i], bv[i]);
  } else if (rank === 0) {
    o.data[0] = f(av[0], bv[0]);
  } else {
    // Walk the output row by row along the last axis with an odometer over the leading axes.
    const last = outShape[rank - 1];
    const sa = aStrides[rank - 1];
    const sb = bStrides[rank - 1];
    const idx = new Array<number>(rank).fill(0);
    let ia = 0;
    let ib = 0;
    for (let base = 0; base < n; base += last) {
      for (let j = 0; j < last; j++) o.data[base + j] = f(av[ia + j * sa], bv[ib + j * sb]);
      for (let ax = rank - 2; ax >= 0; ax--) {
        idx[ax]++;
        ia += aStrides[ax];
        ib += bStrides[ax];
        if (idx[ax] < outShape[ax]) break;
        ia -= aStrides[ax] * outShape[ax];
        ib -= bStrides[ax] * outShape[ax];
        idx[ax] = 0;
      }
    }
  }
  o.commit();
}
