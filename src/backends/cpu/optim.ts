import type { AdamWDesc } from '../../runtime/backend.js';
import { fromF32 } from '../../runtime/dtype.js';
import type { Tensor } from '../../runtime/tensor.js';
import { rawOf } from './memory.js';

/** AdamW in place (grad-ops.adamwStep), each element in f64 and stored as f32; `copy` gets the new param. */
export function adamwStep(
  param: Tensor,
  m: Tensor,
  v: Tensor,
  grad: Tensor,
  copy: Tensor | null,
  d: AdamWDesc,
): void {
  const { size, lr, beta1, beta2, eps, weightDecay, step, gradScale } = d;
  const p = rawOf(param) as Float32Array;
  const mv = rawOf(m) as Float32Array;
  const vv = rawOf(v) as Float32Array;
  const g = rawOf(grad) as Float32Array;
  const bc1 = 1 - beta1 ** step;
  const sqrtBc2 = Math.sqrt(1 - beta2 ** step);
  const decay = 1 - lr * weightDecay;
  const stepSize = lr / bc1;
  for (let i = 0; i < size; i++) {
    const gi = g[i] * gradScale;
    const mi = beta1 * mv[i] + (1 - beta1) * gi;
    const vi = beta2 * vv[i] + (1 - beta2) * gi * gi;
    mv[i] = mi;
    vv[i] = vi;
    p[i] = p[i] * decay - (stepSize * mi) / (Math.sqrt(vi) / sqrtBc2 + eps);
  }
  if (copy) rawOf(copy).set(copy.dtype === 'f32' ? p : fromF32(copy.dtype, p));
}
