/** Shared test utilities: seeded random inputs and float64 comparisons. */
import assert from 'node:assert/strict';

/** Mulberry32: a small seeded PRNG so a failing case can be replayed from its seed. */
export function rng(seed = (Math.random() * 2 ** 32) >>> 0): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n values uniform in [lo, hi), never exactly zero. */
export function randn(n: number, r: () => number, lo = -1, hi = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let v = lo + (hi - lo) * r();
    if (v === 0) v = 1e-3;
    out[i] = v;
  }
  return out;
}

/** Max |a−b| / max(|b|, floor) over all elements. */
export function maxRelErr(a: ArrayLike<number>, b: ArrayLike<number>, floor = 1e-3): number {
  assert.equal(a.length, b.length, 'length mismatch');
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]) / Math.max(Math.abs(b[i]), floor));
  return m;
}

export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: number,
  what = '',
): void {
  const e = maxRelErr(actual, expected);
  assert.ok(e <= tol, `${what} max relative error ${e.toExponential(2)} > ${tol}`);
}
