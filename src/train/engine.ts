/**
 * What the trainer needs from the autograd engine (src/autograd) and the fused training kernels
 * (src/runtime/grad-ops), in one interface with their signatures: `defaultEngine` (engine-default.ts) binds
 * it to them, tests of the optimisation logic to small plain-TypeScript versions.
 */
import type { Tensor } from '../runtime/tensor.js';

export interface LossResult {
  /** f32 scalar: the mean over the rows counted. */
  loss: Tensor;
  /** gradScale · ∂loss/∂logits. */
  dLogits: Tensor | null;
}

export interface AdamwOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** 1-based count of updates including this one. */
  step: number;
  /** Multiplies the gradient first (clipping, 1/tokens of accumulation). */
  gradScale?: number;
  /** Receives the updated parameter in its dtype (the model's bf16 weight). */
  copy?: Tensor | null;
}

export interface GradEngine {
  /** The scalar fn() and its gradients with respect to `params` (f32, the params' shapes). */
  valueAndGrad(fn: () => Tensor, params: readonly Tensor[]): { value: number; grads: Tensor[] };
  noGrad<T>(fn: () => T): T;
  /** Softmax cross-entropy over rows whose target ≠ ignoreIndex (mean), with its gradient. */
  crossEntropy(
    logits: Tensor,
    targets: Tensor,
    opts: { ignoreIndex?: number; gradScale?: number },
  ): LossResult;
  /** KL(teacher ‖ student) over the teacher's top-k ids per row (mean over rows), with its gradient. */
  klTopK(logits: Tensor, teacherIds: Tensor, teacherValues: Tensor, opts: { gradScale?: number }): LossResult;
  /** One AdamW update of param (f32) and its moments, in place. */
  adamwStep(param: Tensor, m: Tensor, v: Tensor, grad: Tensor, opts: AdamwOptions): void;
}
