import type { SampleDesc } from '../../runtime/backend.js';
import type { Tensor } from '../../runtime/tensor.js';
import { argmaxRow } from './layout.js';
import { f32Of, rawOf } from './memory.js';

/**
 * Hugging Face's order: repetition penalty, then temperature, top-k, top-p. Candidates are ordered by
 * descending logit (ties: lower id first); top-k keeps the first k, top-p the shortest prefix whose
 * probability reaches p (at least one); the pick is the first candidate whose cumulative probability exceeds
 * u · (sum of kept probabilities). Every backend follows these rules so one seed gives one answer.
 */
export function sample(
  out: Tensor,
  logits: Tensor,
  uniforms: Float32Array,
  previous: Tensor | null,
  d: SampleDesc,
): void {
  const all = f32Of(logits);
  const dst = rawOf(out) as Int32Array;
  const prev = previous ? (rawOf(previous) as Int32Array) : null;
  const seen = previous ? previous.shape[1] : 0;
  const { rows, vocab } = d;
  for (let r = 0; r < rows; r++) {
    const row = Float64Array.from(all.subarray(r * vocab, (r + 1) * vocab));
    if (prev && d.repetitionPenalty !== 1) {
      const done = new Set<number>();
      for (let i = 0; i < seen; i++) {
        const id = prev[r * seen + i];
        if (id < 0 || id >= vocab || done.has(id)) continue;
        done.add(id);
        row[id] = row[id] > 0 ? row[id] / d.repetitionPenalty : row[id] * d.repetitionPenalty;
      }
    }
    if (d.temperature <= 0) {
      dst[r] = argmaxRow(row, 0, vocab);
      continue;
    }
    const order = Array.from({ length: vocab }, (_, i) => i).sort((a, b) => row[b] - row[a] || a - b);
    let keep = d.topK > 0 ? Math.min(d.topK, vocab) : vocab;
    const max = row[order[0]] / d.temperature;
    const p = new Float64Array(keep);
    let total = 0;
    for (let i = 0; i < keep; i++) {
      p[i] = Math.exp(row[order[i]] / d.temperature - max);
      total += p[i];
    }
    if (d.topP < 1) {
      let acc = 0;
      for (let i = 0; i < keep; i++) {
        acc += p[i] / total;
        if (acc >= d.topP) {
          keep = i + 1;
          break;
        }
      }
      total = 0;
      for (let i = 0; i < keep; i++) total += p[i];
    }
    const target = uniforms[r] * total;
    let acc = 0;
    let pick = order[keep - 1];
    for (let i = 0; i < keep; i++) {
      acc += p[i];
      if (acc > target) {
        pick = order[i];
        break;
      }
    }
    dst[r] = pick;
  }
}
