/** Shared test utilities: seeded random inputs and float64 comparisons. */
import assert from 'node:assert/strict';
import { seededUniform } from '../src/util/random.js';

/** A seeded uniform stream (the project's mulberry32) so a failing case can be replayed from its seed. */
export const rng = (seed = (Math.random() * 2 ** 32) >>> 0): (() => number) => seededUniform(seed);

/**
 * Wraps a test body that draws fresh random inputs: the seed is random each run (or LONGSHOT_SEED to
 * replay one) and is printed in the failure message.
 */
export function seeded(fn: (r: () => number) => void | Promise<void>): () => Promise<void> {
  return async () => {
    const seed = process.env.LONGSHOT_SEED
      ? Number(process.env.LONGSHOT_SEED)
      : (Math.random() * 2 ** 32) >>> 0;
    try {
      await fn(rng(seed));
    } catch (e) {
      if (e instanceof Error) e.message += ` [replay with LONGSHOT_SEED=${seed}]`;
      throw e;
    }
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

/** A random integer in [lo, hi]. */
export const randint = (r: () => number, lo: number, hi: number): number =>
  lo + Math.floor(r() * (hi - lo + 1));

/** Max |a−b| / max(|b|, floor) over all elements. */
export function maxRelErr(a: ArrayLike<number>, b: ArrayLike<number>, floor = 1e-3): number {
  assert.equal(a.length, b.length, 'length mismatch');
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]) / Math.max(Math.abs(b[i]), floor);
    m = Math.max(m, Number.isNaN(d) ? Number.POSITIVE_INFINITY : d);
  }
  return m;
}

export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: number,
  what = '',
  floor = 1e-3,
): void {
  const e = maxRelErr(actual, expected, floor);
  if (e <= tol) return;
  let worst = 0;
  for (let i = 0; i < expected.length; i++)
    if (Math.abs(actual[i] - expected[i]) / Math.max(Math.abs(expected[i]), floor) >= e) worst = i;
  assert.fail(
    `${what} max relative error ${e.toExponential(2)} > ${tol} at [${worst}]: ${actual[worst]} vs ${expected[worst]}`,
  );
}

/** Like assertClose, relative to the largest |expected| (for values that cancel to near zero). */
export function assertCloseScaled(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: number,
  what = '',
): void {
  let scale = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]));
  assertClose(actual, expected, tol, what, Math.max(scale, 1e-30));
}

/** max |a − b| / max |b|: the error relative to the array's scale (logits; elementwise ratios blow up near zero). */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`length ${a.length} ≠ ${b.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / den;
}

/** A Vamba config.json as the Qwen2-VL it extends: the fields Vamba adds (src/models/vamba/convert.ts) deleted in place. */
export function dropVambaFields<T extends Record<string, unknown>>(json: T): T {
  for (const k of [
    'use_alpha_balancing',
    'cross_attn_use_position_embeddings',
    'cross_attn_use_layer_norm',
    'distill_coeff',
    'vision_mamba_mixer_config',
  ])
    delete json[k];
  return json;
}
