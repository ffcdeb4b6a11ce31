import type { AttentionDesc } from '../../runtime/backend.js';
import type { Tensor } from '../../runtime/tensor.js';
import { sharedF32Of, sharedF32Out } from './memory.js';
import { parallelFor } from './pool.js';

/** Queries handled together: each key and value row is read once per block instead of once per query. */
const QB = 8;
const PARALLEL_WORK = 1 << 18;

export interface AttentionArgs {
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  out: Float32Array;
  mask: Float32Array | null;
  maskBatched: boolean;
  weights: Float32Array | null;
  desc: AttentionDesc;
  /** For each query, the index of the segment holding it (block-diagonal attention), or null. */
  segOf: Int32Array | null;
}

/**
 * Two-pass attention per block of QB queries of one (batch, head): the f64 scores of every query over the
 * keys it may see, an exact softmax per query, then the value rows weighted into QB accumulators. Keys
 * outside a query's range get probability 0; a query that sees no key (or only −∞ mask) outputs zeros.
 * Parallel over (batch, head, query block).
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
  const o = sharedF32Out(out);
  const args: AttentionArgs = {
    q: sharedF32Of(q),
    k: sharedF32Of(k),
    v: sharedF32Of(v),
    out: o.data,
    mask: mask ? sharedF32Of(mask) : null,
    maskBatched: mask !== null && d.batch > 1 && mask.size === d.batch * d.sq * d.kvLength,
    weights: weights ? sharedF32Of(weights) : null,
    desc: d,
    segOf: d.segments ? segmentIndex(d.segments, d.sq) : null,
  };
  const units = d.batch * d.hq * Math.ceil(d.sq / QB);
  const work = d.batch * d.hq * d.sq * d.kvLength * (d.d + d.dv);
  if (work < PARALLEL_WORK) attentionTask(args, 0, units);
  else parallelFor('attention', args, units, 1, attentionTask);
  o.commit();
}

let scores = new Float64Array(0);
let acc = new Float64Array(0);
let qs = new Float64Array(0);
const lo = new Int32Array(QB);
const hi = new Int32Array(QB);

/** Query blocks [unitLo, unitHi) in (batch, head, block) order. */
export function attentionTask(a: AttentionArgs, unitLo: number, unitHi: number): void {
  const { sq, skv, kvLength, hq, hkv, d: dim, dv, scale, causal, queryOffset, segments } = a.desc;
  const { q, k, v, out, mask, weights, segOf } = a;
  const blocks = Math.ceil(sq / QB);
  const group = hq / hkv;
  if (scores.length < QB * kvLength) scores = new Float64Array(QB * kvLength);
  if (acc.length < QB * dv) acc = new Float64Array(QB * dv);
  if (qs.length < QB * dim) qs = new Float64Array(QB * dim);
  const kStride = hkv * dim;
  const vStride = hkv * dv;
  for (let u = unitLo; u < unitHi; u++) {
    const b = Math.floor(u / (hq * blocks));
    const h = Math.floor(u / blocks) % hq;
    const i0 = (u % blocks) * QB;
    const nq = Math.min(QB, sq - i0);
    const kh = Math.floor(h / group);
    // Each query's key range and its scaled row.
    let jMin = kvLength;
    let jMax = 0;
    for (let r = 0; r < nq; r++) {
      const i = i0 + r;
      let l = 0;
      let e = kvLength;
      if (causal) e = Math.min(e, queryOffset + i + 1);
      if (segOf) {
        l = segments![segOf[i]];
        e = Math.min(e, segments![segOf[i] + 1]);
      }
      lo[r] = l;
      hi[r] = e;
      if (l < jMin) jMin = l;
      if (e > jMax) jMax = e;
      const qBase = ((b * sq + i) * hq + h) * dim;
      for (let t = 0; t < dim; t++) qs[r * dim + t] = q[qBase + t] * scale;
    }
    // Pass 1: scores, one key row at a time for the whole block.
    const kBase0 = (b * skv * hkv + kh) * dim;
    for (let j = jMin; j < jMax; j++) {
      const kb = kBase0 + j * kStride;
      for (let r = 0; r < nq; r++) {
        if (j < lo[r] || j >= hi[r]) continue;
        const qb = r * dim;
        let s0 = 0;
        let s1 = 0;
        let t = 0;
        for (; t + 1 < dim; t += 2) {
          s0 += qs[qb + t] * k[kb + t];
          s1 += qs[qb + t + 1] * k[kb + t + 1];
        }
        if (t < dim) s0 += qs[qb + t] * k[kb + t];
        scores[r * kvLength + j] = s0 + s1;
      }
    }
    // Softmax per query (masks added here), probabilities left in `scores`.
    for (let r = 0; r < nq; r++) {
      const i = i0 + r;
      const sr = r * kvLength;
      if (mask) {
        const mb = ((a.maskBatched ? b : 0) * sq + i) * kvLength;
        for (let j = lo[r]; j < hi[r]; j++) scores[sr + j] += mask[mb + j];
      }
      let max = Number.NEGATIVE_INFINITY;
      for (let j = lo[r]; j < hi[r]; j++) if (scores[sr + j] > max) max = scores[sr + j];
      let sum = 0;
      if (max !== Number.NEGATIVE_INFINITY)
        for (let j = lo[r]; j < hi[r]; j++) {
          const e = Math.exp(scores[sr + j] - max);
          scores[sr + j] = e;
          sum += e;
        }
      if (sum === 0) hi[r] = lo[r]; // sees nothing: zeros
      const inv = sum === 0 ? 0 : 1 / sum;
      for (let j = lo[r]; j < hi[r]; j++) scores[sr + j] *= inv;
      if (weights) {
        const wb = ((b * hq + h) * sq + i) * kvLength;
        weights.fill(0, wb, wb + kvLength);
        for (let j = lo[r]; j < hi[r]; j++) weights[wb + j] = scores[sr + j];
      }
    }
    // Pass 2: weighted values, one value row at a time for the whole block.
    acc.fill(0, 0, nq * dv);
    const vBase0 = (b * skv * hkv + kh) * dv;
    for (let j = jMin; j < jMax; j++) {
      const vb = vBase0 + j * vStride;
      for (let r = 0; r < nq; r++) {
        if (j < lo[r] || j >= hi[r]) continue;
        const p = scores[r * kvLength + j];
        const ab = r * dv;
        for (let t = 0; t < dv; t++) acc[ab + t] += p * v[vb + t];
      }
    }
    for (let r = 0; r < nq; r++) {
      const oBase = ((b * sq + i0 + r) * hq + h) * dv;
      for (let t = 0; t < dv; t++) out[oBase + t] = acc[r * dv + t];
    }
  }
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
