/**
 * The training loss of one example: cross-entropy on the answer tokens only (as train_needle.py), plus
 * optionally λ · KL from a teacher's top-k logits on those rows (Vamba's distillation). Both are the fused
 * kernels as recorded ops (src/autograd/losses.ts), means over the answer rows; the example contributes their
 * sums, so a step divides by its tokens once however it is split into micro-batches. The loss values are kept
 * (`values`) and read after the step.
 */
import * as ops from '../runtime/ops.js';
import { keep } from '../runtime/scope.js';
import type { Tensor } from '../runtime/tensor.js';
import type { GradEngine } from './engine.js';
import { IGNORE } from './model.js';

export interface TeacherTargets {
  /** i32 [rows, k]: the teacher's top-k ids on answer rows, −1 on the others. */
  ids: Tensor;
  /** f32 [rows, k]: their logits. */
  values: Tensor;
  weight: number;
}

/** A loss value to read after the step: mean · rows = the sum over its rows. */
export interface LossValue {
  mean: Tensor;
  rows: number;
  kind: 'ce' | 'kl';
}

/** Rows with a target (the answer tokens). */
export const countTargets = (targets: Int32Array): number =>
  targets.reduce((n, t) => n + (t !== IGNORE ? 1 : 0), 0);

/**
 * Σ CE (+ λ Σ KL) of one example's logits [rows, vocab] f32, recorded; the means go to `values` (kept out of
 * the recording's scope: readLosses disposes them).
 */
export function exampleObjective(
  engine: GradEngine,
  logits: Tensor,
  targets: Int32Array,
  teacher: TeacherTargets | null,
  values: LossValue[],
): Tensor {
  const rows = countTargets(targets);
  const t = ops.tensor(logits.backend, targets, [targets.length], 'i32');
  const ce = engine.crossEntropy(logits, t, { ignoreIndex: IGNORE });
  values.push({ mean: keep(engine.noGrad(() => ops.clone(ce))), rows, kind: 'ce' });
  let total = ops.scale(ce, rows);
  if (teacher) {
    const kl = engine.klTopK(logits, teacher.ids, teacher.values);
    values.push({ mean: keep(engine.noGrad(() => ops.clone(kl))), rows, kind: 'kl' });
    total = ops.add(total, ops.scale(kl, teacher.weight * rows));
  }
  return total;
}

/** Σ over the values of one kind (the CE sum is the token loss of the step). */
export async function readLosses(values: readonly LossValue[]): Promise<{ ce: number; kl: number }> {
  const out = { ce: 0, kl: 0 };
  for (const v of values) {
    out[v.kind] += (await v.mean.item()) * v.rows;
    v.mean.dispose();
  }
  return out;
}

/** The teacher's top-k (ids, logits) of each answer row of logits [rows, vocab] (host-side selection). */
export async function topKTargets(
  teacherLogits: Tensor,
  targets: Int32Array,
  k: number,
  weight: number,
): Promise<TeacherTargets> {
  const [rows, vocab] = teacherLogits.shape;
  const data = (await teacherLogits.data()) as Float32Array;
  const kk = Math.min(k, vocab);
  const ids = new Int32Array(rows * kk).fill(-1);
  const vals = new Float32Array(rows * kk);
  const order = new Int32Array(vocab);
  for (let r = 0; r < rows; r++) {
    if (targets[r] === IGNORE) continue;
    const row = data.subarray(r * vocab, (r + 1) * vocab);
    for (let i = 0; i < vocab; i++) order[i] = i;
    const top = Array.from(order)
      .sort((a, b) => row[b] - row[a])
      .slice(0, kk);
    top.forEach((id, j) => {
      ids[r * kk + j] = id;
      vals[r * kk + j] = row[id];
    });
  }
  const b = teacherLogits.backend;
  return {
    ids: ops.tensor(b, ids, [rows, kk], 'i32'),
    values: ops.tensor(b, vals, [rows, kk], 'f32'),
    weight,
  };
}
