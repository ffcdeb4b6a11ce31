import { type AttentionDesc, attentionKeyRanges } from '../../runtime/backend.js';
import type { Tensor } from '../../runtime/tensor.js';
import { gemm } from './gemm.js';
import { fastSoftmaxRows } from './kernels.js';
import { sharedF32Of, sharedF32Out } from './memory.js';
import { parallelFor } from './pool.js';

/**
 * Rows per block. A block is a few consecutive queries × every query head that shares one kv head (GQA), so
 * each key and value row is read once for the whole group.
 */
const ROWS = 64;
export const PARALLEL_WORK = 1 << 18;

/** The operands of attention and its backward (grad-attention.ts), as worker threads receive them. */
export interface AttentionInputs {
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  mask: Float32Array | null;
  maskBatched: boolean;
  desc: AttentionDesc;
  /** attentionKeyRanges(desc): each query's keys [lo, hi). */
  ranges: Int32Array;
}

export interface AttentionArgs extends AttentionInputs {
  out: Float32Array;
  weights: Float32Array | null;
}

export const attentionInputs = (
  q: Tensor,
  k: Tensor,
  v: Tensor,
  mask: Tensor | null,
  d: AttentionDesc,
): AttentionInputs => ({
  q: sharedF32Of(q),
  k: sharedF32Of(k),
  v: sharedF32Of(v),
  mask: mask ? sharedF32Of(mask) : null,
  maskBatched: mask !== null && d.batch > 1 && mask.size === d.batch * d.sq * d.kvLength,
  desc: d,
  ranges: attentionKeyRanges(d),
});

/** Queries per block: as many as fit in ROWS rows with all `group` heads of a kv head (at least one). */
export const queriesPerBlock = (d: AttentionDesc) => Math.max(1, Math.floor(ROWS / (d.hq / d.hkv)));

/**
 * Attention per block of (queries × heads of one kv group), as two GEMMs around an exact softmax (see
 * attentionTask). Keys outside a query's range get probability 0; a query that sees no key (or only −∞ mask)
 * outputs zeros. Parallel over (batch, kv head, query block).
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
    ...attentionInputs(q, k, v, mask, d),
    out: o.data,
    weights: weights ? sharedF32Of(weights) : null,
  };
  const units = d.batch * d.hkv * Math.ceil(d.sq / queriesPerBlock(d));
  const work = d.batch * d.hq * d.sq * d.kvLength * (d.d + d.dv);
  if (work < PARALLEL_WORK) attentionTask(args, 0, units);
  else parallelFor('attention', args, units, 1, attentionTask);
  o.commit();
}

// Per-thread scratch: packed query rows, scores then probabilities, output rows. f32, so the fast GEMM
// kernels run on them (the softmax sums in f64 registers).
let qs = new Float32Array(0);
let scores = new Float32Array(0);
let os = new Float32Array(0);
/** Each block row's key range, relative to the block's first key j0. */
let rowLo = new Int32Array(0);
let rowHi = new Int32Array(0);

/** A block's packed query rows and their probabilities over keys [j0, j0 + span) (views of per-thread scratch). */
export interface BlockProbabilities {
  /** [rows, d]: row r is query i0 + ⌊r/group⌋ of head kh·group + r mod group. */
  qs: Float32Array;
  /** [rows, span]: 0 outside each row's keys. */
  p: Float32Array;
  rows: number;
  j0: number;
  span: number;
}

/**
 * The probabilities of the block of `nq` queries from i0 × the heads of kv head kh in batch b: S = scale·Q·Kᵀ
 * over the union of the keys they may see, plus the mask, then a softmax per row with every key outside that
 * row's range at probability 0 (a row that sees nothing: all 0). Shared by the forward and the backward.
 */
export function blockProbabilities(
  a: AttentionInputs,
  b: number,
  kh: number,
  i0: number,
  nq: number,
): BlockProbabilities {
  const { sq, skv, kvLength, hq, hkv, d: dim, scale } = a.desc;
  const group = hq / hkv;
  const rows = nq * group;
  if (qs.length < rows * dim) qs = new Float32Array(rows * dim);
  if (rowLo.length < rows) [rowLo, rowHi] = [new Int32Array(rows), new Int32Array(rows)];
  let j0 = kvLength;
  let j1 = 0;
  for (let qi = 0; qi < nq; qi++) {
    const i = i0 + qi;
    j0 = Math.min(j0, a.ranges[2 * i]);
    j1 = Math.max(j1, a.ranges[2 * i + 1]);
    // The group's heads are contiguous for one query.
    const src = ((b * sq + i) * hq + kh * group) * dim;
    for (let t = 0; t < group * dim; t++) qs[qi * group * dim + t] = a.q[src + t];
  }
  const span = Math.max(j1 - j0, 0);
  if (scores.length < rows * span) scores = new Float32Array(rows * span);
  if (span > 0) {
    gemm({
      a: qs,
      aOff: 0,
      aRow: dim,
      aCol: 1,
      b: a.k,
      bOff: ((b * skv + j0) * hkv + kh) * dim,
      bRow: 1,
      bCol: hkv * dim,
      c: scores,
      cOff: 0,
      ldc: span,
      m: rows,
      n: span,
      k: dim,
      alpha: scale,
      bias: null,
      biasOff: 0,
      accumulate: false,
    });
    for (let r = 0; r < rows; r++) {
      const i = i0 + Math.floor(r / group);
      rowLo[r] = a.ranges[2 * i] - j0;
      rowHi[r] = a.ranges[2 * i + 1] - j0;
      if (a.mask) addMask(a, r, b, i, j0, span);
    }
    if (!fastSoftmaxRows(scores, rows, span, span, rowLo, rowHi))
      for (let r = 0; r < rows; r++) softmaxRow(r, span);
  }
  return { qs, p: scores, rows, j0, span };
}

/** Blocks [unitLo, unitHi) in (batch, kv head, query block) order: the block's probabilities, then O = P·V. */
export function attentionTask(a: AttentionArgs, unitLo: number, unitHi: number): void {
  const { sq, skv, kvLength, hq, hkv, dv } = a.desc;
  const { weights } = a;
  const group = hq / hkv;
  const qpb = queriesPerBlock(a.desc);
  const blocks = Math.ceil(sq / qpb);
  if (os.length < qpb * group * dv) os = new Float32Array(qpb * group * dv);
  for (let u = unitLo; u < unitHi; u++) {
    const b = Math.floor(u / (hkv * blocks));
    const kh = Math.floor(u / blocks) % hkv;
    const i0 = (u % blocks) * qpb;
    const nq = Math.min(qpb, sq - i0);
    const { p, rows, j0, span } = blockProbabilities(a, b, kh, i0, nq);
    if (span > 0) {
      if (weights) for (let r = 0; r < rows; r++) writeWeights(a, r, b, kh, i0, j0, span);
      gemm({
        a: p,
        aOff: 0,
        aRow: span,
        aCol: 1,
        b: a.v,
        bOff: ((b * skv + j0) * hkv + kh) * dv,
        bRow: hkv * dv,
        bCol: 1,
        c: os,
        cOff: 0,
        ldc: dv,
        m: rows,
        n: dv,
        k: span,
        alpha: 1,
        bias: null,
        biasOff: 0,
        accumulate: false,
      });
    } else {
      os.fill(0, 0, rows * dv);
      if (weights)
        for (let r = 0; r < rows; r++) {
          const wb = weightRow(a, b, kh * group + (r % group), i0 + Math.floor(r / group));
          weights.fill(0, wb, wb + kvLength);
        }
    }
    for (let qi = 0; qi < nq; qi++) {
      const dst = ((b * sq + i0 + qi) * hq + kh * group) * dv;
      for (let t = 0; t < group * dv; t++) a.out[dst + t] = os[qi * group * dv + t];
    }
  }
}

/** Adds query i's mask row to block row r over its keys (scores[r·span + j − j0] is key j). */
function addMask(a: AttentionInputs, r: number, b: number, i: number, j0: number, span: number): void {
  const { sq, kvLength } = a.desc;
  const sr = r * span - j0;
  const mb = ((a.maskBatched ? b : 0) * sq + i) * kvLength;
  for (let j = a.ranges[2 * i]; j < a.ranges[2 * i + 1]; j++) scores[sr + j] += a.mask![mb + j];
}

/** The reference softmax of block row r in place over its columns [rowLo[r], rowHi[r]), 0 elsewhere. */
function softmaxRow(r: number, span: number): void {
  const sr = r * span;
  const l = rowLo[r];
  const e = rowHi[r];
  let max = Number.NEGATIVE_INFINITY;
  for (let j = l; j < e; j++) if (scores[sr + j] > max) max = scores[sr + j];
  let sum = 0;
  if (max !== Number.NEGATIVE_INFINITY)
    for (let j = l; j < e; j++) {
      const p = Math.exp(scores[sr + j] - max);
      scores[sr + j] = p;
      sum += p;
    }
  // A row that sees nothing (or only −∞) gets all-zero probabilities, hence a zero output.
  if (sum === 0) scores.fill(0, sr + l, sr + e);
  else for (let j = l; j < e; j++) scores[sr + j] /= sum;
  scores.fill(0, sr, sr + l);
  scores.fill(0, sr + e, sr + span);
}

/** Copies block row r's probabilities into the weights output (zero outside the keys it saw). */
function writeWeights(
  a: AttentionArgs,
  r: number,
  b: number,
  kh: number,
  i0: number,
  j0: number,
  span: number,
): void {
  const group = a.desc.hq / a.desc.hkv;
  const wb = weightRow(a, b, kh * group + (r % group), i0 + Math.floor(r / group));
  a.weights!.fill(0, wb, wb + a.desc.kvLength);
  a.weights!.set(scores.subarray(r * span, (r + 1) * span), wb + j0);
}

/** Offset of the weights row [batch, hq, sq, kvLength] of head h, query i. */
const weightRow = (a: AttentionArgs, b: number, h: number, i: number) =>
  ((b * a.desc.hq + h) * a.desc.sq + i) * a.desc.kvLength;
