import type { AttentionDesc } from '../../runtime/backend.js';
import type { Tensor } from '../../runtime/tensor.js';
import {
  type AttentionInputs,
  attentionInputs,
  blockProbabilities,
  PARALLEL_WORK,
  queriesPerBlock,
} from './attention.js';
import { gemm } from './gemm.js';
import { sharedF32Of, sharedF32Out } from './memory.js';
import { parallelFor } from './pool.js';

export interface AttentionGradArgs extends AttentionInputs {
  dOut: Float32Array;
  dq: Float32Array;
  dk: Float32Array;
  dv: Float32Array;
}

/**
 * Exact attention backward, FlashAttention's way: per block of queries × the heads of one kv head, the
 * probabilities P again (blockProbabilities, as the forward), then with dP = dO·Vᵀ and δ = rowsum(P ∘ dP):
 *   dS = scale·P ∘ (dP − δ);  dQ = dS·K;  dK += dSᵀ·Q;  dV += Pᵀ·dO.
 * GQA heads add into their kv head's dK/dV. A row that sees no key (or only −∞) has zero gradients, as its output
 * is zero. Parallel over (batch, kv head), the owners of dK/dV rows; f32 products on the fast GEMM kernels.
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
  const outs = [dq, dk, dv].map(sharedF32Out);
  const args: AttentionGradArgs = {
    ...attentionInputs(q, k, v, mask, d),
    dOut: sharedF32Of(dOut),
    dq: outs[0].data,
    dk: outs[1].data.fill(0),
    dv: outs[2].data.fill(0),
  };
  const units = d.batch * d.hkv;
  const work = d.batch * d.hq * d.sq * d.kvLength * (d.d + d.dv);
  if (work < PARALLEL_WORK) attentionBackwardTask(args, 0, units);
  else parallelFor('attentionBackward', args, units, 1, attentionBackwardTask);
  for (const o of outs) o.commit();
}

// Per-thread scratch: the block's rows of dO, dP then dS, and dQ rows.
let gradOut = new Float32Array(0);
let ds = new Float32Array(0);
let dqs = new Float32Array(0);

/** The (batch, kv head) pairs [unitLo, unitHi), each over all its query blocks. */
export function attentionBackwardTask(a: AttentionGradArgs, unitLo: number, unitHi: number): void {
  const { sq, skv, hq, hkv, d: dim, dv: dimV, scale } = a.desc;
  const group = hq / hkv;
  const qpb = queriesPerBlock(a.desc);
  const maxRows = qpb * group;
  if (gradOut.length < maxRows * dimV) gradOut = new Float32Array(maxRows * dimV);
  if (dqs.length < maxRows * dim) dqs = new Float32Array(maxRows * dim);
  for (let u = unitLo; u < unitHi; u++) {
    const b = Math.floor(u / hkv);
    const kh = u % hkv;
    const kOff = (j0: number) => ((b * skv + j0) * hkv + kh) * dim;
    const vOff = (j0: number) => ((b * skv + j0) * hkv + kh) * dimV;
    for (let i0 = 0; i0 < sq; i0 += qpb) {
      const nq = Math.min(qpb, sq - i0);
      const { qs, p, rows, j0, span } = blockProbabilities(a, b, kh, i0, nq);
      const dqDst = (qi: number) => ((b * sq + i0 + qi) * hq + kh * group) * dim;
      if (span === 0) {
        for (let qi = 0; qi < nq; qi++) a.dq.fill(0, dqDst(qi), dqDst(qi) + group * dim);
        continue;
      }
      for (let qi = 0; qi < nq; qi++) {
        const src = ((b * sq + i0 + qi) * hq + kh * group) * dimV;
        for (let t = 0; t < group * dimV; t++) gradOut[qi * group * dimV + t] = a.dOut[src + t];
      }
      if (ds.length < rows * span) ds = new Float32Array(rows * span);
      const common = { aOff: 0, bias: null, biasOff: 0, cOff: 0 };
      // dP = dO·Vᵀ
      gemm({
        ...common,
        a: gradOut,
        aRow: dimV,
        aCol: 1,
        b: a.v,
        bOff: vOff(j0),
        bRow: 1,
        bCol: hkv * dimV,
        c: ds,
        ldc: span,
        m: rows,
        n: span,
        k: dimV,
        alpha: 1,
        accumulate: false,
      });
      for (let r = 0; r < rows; r++) {
        const o = r * span;
        let delta = 0;
        for (let j = 0; j < span; j++) delta += p[o + j] * ds[o + j];
        for (let j = 0; j < span; j++) ds[o + j] = scale * p[o + j] * (ds[o + j] - delta);
      }
      // dQ = dS·K
      gemm({
        ...common,
        a: ds,
        aRow: span,
        aCol: 1,
        b: a.k,
        bOff: kOff(j0),
        bRow: hkv * dim,
        bCol: 1,
        c: dqs,
        ldc: dim,
        m: rows,
        n: dim,
        k: span,
        alpha: 1,
        accumulate: false,
      });
      for (let qi = 0; qi < nq; qi++)
        a.dq.set(dqs.subarray(qi * group * dim, (qi + 1) * group * dim), dqDst(qi));
      // dK += dSᵀ·Q, dV += Pᵀ·dO, into the kv head's rows (stride hkv·d)
      gemm({
        ...common,
        a: ds,
        aRow: 1,
        aCol: span,
        b: qs,
        bOff: 0,
        bRow: dim,
        bCol: 1,
        c: a.dk,
        cOff: kOff(j0),
        ldc: hkv * dim,
        m: span,
        n: dim,
        k: rows,
        alpha: 1,
        accumulate: true,
      });
      gemm({
        ...common,
        a: p,
        aRow: 1,
        aCol: span,
        b: gradOut,
        bOff: 0,
        bRow: dimV,
        bCol: 1,
        c: a.dv,
        cOff: vOff(j0),
        ldc: hkv * dimV,
        m: span,
        n: dimV,
        k: rows,
        alpha: 1,
        accumulate: true,
      });
    }
  }
}
