import type { AdamWDesc, AdamWSlot } from '../../runtime/backend.js';
import { fromF32 } from '../../runtime/dtype.js';
import type { Tensor } from '../../runtime/tensor.js';
import { rawOf } from './memory.js';

/** AdamW in place over every slot (grad-ops.adamwSteps), each element in f64 and stored as f32. */
export function adamwSteps(slots: readonly AdamWSlot[], d: AdamWDesc): void {
  const { lr, beta1, beta2, eps, step, gradScale } = d;
  const bc1 = 1 - beta1 ** step;
  const sqrtBc2 = Math.sqrt(1 - beta2 ** step);
  const stepSize = lr / bc1;
  for (const s of slots) {
    const p = rawOf(s.param) as Float32Array;
    const mv = rawOf(s.m) as Float32Array;
    const vv = rawOf(s.v) as Float32Array;
    const g = rawOf(s.grad) as Float32Array;
    const decay = 1 - lr * s.weightDecay;
    for (let i = 0; i < p.length; i++) {
      const gi = g[i] * gradScale;
      const mi = beta1 * mv[i] + (1 - beta1) * gi;
      const vi = beta2 * vv[i] + (1 - beta2) * gi * gi;
      mv[i] = mi;
      vv[i] = vi;
      p[i] = p[i] * decay - (stepSize * mi) / (Math.sqrt(vi) / sqrtBc2 + eps);
    }
    if (s.copy) rawOf(s.copy).set(s.copy.dtype === 'f32' ? p : fromF32(s.copy.dtype, p));
  }
}

/** out[0] = Σ x² over every tensor of xs (f32), accumulated in f64 (grad-ops.sumSquares). */
export function sumSquares(out: Tensor, xs: readonly Tensor[]): void {
  let total = 0;
  for (const x of xs) for (const v of rawOf(x) as Float32Array) total += v * v;
  (rawOf(out) as Float32Array)[0] = total;
}
