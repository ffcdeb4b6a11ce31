/**
 * What the trainer needs from the autograd engine and the fused training kernels, in one interface: the
 * trainer is written against it, `defaultEngine` binds it to src/autograd and src/runtime/grad-ops, and
 * tests of the optimisation logic bind it to small plain-TypeScript versions.
 */
import type { Tensor } from '../runtime/tensor.js';

export interface AdamwHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based step (bias correction). */
  step: number;
  /** Multiplies the gradient first (clipping and the 1/tokens of accumulation). */
  gradScale: number;
}

export interface GradEngine {
  /** The scalar fn() and its gradients with respect to `params` (f32, the params' shapes). */
  valueAndGrad(fn: () => Tensor, params: readonly Tensor[]): { value: number; grads: Tensor[] };
  noGrad<T>(fn: () => T): T;
  /**
   * Σ over the rows whose target is not `ignoreIndex` of −log softmax(logits)[target]: logits [n, vocab] f32,
   * targets i32 [n]. A sum, so that micro-batches add up to the batch.
   */
  crossEntropySum(logits: Tensor, targets: Int32Array, ignoreIndex: number): Tensor;
  /**
   * Σ over rows of KL(teacher ‖ student) on the teacher's top-k logits (indices i32 [n, k], values f32
   * [n, k]) at `temperature`.
   */
  klTopKSum(logits: Tensor, topIndex: Tensor, topLogits: Tensor, temperature: number): Tensor;
  /** One fused AdamW update of `master` (f32, in place) and its moments; `copy` (bf16) gets the new values. */
  adamwStep(master: Tensor, grad: Tensor, m: Tensor, v: Tensor, h: AdamwHyper, copy: Tensor | null): void;
}
