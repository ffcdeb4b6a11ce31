import type { CrossEntropyDesc, KlTopKDesc } from '../../runtime/backend.js';
import type { Tensor } from '../../runtime/tensor.js';
import { f32Of, rawOf, writeF64 } from './memory.js';

/** log Σ_j exp(v[off + j]) over j < n (f64, max-shifted); −∞ when n is 0 or every value is −∞. */
function logSumExp(v: ArrayLike<number>, off: number, n: number): number {
  let max = Number.NEGATIVE_INFINITY;
  for (let j = 0; j < n; j++) if (v[off + j] > max) max = v[off + j];
  if (max === Number.NEGATIVE_INFINITY) return max;
  let sum = 0;
  for (let j = 0; j < n; j++) sum += Math.exp(v[off + j] - max);
  return max + Math.log(sum);
}

/**
 * Softmax cross-entropy (CrossEntropyDesc): loss = mean over counted rows of lse(row) − row[target];
 * dLogits = gradScale·(softmax(row) − onehot(target)) / count, zero on ignored rows. f64 sums.
 */
export function crossEntropy(
  loss: Tensor,
  dLogits: Tensor | null,
  logits: Tensor,
  targets: Tensor,
  d: CrossEntropyDesc,
): void {
  const { rows, vocab, ignoreIndex, gradScale } = d;
  const lv = f32Of(logits);
  const tv = rawOf(targets) as Int32Array;
  let count = 0;
  for (let r = 0; r < rows; r++) {
    const t = tv[r];
    if (t === ignoreIndex) continue;
    if (t < 0 || t >= vocab)
      throw new RangeError(
        `crossEntropy: target ${t} of row ${r} is outside the vocabulary of ${vocab} (and not the ignore index ${ignoreIndex})`,
      );
    count++;
  }
  const grad = dLogits ? new Float64Array(rows * vocab) : null;
  let total = 0;
  for (let r = 0; r < rows; r++) {
    const t = tv[r];
    if (t === ignoreIndex) continue;
    const off = r * vocab;
    const lse = logSumExp(lv, off, vocab);
    total += lse - lv[off + t];
    if (grad) {
      const s = gradScale / count;
      for (let j = 0; j < vocab; j++) grad[off + j] = Math.exp(lv[off + j] - lse) * s;
      grad[off + t] -= s;
    }
  }
  writeF64(loss, Float64Array.of(count ? total / count : 0));
  if (dLogits && grad) writeF64(dLogits, grad);
}

/**
 * Top-k KL (grad-ops.klTopK): per row over its valid entries (id ≥ 0), p = softmax(teacher values),
 * log q = student logit − lse(student logits at the ids); loss_r = Σ p·(log p − log q); the mean over rows
 * with a valid entry. dLogits[id_j] = gradScale·(q_j − p_j) / rows counted, zero elsewhere.
 */
export function klTopK(
  loss: Tensor,
  dLogits: Tensor | null,
  logits: Tensor,
  teacherIds: Tensor,
  teacherValues: Tensor,
  d: KlTopKDesc,
): void {
  const { rows, vocab, k, gradScale } = d;
  const lv = f32Of(logits);
  const ids = rawOf(teacherIds) as Int32Array;
  const tv = f32Of(teacherValues);
  const s = new Float64Array(k);
  const t = new Float64Array(k);
  const col = new Int32Array(k);
  const perRow: { r: number; n: number; kl: number; q: Float64Array; p: Float64Array; col: Int32Array }[] =
    [];
  for (let r = 0; r < rows; r++) {
    let n = 0;
    for (let j = 0; j < k; j++) {
      const id = ids[r * k + j];
      if (id < 0) continue;
      if (id >= vocab)
        throw new RangeError(`klTopK: teacher id ${id} of row ${r} is outside the vocabulary of ${vocab}`);
      s[n] = lv[r * vocab + id];
      t[n] = tv[r * k + j];
      col[n] = id;
      n++;
    }
    if (!n) continue;
    const ls = logSumExp(s, 0, n);
    const lt = logSumExp(t, 0, n);
    let kl = 0;
    const q = new Float64Array(n);
    const p = new Float64Array(n);
    for (let j = 0; j < n; j++) {
      const lp = t[j] - lt;
      p[j] = Math.exp(lp);
      q[j] = Math.exp(s[j] - ls);
      if (p[j] > 0) kl += p[j] * (lp - (s[j] - ls));
    }
    perRow.push({ r, n, kl, q, p, col: col.slice(0, n) });
  }
  const count = perRow.length;
  writeF64(loss, Float64Array.of(count ? perRow.reduce((a, e) => a + e.kl, 0) / count : 0));
  if (!dLogits) return;
  const grad = new Float64Array(rows * vocab);
  for (const e of perRow)
    for (let j = 0; j < e.n; j++) grad[e.r * vocab + e.col[j]] += (gradScale * (e.q[j] - e.p[j])) / count;
  writeF64(dLogits, grad);
}
