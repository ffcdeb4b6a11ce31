import { type AttentionDesc, attentionKeyRanges } from '../../runtime/backend.js';
import type { Tensor } from '../../runtime/tensor.js';
import { f32Of, writeF64 } from './memory.js';

/**
 * Exact attention backward per (batch, query head, query), in f64: recomputes the probabilities P of the
 * query's row (logits scale·q·k + mask over its key range, as the forward), then with dP_j = dO·v_j and
 * δ = Σ_j P_j·dP_j (= dO·O):  dS_j = P_j·(dP_j − δ);  dq = scale·Σ_j dS_j·k_j;  dk_j += scale·dS_j·q;
 * dv_j += P_j·dO. GQA heads add into their kv head's dk/dv. A row that sees no key (or only −∞) has zero
 * gradients, as its output is zero.
 */
export function attentionBackward(
  dq: Tensor,
  dk: Tensor,
  dv: Tensor,
  dOut: Tensor,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  _out: Tensor,
  mask: Tensor | null,
  d: AttentionDesc,
): void {
  const { batch, sq, skv, kvLength, hq, hkv, d: dim, dv: dimV, scale } = d;
  const qv = f32Of(q);
  const kv = f32Of(k);
  const vv = f32Of(v);
  const go = f32Of(dOut);
  const mv = mask ? f32Of(mask) : null;
  const maskBatched = mask !== null && batch > 1 && mask.size === batch * sq * kvLength;
  const gq = new Float64Array(q.size);
  const gk = new Float64Array(k.size);
  const gv = new Float64Array(v.size);
  const group = hq / hkv;
  const p = new Float64Array(kvLength);
  const dp = new Float64Array(kvLength);
  const ranges = attentionKeyRanges(d);
  for (let b = 0; b < batch; b++)
    for (let h = 0; h < hq; h++) {
      const kh = Math.floor(h / group);
      for (let i = 0; i < sq; i++) {
        const lo = ranges[2 * i];
        const hi = ranges[2 * i + 1];
        const qo = ((b * sq + i) * hq + h) * dim;
        const oo = ((b * sq + i) * hq + h) * dimV;
        const mo = ((maskBatched ? b : 0) * sq + i) * kvLength;
        let max = Number.NEGATIVE_INFINITY;
        for (let j = lo; j < hi; j++) {
          const ko = ((b * skv + j) * hkv + kh) * dim;
          let s = 0;
          for (let t = 0; t < dim; t++) s += qv[qo + t] * kv[ko + t];
          s = s * scale + (mv ? mv[mo + j] : 0);
          p[j] = s;
          if (s > max) max = s;
        }
        if (max === Number.NEGATIVE_INFINITY) continue;
        let sum = 0;
        for (let j = lo; j < hi; j++) {
          p[j] = Math.exp(p[j] - max);
          sum += p[j];
        }
        let delta = 0;
        for (let j = lo; j < hi; j++) {
          p[j] /= sum;
          const vo = ((b * skv + j) * hkv + kh) * dimV;
          let g = 0;
          for (let t = 0; t < dimV; t++) {
            g += go[oo + t] * vv[vo + t];
            gv[vo + t] += p[j] * go[oo + t];
          }
          dp[j] = g;
          delta += p[j] * g;
        }
        for (let j = lo; j < hi; j++) {
          const ds = p[j] * (dp[j] - delta) * scale;
          if (ds === 0) continue;
          const ko = ((b * skv + j) * hkv + kh) * dim;
          for (let t = 0; t < dim; t++) {
            gq[qo + t] += ds * kv[ko + t];
            gk[ko + t] += ds * qv[qo + t];
          }
        }
      }
    }
  writeF64(dq, gq);
  writeF64(dk, gk);
  writeF64(dv, gv);
}
