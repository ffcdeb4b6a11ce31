/**
 * Gradient checks: the tape's analytic gradients (f32, CPU backend) against central finite differences of an
 * independent float64 forward written in plain JS (./reference.ts). The loss is Σ out·R with a fixed random R,
 * so every output element's gradient is exercised. With f64 and h = 1e-6 the finite differences are exact to
 * ~1e-8, so the tolerance only has to absorb the f32 arithmetic of the analytic side (~1e-5 relative).
 */
import assert from 'node:assert/strict';
import { valueAndGrad } from '../../src/autograd/index.js';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import * as ops from '../../src/runtime/ops.js';
import { tidy } from '../../src/runtime/scope.js';
import type { Tensor } from '../../src/runtime/tensor.js';
import { rng } from '../helpers.js';

export const cpu = cpuBackend();

export interface Input {
  shape: number[];
  /** Values are drawn uniform in [lo, hi) (default [−1, 1)). */
  lo?: number;
  hi?: number;
  /** Fixed values instead of random ones. */
  values?: ArrayLike<number>;
  /** false: a constant input (no gradient checked). */
  grad?: boolean;
}

export interface Check {
  inputs: Input[];
  /** The forward with the runtime's ops, on f32 tensors of the inputs. */
  run: (xs: Tensor[]) => Tensor;
  /** The same forward in float64 over the flat inputs, flat output in the same layout. */
  ref: (xs: Float64Array[]) => ArrayLike<number>;
  tol?: number;
  seed?: number;
}

const H = 1e-6;

export async function gradCheck(c: Check): Promise<void> {
  const r = rng(c.seed ?? 7);
  const xs = c.inputs.map((inp) => {
    const n = inp.shape.reduce((a, b) => a * b, 1);
    if (inp.values) return Float64Array.from(inp.values);
    const lo = inp.lo ?? -1;
    const hi = inp.hi ?? 1;
    // Round to f32 so both sides see the same inputs.
    return Float64Array.from({ length: n }, () => Math.fround(lo + (hi - lo) * r()));
  });
  const refOut = Float64Array.from(c.ref(xs));
  const R = Float64Array.from({ length: refOut.length }, () => Math.fround(r() * 2 - 1));
  const loss = (v: Float64Array[]) => {
    const o = c.ref(v);
    let s = 0;
    for (let i = 0; i < o.length; i++) s += o[i] * R[i];
    return s;
  };
  const ts = c.inputs.map((inp, i) => ops.tensor(cpu, Float32Array.from(xs[i]), inp.shape));
  const tracked = ts.filter((_, i) => c.inputs[i].grad !== false);
  const before = cpu.memory().current;
  // The forward agrees with the reference (else the gradient check would compare different functions).
  const out = tidy(() => c.run(ts));
  const got = await out.toArray();
  out.dispose();
  assert.equal(got.length, refOut.length, 'forward size differs from the reference');
  assertClose(got, refOut, 1e-4, 'forward');
  const Rt = ops.tensor(cpu, Float32Array.from(R), [R.length]);
  const { value, grads } = valueAndGrad(() => ops.sum(ops.mul(c.run(ts).reshape([-1]), Rt), -1), tracked);
  assert.ok(
    Math.abs(value - loss(xs)) <= 1e-4 * Math.max(1, Math.abs(loss(xs))),
    `loss ${value} vs ${loss(xs)}`,
  );
  let k = 0;
  for (const [i, inp] of c.inputs.entries()) {
    if (inp.grad === false) continue;
    const g = await grads[k++].toArray();
    const fd = xs[i].map((_, j) => {
      const plus = xs.map((x) => x.slice());
      const minus = xs.map((x) => x.slice());
      plus[i][j] += H;
      minus[i][j] -= H;
      return (loss(plus) - loss(minus)) / (2 * H);
    });
    assertClose(g, fd, c.tol ?? 2e-3, `gradient of input ${i}`);
  }
  for (const g of grads) g.dispose();
  Rt.dispose();
  // Everything the tape saved and every intermediate gradient was released.
  assert.equal(cpu.memory().current, before + 0, 'backward leaked memory');
  for (const t of ts) t.dispose();
}

/** |a − b| ≤ tol·max(|b|, scale/10) where scale is b's largest magnitude (so near-zero entries are fair). */
export function assertClose(a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string): void {
  let scale = 0;
  for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]));
  const floor = Math.max(scale / 10, 1e-6);
  for (let i = 0; i < b.length; i++) {
    const err = Math.abs(a[i] - b[i]) / Math.max(Math.abs(b[i]), floor);
    if (!(err <= tol))
      assert.fail(
        `${what}: element ${i} is ${a[i]}, expected ${b[i]} (relative error ${err.toExponential(2)} > ${tol})`,
      );
  }
}
