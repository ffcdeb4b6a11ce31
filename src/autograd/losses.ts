/**
 * The fused losses of grad-ops.ts (softmax cross-entropy, top-k KL) as recorded ops: the kernel computes the
 * loss and ∂loss/∂logits in one pass; while a tape records, the gradient is kept for backward (scaled there
 * by the loss's own gradient), else it is not computed at all.
 */
import { active } from '../runtime/grad-hook.js';
import * as gradOps from '../runtime/grad-ops.js';
import * as ops from '../runtime/ops.js';
import type { Tensor } from '../runtime/tensor.js';
import { registerRule } from './rule.js';

function recorded(r: gradOps.LossResult, logits: Tensor): Tensor {
  if (r.dLogits) {
    active?.record('fusedLoss', [logits], [r.loss, r.dLogits], {});
    r.dLogits.dispose();
  }
  return r.loss;
}

/**
 * Mean softmax cross-entropy of logits [..., vocab] against i32 targets [...] over the rows whose target is not
 * `ignoreIndex` (default −100): an f32 scalar [] that autograd differentiates w.r.t. the logits.
 */
export function crossEntropy(logits: Tensor, targets: Tensor, opts: { ignoreIndex?: number } = {}): Tensor {
  return recorded(gradOps.crossEntropy(logits, targets, { ...opts, grad: active !== null }), logits);
}

/**
 * Mean KL(teacher ‖ student) over the teacher's top-k ids per row (Vamba's distillation; see
 * grad-ops.klTopK): an f32 scalar [] differentiable w.r.t. the student's logits.
 */
export function klTopK(logits: Tensor, teacherIds: Tensor, teacherValues: Tensor): Tensor {
  return recorded(gradOps.klTopK(logits, teacherIds, teacherValues, { grad: active !== null }), logits);
}

/** [logits] → [loss, dLogits]: the saved dLogits times the loss's gradient. */
registerRule('fusedLoss', {
  save: () => ({ outputs: [1] }),
  backward: ({ outputs }, [g]) => {
    const d = outputs[1]!;
    return [ops.mul(d.dtype === 'f32' ? d : ops.cast(d, 'f32'), g!.reshape([1]))];
  },
});
