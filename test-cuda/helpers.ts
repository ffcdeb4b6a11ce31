/**
 * Parity helpers for the CUDA tests: the same random host values go to the CUDA and CPU backends, an op runs
 * on both, and the results must agree within a dtype's tolerance (the CPU backend is the reference).
 */
import assert from 'node:assert/strict';
import '../src/index.js';
import type { Backend } from '../src/runtime/backend.js';
import { getBackend } from '../src/runtime/device.js';
import type { DType } from '../src/runtime/dtype.js';
import { tensor } from '../src/runtime/ops.js';
import type { Tensor } from '../src/runtime/tensor.js';
import { randn, rng } from '../test/helpers.js';

export const gpu: Backend = await getBackend('cuda');
export const cpu: Backend = await getBackend('cpu');

const seed = (Math.random() * 2 ** 32) >>> 0;
console.log(`# test-cuda seed ${seed}`);
export const random = rng(seed);

/** Relative tolerances by dtype (DESIGN §4): f32 ~1e-5, bf16/f16 ~1e-2. */
export const TOL: Record<DType, number> = { f32: 1e-5, bf16: 1e-2, f16: 5e-3, i32: 0, u8: 0 };

/** Fresh values in [lo, hi) (never zero). */
export const values = (n: number, lo = -2, hi = 2): Float32Array => randn(n, random, lo, hi);

/** One host array uploaded to both backends: [cuda, cpu]. */
export function pair(
  host: ArrayLike<number>,
  shape: readonly number[],
  dtype: DType = 'f32',
): [Tensor, Tensor] {
  return [tensor(gpu, host, shape, dtype), tensor(cpu, host, shape, dtype)];
}

/** Random tensors of `shape` on both backends. */
export const randomPair = (
  shape: readonly number[],
  dtype: DType = 'f32',
  lo = -2,
  hi = 2,
): [Tensor, Tensor] =>
  pair(
    values(
      shape.reduce((a, b) => a * b, 1),
      lo,
      hi,
    ),
    shape,
    dtype,
  );

/**
 * Asserts |cuda − cpu| ≤ tol·(|cpu| + floor·max|cpu|) elementwise, with equal shapes and dtypes. The floor
 * keeps values near zero from demanding more than the data's scale allows: an output that cancels terms of
 * size max|cpu| carries their rounding error, whichever device computes it.
 */
export async function assertParity(
  actual: Tensor,
  expected: Tensor,
  tol: number,
  what: string,
  floor = 1e-3,
): Promise<void> {
  assert.equal(actual.backend.name, 'cuda', `${what}: result is not on the GPU`);
  assert.deepEqual(actual.shape, expected.shape, `${what}: shape`);
  assert.equal(actual.dtype, expected.dtype, `${what}: dtype`);
  const a = await actual.data();
  const b = await expected.data();
  let scale = 0;
  for (const v of b) if (Number.isFinite(v)) scale = Math.max(scale, Math.abs(v));
  let worst = 0;
  let at = -1;
  for (let i = 0; i < b.length; i++) {
    if (Object.is(a[i], b[i]) || a[i] === b[i]) continue;
    const err = Math.abs(a[i] - b[i]) / (Math.abs(b[i]) + floor * scale + 1e-30);
    if (!(err <= worst)) {
      worst = err;
      at = i;
    }
  }
  assert.ok(worst <= tol, `${what}: relative error ${worst} > ${tol} at ${at} (cuda ${a[at]}, cpu ${b[at]})`);
}

/** Shapes that are not multiples of tile or vector sizes. */
export const ODD = [3, 5, 7, 13, 37, 53, 129];
