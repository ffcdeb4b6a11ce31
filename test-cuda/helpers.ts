/**
 * Parity helpers for the CUDA tests: the same random host values go to the CUDA and CPU backends, an op runs
 * on both, and the results must agree within a dtype's tolerance (the CPU backend is the reference).
 */
import assert from 'node:assert/strict';
import '../src/index.js';
import { Checkpoint } from '../src/io/checkpoint.js';
import type { Backend } from '../src/runtime/backend.js';
import { getBackend } from '../src/runtime/device.js';
import type { DType } from '../src/runtime/dtype.js';
import { tensor } from '../src/runtime/ops.js';
import type { Tensor } from '../src/runtime/tensor.js';
import { autogradEngine } from '../src/train/engine.js';
import { type StepInfo, train } from '../src/train/trainer.js';
import { randn, rng } from '../test/helpers.js';
import { tinyRecipe } from '../test/train/tiny.js';

export const gpu: Backend = await getBackend('cuda');
export const cpu: Backend = await getBackend('cpu');

const seed = (Math.random() * 2 ** 32) >>> 0;
console.log(`# test-cuda seed ${seed}`);
export const random = rng(seed);

/** Relative tolerances by dtype (DESIGN §4): f32 ~1e-5, bf16/f16 ~1e-2. */
export const TOL: Record<DType, number> = { f32: 1e-5, bf16: 1e-2, f16: 5e-3, i32: 0, u8: 0 };

/**
 * How bf16 attention on flash tiles is judged: bf16 probabilities feed the P·V product (as in every flash kernel),
 * so outputs that cancel carry an absolute error of a few 1e-3 of the data's scale: relative 2e-2 at a floor of
 * half the scale (assertParity's tol and floor).
 */
export const FLASH_BF16 = { tol: 2e-2, floor: 0.5 } as const;

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

/** Trained f32 weights by name. */
export type Weights = Map<string, Float32Array>;

/** Three f32 steps of the tiny recipe at `path` (no evaluation) on `backend`: the losses and the trained weights. */
async function threeF32Steps(
  backend: Backend,
  path?: string,
): Promise<{ losses: number[]; weights: Weights }> {
  const recipe = tinyRecipe((j) => {
    j.schedule = { steps: 3, warmup: 1, minRatio: 0.1 };
    j.precision = 'f32';
    delete j.data.eval;
  }, path);
  const steps: StepInfo[] = [];
  const r = await train({ recipe, backend, engine: autogradEngine, onStep: (s) => steps.push(s) });
  const ck = await Checkpoint.open(r.checkpoint);
  const weights: Weights = new Map();
  for (const n of ck.names()) weights.set(n, (await ck.read(n)).data as Float32Array);
  await ck.close();
  return { losses: steps.map((s) => s.loss), weights };
}

/**
 * Trains the tiny recipe at `path` three f32 steps on CUDA and on the CPU (same initial weights and data),
 * asserts each step's loss agrees to 1e-4 of the CPU's, and returns the trained weights: [cuda, cpu].
 */
export async function trainThreeStepsOnBoth(path?: string): Promise<[Weights, Weights]> {
  const g = await threeF32Steps(gpu, path);
  const c = await threeF32Steps(cpu, path);
  g.losses.forEach((l, i) => {
    assert.ok(Math.abs(l - c.losses[i]) < 1e-4 * c.losses[i], `step ${i + 1}: ${l} vs ${c.losses[i]}`);
  });
  return [g.weights, c.weights];
}

/** Asserts every element of every weight of `got` is within `tol` (absolute) of `want`'s. */
export function assertWeightsClose(got: Weights, want: Weights, tol: number): void {
  for (const [name, w] of want) {
    const a = got.get(name)!;
    let worst = 0;
    for (let i = 0; i < w.length; i++) worst = Math.max(worst, Math.abs(a[i] - w[i]));
    assert.ok(worst < tol, `${name}: largest difference ${worst}`);
  }
}

/** Asserts that 150 bf16 steps (f32 masters) of the tiny recipe at `path` on CUDA cut the loss by 4×. */
export async function assertBf16Learns(path?: string): Promise<void> {
  const recipe = tinyRecipe((j) => {
    j.schedule = { steps: 150, warmup: 10, minRatio: 0.1 };
    j.precision = 'bf16';
  }, path);
  const losses: number[] = [];
  const r = await train({ recipe, backend: gpu, engine: autogradEngine, onStep: (s) => losses.push(s.loss) });
  assert.equal(r.dtype, 'bf16');
  const last = losses.slice(-10).reduce((a, b) => a + b) / 10;
  assert.ok(last < losses[0] / 4, `loss ${losses[0]} → ${last}`);
}
