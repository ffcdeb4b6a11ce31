/** Float64 central finite differences of a scalar function of several inputs, for the backward-kernel tests. */
import assert from 'node:assert/strict';
import { assertClose, randn } from '../helpers.js';

/**
 * Checks each `grads[k]` (null: not checked) against the central difference of f at `inputs` (f64 copies
 * of the f32 values the kernel saw) with step h, element by element: within tol of max(|difference|, floor).
 * The kernels multiply in f32, so an element near 0 carries the rounding of its O(1) terms (~1e-7 each): the
 * floor of 1e-2 keeps that from failing, while a wrong term (an error of the terms' size) still fails.
 */
export function checkGrads(
  what: string,
  f: (xs: Float64Array[]) => number,
  inputs: ArrayLike<number>[],
  grads: (ArrayLike<number> | null)[],
  opts: { tol?: number; floor?: number; h?: number; names?: string[] } = {},
): void {
  const { tol = 1e-4, floor = 1e-2, h = 1e-6 } = opts;
  const xs = inputs.map((a) => Float64Array.from(a));
  for (const [k, g] of grads.entries()) {
    if (!g) continue;
    const x = xs[k];
    const fd = new Float64Array(x.length);
    for (let i = 0; i < x.length; i++) {
      const v = x[i];
      x[i] = v + h;
      const up = f(xs);
      x[i] = v - h;
      const down = f(xs);
      x[i] = v;
      fd[i] = (up - down) / (2 * h);
    }
    assertClose(g, fd, tol, `${what}: d/d${opts.names?.[k] ?? `input ${k}`}`, floor);
  }
}

/** Σ a_i·b_i in f64. */
export const dot = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};

/**
 * The directional derivative of f along a random direction v of each input, by float64 central differences,
 * against ⟨gradient, v⟩, within 1e-4·‖gradient‖ (‖v‖² ≈ n, so an error e in the gradient shows as about ‖e‖).
 */
export function checkDirections(
  what: string,
  f: (xs: Float64Array[]) => number,
  inputs: Float32Array[],
  grads: (Float32Array | null)[],
  r: () => number,
): void {
  const xs = inputs.map((a) => Float64Array.from(a));
  const h = 1e-6;
  for (const [k, gk] of grads.entries()) {
    if (!gk) continue;
    const v = randn(xs[k].length, r);
    const x = xs[k];
    const x0 = Float64Array.from(x);
    const at = (s: number) => {
      for (let i = 0; i < x.length; i++) x[i] = x0[i] + s * v[i];
      return f(xs);
    };
    const fd = (at(h) - at(-h)) / (2 * h);
    x.set(x0);
    const norm = Math.sqrt(dot(gk, gk));
    const got = dot(gk, v);
    assert.ok(
      Math.abs(got - fd) <= 1e-4 * norm,
      `${what} d/d input ${k}: ⟨g, v⟩ ${got} vs ${fd} (‖g‖ ${norm})`,
    );
  }
}
