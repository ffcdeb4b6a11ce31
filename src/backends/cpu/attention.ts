import type { AttentionDesc } from '../../runtime/backend.js';
import type { Tensor } from '../../runtime/tensor.js';
import { f32Of, f32Out } from './memory.js';

/**
 * Reference attention: for each (batch, query head, query) the scores over the keys it may see, an f32
 * softmax, then the weighted sum of values. Keys outside a query's range get probability 0; a query that
 * sees no key outputs zeros.
 */
export function attention(
  out: Tensor,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  mask: Tensor | null,
  weights: Tensor | null,
  d: AttentionDesc,
): void {
  const qv = f32Of(q);
  const kv = f32Of(k);
  const vv = f32Of(v);
  const mv = mask ? f32Of(mask) : null;
  const maskBatched = mask ? mask.size === d.batch * d.sq * d.kvLength && d.batch > 1 : false;
  const wv = weights ? f32Of(weights) : null;
  const o = f32Out(out);
  const { batch, sq, skv, kvLength, hq, hkv, d: dim, dv, scale, causal, queryOffset, segments } = d;
  const group = hq / hkv;
  const scores = new Float64Array(kvLength);
  const segOf = segments ? segmentIndex(segments, sq) : null;
  for (let b = 0; b < batch; b++)
    for (let h = 0; h < hq; h++) {
      const kh = Math.floor(h / group);
      for (let i = 0; i < sq; i++) {
        let lo = 0;
        let hi = kvLength;
        if (causal) hi = Math.min(hi, queryOffset + i + 1);
        if (segOf) {
          lo = segments![segOf[i]];
          hi = Math.min(hi, segments![segOf[i] + 1]);
        }
        const qBase = ((b * sq + i) * hq + h) * dim;
        let max = Number.NEGATIVE_INFINITY;
        for (let j = lo; j < hi; j++) {
          const kBase = ((b * skv + j) * hkv + kh) * dim;
          let s = 0;
          for (let t = 0; t < dim; t++) s += qv[qBase + t] * kv[kBase + t];
          s *= scale;
          if (mv) s += mv[((maskBatched ? b : 0) * sq + i) * kvLength + j];
          scores[j] = s;
          if (s > max) max = s;
        }
        let sum = 0;
        for (let j = lo; j < hi; j++) {
          const e = max === Number.NEGATIVE_INFINITY ? 0 : Math.exp(scores[j] - max);
          scores[j] = e;
          sum += e;
        }
        const oBase = ((b * sq + i) * hq + h) * dv;
        for (let t = 0; t < dv; t++) o.data[oBase + t] = 0;
        const wBase = ((b * hq + h) * sq + i) * kvLength;
        if (wv) wv.fill(0, wBase, wBase + kvLength);
        if (sum === 0) continue;
        for (let j = lo; j < hi; j++) {
          const p = scores[j] / sum;
          if (wv) wv[wBase + j] = p;
          const vBase = ((b * skv + j) * hkv + kh) * dv;
          for (let t = 0; t < dv; t++) o.data[oBase + t] += p * vv[vBase + t];
        }
      }
    }
  o.commit();
}

/** For each position, the index of the segment [seg[s], seg[s+1]) holding it. */
function segmentIndex(seg: Int32Array, n: number): Int32Array {
  const out = new Int32Array(n);
  let s = 0;
  for (let i = 0; i < n; i++) {
    while (i >= seg[s + 1]) s++;
    out[i] = s;
  }
  return out;
}
