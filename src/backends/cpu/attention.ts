import type { AttentionDesc } from '../../runtime/backend.js';
import type { Tensor } from '../../runtime/tensor.js';
import { gemm } from './gemm.js';
import { sharedF32Of, sharedF32Out } from './memory.js';
import { parallelFor } from './pool.js';

/** Queries per block: the block's scores and its output are two strided GEMMs. */
const QB = 64;
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
 * Attention per block of QB queries of one (batch, head), as two GEMMs around an exact softmax (see
 * attentionTask). Keys outside a query's range get probability 0; a query that sees no key (or only −∞ mask)
 * outputs zeros. Parallel over (batch, head, query block).
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

/** f64 scores, then probabilities, of the current block: [nq, span]. */
let scores = new Float64Array(0);
const lo = new Int32Array(QB);
const hi = new Int32Array(QB);

/**
 * Query blocks [unitLo, unitHi) in (batch, head, block) order. For one block of nq queries of head h:
 * S = scale·Q·Kᵀ over the union of the keys they may see (a GEMM on the strided head views), an f64 softmax
 * per query with every key outside that query's range at probability 0, then O = P·V (a second GEMM).
 */
export function attentionTask(a: AttentionArgs, unitLo: number, unitHi: number): void {
  const { sq, skv, kvLength, hq, hkv, d: dim, dv, scale, causal, queryOffset, segments } = a.desc;
  const { mask, weights, segOf } = a;
  const blocks = Math.ceil(sq / QB);
  const group = hq / hkv;
  if (scores.length < QB * kvLength) scores = new Float64Array(QB * kvLength);
  for (let u = unitLo; u < unitHi; u++) {
    const b = Math.floor(u / (hq * blocks));
    const h = Math.floor(u / blocks) % hq;
    const i0 = (u % blocks) * QB;
    const nq = Math.min(QB, sq - i0);
    const kh = Math.floor(h / group);
    // Each query's key range [lo, hi) and their union [j0, j1).
    let j0 = kvLength;
    let j1 = 0;
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
      hi[r] = Math.max(e, l);
      j0 = Math.min(j0, l);
      j1 = Math.max(j1, e);
    }
    const span = Math.max(j1 - j0, 0);
    const oOff = ((b * sq + i0) * hq + h) * dv;
    if (span === 0) {
      for (let r = 0; r < nq; r++) a.out.fill(0, oOff + r * hq * dv, oOff + r * hq * dv + dv);
      if (weights)
        for (let r = 0; r < nq; r++)
          weights.fill(0, rowOf(a, b, h, i0 + r), rowOf(a, b, h, i0 + r) + kvLength);
      continue;
    }
    gemm({
      a: a.q,
      aOff: ((b * sq + i0) * hq + h) * dim,
      aRow: hq * dim,
      aCol: 1,
      b: a.k,
      bOff: ((b * skv + j0) * hkv + kh) * dim,
      bRow: 1,
      bCol: hkv * dim,
      c: scores,
      cOff: 0,
      ldc: span,
      m: nq,
      n: span,
      k: dim,
      alpha: scale,
      bias: null,
      biasOff: 0,
      accumulate: false,
    });
    for (let r = 0; r < nq; r++) {
      const i = i0 + r;
      const sr = r * span - j0; // scores[sr + j] is key j of query r
      const l = lo[r];
      const e = hi[r];
      if (mask) {
        const mb = ((a.maskBatched ? b : 0) * sq + i) * kvLength;
        for (let j = l; j < e; j++) scores[sr + j] += mask[mb + j];
      }
      let max = Number.NEGATIVE_INFINITY;
      for (let j = l; j < e; j++) if (scores[sr + j] > max) max = scores[sr + j];
      let sum = 0;
      if (max !== Number.NEGATIVE_INFINITY)
        for (let j = l; j < e; j++) {
          const p = Math.exp(scores[sr + j] - max);
          scores[sr + j] = p;
          sum += p;
        }
      // A query that sees nothing (or only −∞) gets all-zero probabilities, hence a zero output.
      if (sum === 0) scores.fill(0, sr + l, sr + e);
      else for (let j = l; j < e; j++) scores[sr + j] /= sum;
      scores.fill(0, sr + j0, sr + l);
      scores.fill(0, sr + e, sr + j1);
      if (weights) {
        const wb = rowOf(a, b, h, i);
        weights.fill(0, wb, wb + kvLength);
        for (let j = l; j < e; j++) weights[wb + j] = scores[sr + j];
      }
    }
    gemm({
      a: scores,
      aOff: 0,
      aRow: span,
      aCol: 1,
      b: a.v,
      bOff: ((b * skv + j0) * hkv + kh) * dv,
      bRow: hkv * dv,
      bCol: 1,
      c: a.out,
      cOff: oOff,
      ldc: hq * dv,
      m: nq,
      n: dv,
      k: span,
      alpha: 1,
      bias: null,
      biasOff: 0,
      accumulate: false,
    });
  }
}

/** Offset of query i's row of weights [batch, hq, sq, kvLength]. */
const rowOf = (a: AttentionArgs, b: number, h: number, i: number) =>
  ((b * a.desc.hq + h) * a.desc.sq + i) * a.desc.kvLength;

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
