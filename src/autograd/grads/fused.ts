/**
 * Fused ops without a dedicated backward kernel yet, as composites (./composite.ts): each is written out in
 * f32 with the runtime's simpler ops, exactly as the fused kernel computes it, and backward goes through that.
 */
import type { AttentionDesc } from '../../runtime/backend.js';
import * as gradOps from '../../runtime/grad-ops.js';
import * as ops from '../../runtime/ops.js';
import type { Tensor } from '../../runtime/tensor.js';
import { registerComposite, replayGrads } from './composite.js';
import { f32 } from './util.js';

/** g in t's dtype (the kernels take activation gradients in the activation's dtype); zeros for no gradient. */
const like = (g: Tensor | null, t: Tensor): Tensor =>
  g ? (g.dtype === t.dtype ? g : ops.cast(g, t.dtype)) : ops.zeros(t.backend, t.shape, t.dtype);

const { add, mul, sub, affine } = ops;

interface NormAttrs {
  eps: number;
  groupSize?: number;
  normBeforeGate?: boolean;
}

/** [x, weight, gate, residual]: y = rms(x or x + residual, gated) · weight; also the sum when fused. */
registerComposite<NormAttrs>(
  'rmsNorm',
  ([x0, w, gate, res], a) => {
    const sum = res ? add(f32(x0!), f32(res)) : null;
    const x = sum ?? f32(x0!);
    const silu = gate ? ops.silu(f32(gate)) : null;
    const h = silu && !a.normBeforeGate ? mul(x, silu) : x;
    const hg = h.reshape([-1, a.groupSize ?? h.shape[h.rank - 1]]);
    const inv = ops.unary('rsqrt', affine(ops.mean(mul(hg, hg), -1, true), 1, a.eps));
    let y = mul(hg, inv).reshape(h.shape);
    if (w) y = mul(y, f32(w).reshape([-1]));
    if (silu && a.normBeforeGate) y = mul(y, silu);
    return sum ? [y, sum] : [y];
  },
  {
    outputs: [1],
    grads: ({ inputs: [x0, w, gate, res], outputs: [, sum], attrs }, [g, gSum]) => {
      const x = res ? sum! : x0!;
      if (!x.backend.rmsNormBackward) return null;
      const r = gradOps.rmsNormBackward(x, w, like(g, x), {
        ...attrs,
        gate,
        dSum: res && gSum ? like(gSum, x) : null,
      });
      return [r.dx, r.dWeight, r.dGate, res ? r.dx : null];
    },
  },
);

/** [x, weight, bias, residual]: (x − mean)/√(var + eps)·weight + bias over the last axis. */
registerComposite<NormAttrs>(
  'layerNorm',
  ([x0, w, b, res], a) => {
    const sum = res ? add(f32(x0!), f32(res)) : null;
    const x = sum ?? f32(x0!);
    const xc = sub(x, ops.mean(x, -1, true));
    let y = mul(xc, ops.unary('rsqrt', affine(ops.mean(mul(xc, xc), -1, true), 1, a.eps)));
    if (w) y = mul(y, f32(w).reshape([-1]));
    if (b) y = add(y, f32(b).reshape([-1]));
    return sum ? [y, sum] : [y];
  },
  {
    outputs: [1],
    grads: ({ inputs: [x0, w, b, res], outputs: [, sum], attrs }, [g, gSum]) => {
      const x = res ? sum! : x0!;
      if (!x.backend.layerNormBackward) return null;
      const r = gradOps.layerNormBackward(x, w, b, attrs.eps, like(g, x), {
        dSum: res && gSum ? like(gSum, x) : null,
      });
      return [r.dx, r.dWeight, r.dBias, res ? r.dx : null];
    },
  },
);

/** kv heads repeated to the query heads: [b, s, hkv, d] → [b, s, hkv·rep, d] (query head h reads ⌊h/rep⌋). */
function repeatHeads(t: Tensor, rep: number): Tensor {
  if (rep === 1) return t;
  const [b, s, h, d] = t.shape;
  return add(t.reshape([b, s, h, 1, d]), ops.zeros(t.backend, [b, s, h, rep, d])).reshape([b, s, h * rep, d]);
}

/** The additive −∞ mask [sq, kvLength] of causal masking and segments, or null when neither applies. */
function structuralMask(backend: Tensor['backend'], desc: AttentionDesc): Tensor | null {
  const { sq, kvLength, causal, queryOffset, segments } = desc;
  if (!causal && !segments) return null;
  const m = new Float32Array(sq * kvLength);
  const segOf = (i: number) => {
    let s = 0;
    while (segments && segments[s + 1] <= i) s++;
    return s;
  };
  for (let i = 0; i < sq; i++)
    for (let j = 0; j < kvLength; j++)
      if ((causal && j > queryOffset + i) || (segments && segOf(i) !== segOf(j)))
        m[i * kvLength + j] = Number.NEGATIVE_INFINITY;
  return ops.tensor(backend, m, [sq, kvLength]);
}

/** [q, k, v, mask]: softmax(q·kᵀ·scale + masks)·v per head, GQA by repeating kv heads; also the weights. */
function attentionComposite([q, k, v, mask]: readonly (Tensor | null)[], desc: AttentionDesc): Tensor[] {
  const { batch, sq, skv, kvLength, hq, hkv, d, dv } = desc;
  // [batch, s, heads, dim] → [batch, heads, s, dim]; keys and values cut to kvLength and repeated to hq heads.
  const qh = ops.permute(f32(q!).reshape([batch, sq, hq, d]), [0, 2, 1, 3]);
  const kv = (t: Tensor, dim: number) => {
    let r = f32(t).reshape([batch, skv, hkv, dim]);
    if (kvLength < skv) r = ops.slice(r, 1, 0, kvLength);
    return ops.permute(repeatHeads(r, hq / hkv), [0, 2, 1, 3]);
  };
  const [kh, vh] = [kv(k!, d), kv(v!, dv)];
  let scores = ops.matmul(qh, kh, { transB: true, alpha: desc.scale });
  const structural = structuralMask(q!.backend, desc);
  if (structural) scores = add(scores, structural);
  if (mask) scores = add(scores, mask.reshape([-1, 1, sq, kvLength]));
  const p = ops.softmax(scores);
  const out = ops
    .permute(ops.matmul(p, vh), [0, 2, 1, 3])
    .reshape(q!.rank === 3 ? [sq, hq, dv] : [batch, sq, hq, dv]);
  return [out, p];
}

/**
 * The length of every segment where self-attention runs over segments of one length (a vision tower's frames):
 * no causal mask, no offset, keys = queries; else 0.
 */
function uniformSegment(desc: AttentionDesc): number {
  const { segments: s, sq, skv, kvLength, causal, queryOffset } = desc;
  if (!s || causal || queryOffset !== 0 || skv !== sq || kvLength !== sq || s.length < 2) return 0;
  const L = s[1] - s[0];
  if (s[0] !== 0 || L <= 0 || s[s.length - 1] !== sq) return 0;
  for (let i = 1; i < s.length; i++) if (s[i] - s[i - 1] !== L) return 0;
  return L;
}

/**
 * Segments of one length L run as a batch of ⌈sq/L⌉ sequences: the composite's scores are then L×L blocks
 * instead of an sq×sq matrix that is −∞ off the blocks (the output only: the weights keep their full shape).
 */
const segmentsAsBatch =
  (L: number) =>
  ([q, k, v]: readonly (Tensor | null)[], desc: AttentionDesc): Tensor[] => {
    const n = (desc.batch * desc.sq) / L;
    const [out] = attentionComposite(
      [
        q!.reshape([n, L, desc.hq, desc.d]),
        k!.reshape([n, L, desc.hkv, desc.d]),
        v!.reshape([n, L, desc.hkv, desc.dv]),
        null,
      ],
      { ...desc, batch: n, sq: L, skv: L, kvLength: L, segments: null },
    );
    return [
      out.reshape(q!.rank === 3 ? [desc.sq, desc.hq, desc.dv] : [desc.batch, desc.sq, desc.hq, desc.dv]),
    ];
  };

let segmentsThroughComposite = process.env.LONGSHOT_ATTENTION_GRAD === 'segments-as-batch';

/**
 * Whether attention's backward over segments of one length (a vision tower's frames) runs them as a batch
 * through the composite (a few batched f32 GEMMs, softmax and their backward ops) instead of the backward
 * kernel (which reloads a short segment's keys and values for every 8 of its rows). An A/B switch for the
 * training benchmarks until one is measured faster (also LONGSHOT_ATTENTION_GRAD=segments-as-batch); off by
 * default.
 */
export function attentionSegmentsAsBatch(on: boolean): void {
  segmentsThroughComposite = on;
}

registerComposite<AttentionDesc>('attention', attentionComposite, {
  outputs: [0],
  // The kernel covers the output only: a gradient through the returned weights or into the mask takes the composite.
  grads: ({ inputs: [q, k, v, mask], outputs: [out], attrs, needs }, [g, gWeights]) => {
    if (!q!.backend.attentionBackward || gWeights || needs[3]) return null;
    if (segmentsThroughComposite && !mask && uniformSegment(attrs)) return null;
    const { causal, queryOffset, kvLength, scale, segments } = attrs;
    const r = gradOps.attentionBackward(q!, k!, v!, out!, like(g, out!), {
      causal,
      queryOffset,
      kvLength,
      scale,
      segments,
      mask,
    });
    return [r.dq, r.dk, r.dv, null];
  },
  special: ({ inputs, attrs, needs }, [g, gWeights]) => {
    const L = inputs[3] || gWeights ? 0 : uniformSegment(attrs);
    return L ? replayGrads(segmentsAsBatch(L), inputs, attrs, needs, [g]) : null;
  },
});

/** [x, weight [C, W], bias, state]: y_t = Σ_j w_j·[state; x]_{t+j} (+ bias, then SiLU); the last W−1 inputs. */
registerComposite<{ silu: boolean }>(
  'conv1dCausal',
  ([x0, w0, bias, state], a) => {
    const x = f32(x0!);
    const w = f32(w0!);
    const [batch, len, channels] = x.shape;
    const width = w.shape[1];
    const pad = state ? f32(state) : ops.zeros(x.backend, [batch, width - 1, channels]);
    const xp = width > 1 ? ops.concat([pad, x], 1) : x;
    let y: Tensor | null = null;
    for (let j = 0; j < width; j++) {
      const term = mul(ops.slice(xp, 1, j, j + len), ops.slice(w, 1, j, j + 1).reshape([channels]));
      y = y ? add(y, term) : term;
    }
    if (bias) y = add(y!, f32(bias).reshape([channels]));
    if (a.silu) y = ops.silu(y!);
    return [y!, ops.slice(xp, 1, len, len + width - 1)];
  },
  {
    outputs: [],
    grads: ({ inputs: [x, w, bias, state], attrs }, [g, gState]) => {
      if (!x!.backend.conv1dBackward) return null;
      const r = gradOps.conv1dCausalBackward(x!, w!, bias, like(g, x!), {
        state,
        silu: attrs.silu,
        dStateOut: gState ? like(gState, x!) : null,
      });
      return [r.dx, r.dWeight, r.dBias, r.dState];
    },
  },
);

/** Lower-triangular (incl. the diagonal) constants [L, L]: `ones` T[s][t] = 1 for s ≤ t (a cumsum by matmul) and the −∞ mask above the diagonal. */
function triangles(backend: Tensor['backend'], L: number): { cumsum: Tensor; causal: Tensor } {
  const cs = new Float32Array(L * L);
  const mask = new Float32Array(L * L);
  for (let i = 0; i < L; i++)
    for (let j = 0; j < L; j++) {
      if (i <= j) cs[i * L + j] = 1;
      if (j > i) mask[i * L + j] = Number.NEGATIVE_INFINITY;
    }
  return { cumsum: ops.tensor(backend, cs, [L, L]), causal: ops.tensor(backend, mask, [L, L]) };
}

/**
 * [x, dt, A, B, C, D, state]: the SSD scan in its quadratic (masked-attention) form over the whole sequence,
 * with cum_t = Σ_{s≤t} dt_s·A: y_t = Σ_{s≤t} e^{cum_t − cum_s}(C_t·B_s) dt_s x_s + e^{cum_t} C_t·state + D x_t,
 * final state = Σ_s e^{cum_L − cum_s} dt_s x_s ⊗ B_s + e^{cum_L} state.
 */
registerComposite<{ chunkSize: number }>(
  'ssdScan',
  ([x0, dt0, A, B0, C0, D, s0]) => {
    const [b, L, h, p] = x0!.shape;
    const [, , g, n] = B0!.shape;
    const bh = b * h;
    const byHead = (t: Tensor, dim: number) =>
      ops.permute(repeatHeads(f32(t), h / g), [0, 2, 1, 3]).reshape([bh, L, dim]);
    const x4 = ops.permute(f32(x0!), [0, 2, 1, 3]); // [b, h, L, p]
    const xh = x4.reshape([bh, L, p]);
    const dt = ops.permute(dt0!, [0, 2, 1]).reshape([bh, L]);
    const Bh = byHead(B0!, n);
    const Ch = byHead(C0!, n);
    const { cumsum, causal } = triangles(x0!.backend, L);
    const dA = mul(ops.permute(dt0!, [0, 2, 1]), A!.reshape([1, h, 1])).reshape([bh, L]);
    const cum = ops.matmul(dA, cumsum); // [bh, L]
    const decay = ops.exp(add(sub(cum.reshape([bh, L, 1]), cum.reshape([bh, 1, L])), causal));
    const M = mul(mul(decay, ops.matmul(Ch, Bh, { transB: true })), dt.reshape([bh, 1, L]));
    let y = ops.matmul(M, xh);
    const cumLast = ops.slice(cum, 1, L - 1, L); // [bh, 1]
    let state = ops.matmul(mul(xh, mul(ops.exp(sub(cumLast, cum)), dt).reshape([bh, L, 1])), Bh, {
      transA: true,
    });
    if (s0) {
      const init = f32(s0).reshape([bh, p, n]);
      y = add(y, mul(ops.exp(cum).reshape([bh, L, 1]), ops.matmul(Ch, init, { transB: true })));
      state = add(state, mul(ops.exp(cumLast).reshape([bh, 1, 1]), init));
    }
    let y4 = y.reshape([b, h, L, p]);
    if (D) y4 = add(y4, mul(x4, f32(D).reshape([1, h, 1, 1])));
    return [ops.permute(y4, [0, 2, 1, 3]), state.reshape([b, h, p, n])];
  },
  {
    outputs: [],
    grads: ({ inputs: [x, dt, A, B, C, D, state], attrs }, [g, gState]) => {
      if (!x!.backend.ssdScanBackward) return null;
      const r = gradOps.ssdScanBackward(
        { x: x!, dt: dt!, A: A!, B: B!, C: C!, D, state },
        like(g, x!),
        gState,
        attrs.chunkSize,
      );
      return [r.dx, r.ddt, r.dA, r.dB, r.dC, r.dD, r.dState];
    },
  },
);
