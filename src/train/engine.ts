/**
 * What the trainer needs from the autograd engine (src/autograd: recording, the fused losses as recorded
 * ops) and the optimizer kernel (src/runtime/grad-ops), in one interface: `autogradEngine` binds it to them;
 * tests of the optimisation logic hand gradients in directly and bind only the optimizer.
 */
import {
  checkpoint,
  crossEntropy,
  klTopK,
  noGrad,
  valueAndGrad,
  valueAndGradAsync,
} from '../autograd/index.js';
import { type AdamWOptions, type AdamWParam, adamwSteps, sumSquares } from '../runtime/grad-ops.js';
import type { Tensor } from '../runtime/tensor.js';

export interface GradEngine {
  /** The scalar fn() and its gradients with respect to `params` (f32, the params' shapes). */
  valueAndGrad(fn: () => Tensor, params: readonly Tensor[]): { value: number; grads: Tensor[] };
  /** The same for a forward that awaits (TimeViper's ToMe plan and token drops); nothing else runs meanwhile. */
  valueAndGradAsync(
    fn: () => Promise<Tensor>,
    params: readonly Tensor[],
  ): Promise<{ value: number; grads: Tensor[] }>;
  noGrad<T>(fn: () => T): T;
  /** Activation checkpointing: fn's intermediates are not kept but recomputed in backward. */
  checkpoint<T extends Tensor>(fn: () => T): T;
  /** Mean softmax cross-entropy over the rows whose target ≠ ignoreIndex: a recorded f32 scalar. */
  crossEntropy(logits: Tensor, targets: Tensor, opts: { ignoreIndex?: number }): Tensor;
  /** Mean KL(teacher ‖ student) over the teacher's top-k ids per row (ids < 0: padding): a recorded scalar. */
  klTopK(logits: Tensor, teacherIds: Tensor, teacherValues: Tensor): Tensor;
  /** One AdamW update of every param (f32) and its moments, in place. */
  adamwSteps(params: readonly AdamWParam[], opts: AdamWOptions): void;
  /** Σ x² over every element of every (f32) tensor, as an f32 scalar. */
  sumSquares(xs: readonly Tensor[]): Tensor;
}

/** The engine of src/autograd and src/runtime/grad-ops. */
export const autogradEngine: GradEngine = {
  valueAndGrad,
  valueAndGradAsync,
  noGrad,
  checkpoint,
  crossEntropy: (logits, targets, opts) => crossEntropy(logits, targets, opts),
  klTopK: (logits, ids, values) => klTopK(logits, ids, values),
  adamwSteps,
  sumSquares,
};
