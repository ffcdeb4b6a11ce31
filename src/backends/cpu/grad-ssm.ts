import type { Conv1dDesc, SsdDesc, SsdGrads, SsdTensors } from '../../runtime/backend.js';
import type { Tensor } from '../../runtime/tensor.js';
import { type Gemm, gemm } from './gemm.js';
import { fastOps } from './kernels.js';
import { sharedF32, sharedF32Of, sharedF32Out, writeSummed } from './memory.js';
import { parallelFor } from './pool.js';
import { chunkDecays, type SsdOperands, ssdOperands } from './ssm.js';

export interface SsdGradArgs extends SsdOperands {
  dy: Float32Array;
  dStateOut: Float32Array | null;
  dx: Float32Array;
  ddt: Float32Array;
  dB: Float32Array;
  dC: Float32Array;
  /** [batch, heads]: each pair's dA and dD, added over the batch at the end. */
  dA: Float32Array;
  dD: Float32Array;
  dState: Float32Array | null;
}

const PARALLEL_WORK = 1 << 20;

/**
 * Gradients of the chunked SSD scan (ssm.ts), chunk by chunk in reverse. Inside a chunk, with a_t the inclusive
 * cumulative sum of dt·A, E[t, s] = exp(a_t − a_s), L[t, s] = (C_t·B_s)·E[t, s]·dt_s (s ≤ t), S₀ the state
 * entering the chunk and w_s = exp(a_last − a_s)·dt_s:
 *   y_t = Σ_s L[t, s]·x_s + exp(a_t)·S₀·C_t + D·x_t,   S_end = exp(a_last)·S₀ + Σ_s w_s·x_s ⊗ B_s.
 * With G = dY and dS_end the gradient of the state leaving the chunk:
 *   dL = G·Xᵀ;  dX = Lᵀ·G + diag(w)·B·dS_endᵀ + D·G;  d(CB) = dL ∘ E·dt_s → dC += d(CB)·B, dB += d(CB)ᵀ·C;
 *   dC += diag(exp a)·G·S₀;  dB += diag(w)·X·dS_end;  dS₀ = exp(a_last)·dS_end + (diag(exp a)·G)ᵀ·C,
 * and the decays' gradients da_t (through L, exp(a_t) and w) reach dt and A through the cumulative sum:
 * ddt_u += A·Σ_{t≥u} da_t, dA += Σ_u dt_u·Σ_{t≥u} da_t. The chunk-entry states are recomputed forward first.
 * f32 products, decays and their sums in f64. Parallel over (batch, group), the owners of dB/dC rows; the fast
 * kernels run it in C (ls_ssd_grad_ in native/cpu/ops.inc), this TypeScript task is their reference.
 */
export function ssdScanBackward(
  g: SsdGrads,
  dy: Tensor,
  dStateOut: Tensor | null,
  i: SsdTensors,
  d: SsdDesc,
): void {
  const outs = [g.dx, g.ddt, g.dB, g.dC].map(sharedF32Out);
  const dState = g.dState ? sharedF32Out(g.dState) : null;
  const args: SsdGradArgs = {
    ...ssdOperands(i, d),
    dy: sharedF32Of(dy),
    dStateOut: dStateOut ? sharedF32Of(dStateOut) : null,
    dx: outs[0].data,
    ddt: outs[1].data,
    dB: outs[2].data,
    dC: outs[3].data,
    dA: sharedF32(d.batch * d.heads),
    dD: sharedF32(d.batch * d.heads),
    dState: dState ? dState.data : null,
  };
  const units = d.batch * d.groups;
  const work = d.batch * d.len * d.heads * d.headDim * (d.dState + Math.min(d.chunkSize, d.len));
  if (work < PARALLEL_WORK) ssdBackwardTask(args, 0, units);
  else parallelFor('ssdBackward', args, units, 1, ssdBackwardTask);
  for (const o of outs) o.commit();
  dState?.commit();
  writeSummed(g.dA, args.dA, d.heads);
  if (g.dD) writeSummed(g.dD, args.dD, d.heads);
}

// Per-thread scratch, grown on demand: the state entering each chunk ([chunks + 1][P][N]); CB, L, dL, d(CB)
// ([T][T] each); Z, W2 ([T][N]), M and a [T][P] operand; dS_end and dS₀ ([P][N]); the chunk's a, dt, exp(a),
// exp(−a), da and ddt (f64, [T]).
let states = new Float32Array(0);
let mats = new Float32Array(0);
let rows = new Float32Array(0);
let dS = new Float32Array(0);
let decay = new Float64Array(0);
/** The head's dA and dD, summed over its chunks. */
const headSums = new Float64Array(2);

const product = (
  g: Partial<Gemm> & Pick<Gemm, 'a' | 'b' | 'c' | 'm' | 'n' | 'k' | 'aRow' | 'aCol' | 'bRow' | 'bCol'>,
) => gemm({ aOff: 0, bOff: 0, cOff: 0, ldc: g.n, alpha: 1, bias: null, biasOff: 0, accumulate: false, ...g });

/**
 * The (batch, group) pairs [lo, hi): every head of the group, each over its chunks in reverse. (The work per
 * chunk is in small functions, called once per head and chunk, so the JIT optimises them within a first call.)
 */
export function ssdBackwardTask(a: SsdGradArgs, lo: number, hi: number): void {
  const fast = fastOps();
  if (fast) {
    fast.ssdGrad(a, lo, hi);
    return;
  }
  const { len, heads: H, headDim: P, groups: G, dState: N, chunkSize } = a.desc;
  const T0 = Math.max(1, Math.min(chunkSize, len));
  const chunks = Math.ceil(len / T0);
  const PN = P * N;
  if (states.length < (chunks + 1) * PN) states = new Float32Array((chunks + 1) * PN);
  if (mats.length < 4 * T0 * T0) mats = new Float32Array(4 * T0 * T0);
  if (rows.length < T0 * (2 * N + 2 * P)) rows = new Float32Array(T0 * (2 * N + 2 * P));
  if (dS.length < 2 * PN) dS = new Float32Array(2 * PN);
  if (decay.length < 6 * T0) decay = new Float64Array(6 * T0);
  for (let u = lo; u < hi; u++) {
    const b = Math.floor(u / G);
    const grp = u % G;
    // The pair's rows of dx, dB and dC, which the chunks add into.
    for (let t = 0; t < len; t++) {
      const x0 = ((b * len + t) * H + grp * (H / G)) * P;
      a.dx.fill(0, x0, x0 + (H / G) * P);
      const bc = ((b * len + t) * G + grp) * N;
      a.dB.fill(0, bc, bc + N);
      a.dC.fill(0, bc, bc + N);
    }
    for (let h = grp * (H / G); h < (grp + 1) * (H / G); h++) {
      const sBase = (b * H + h) * PN;
      const at = (c: number): Chunk => {
        const t0 = c * T0;
        const T = Math.min(T0, len - t0);
        const safe = chunkDecays(a.dt, a.A[h], (b * len + t0) * H + h, H, T, ...decayViews(T0));
        return {
          b,
          h,
          grp,
          t0,
          T,
          safe,
          xo: ((b * len + t0) * H + h) * P,
          bc: ((b * len + t0) * G + grp) * N,
        };
      };
      states.fill(0, 0, PN);
      if (a.s0) states.set(a.s0.subarray(sBase, sBase + PN));
      for (let c = 0; c < chunks - 1; c++) advanceState(a, at(c), c, T0);
      const dSend = dS.subarray(0, PN);
      if (a.dStateOut) dSend.set(a.dStateOut.subarray(sBase, sBase + PN));
      else dSend.fill(0);
      headSums.fill(0);
      for (let c = chunks - 1; c >= 0; c--) chunkBackward(a, at(c), c, T0);
      [a.dA[b * H + h], a.dD[b * H + h]] = headSums;
      if (a.dState) a.dState.set(dSend, sBase);
    }
  }
}

/** One head's chunk: its batch, head, group, first token and length, and where its rows start in x and B/C. */
interface Chunk {
  b: number;
  h: number;
  grp: number;
  t0: number;
  T: number;
  /** Whether exp(a_t − a_s) = exp(a_t)·exp(−a_s) (chunkDecays). */
  safe: boolean;
  /** x_t / dy_t rows of this head (stride H·P), B_t / C_t rows of this group (stride G·N). */
  xo: number;
  bc: number;
}

/** The f64 views a, dt, exp(a), exp(−a) of the decay scratch. */
const decayViews = (T0: number): [Float64Array, Float64Array, Float64Array, Float64Array] => [
  decay.subarray(0, T0),
  decay.subarray(T0, 2 * T0),
  decay.subarray(2 * T0, 3 * T0),
  decay.subarray(3 * T0, 4 * T0),
];

/** The state entering chunk c + 1: S ← exp(a_last)·S + (w ∘ X)ᵀ·B (the chunk's decays already filled). */
function advanceState(a: SsdGradArgs, chunk: Chunk, c: number, T0: number): void {
  const { heads: H, headDim: P, groups: G, dState: N } = a.desc;
  const { T, xo, bc } = chunk;
  const [cs, dts] = decayViews(T0);
  const PN = P * N;
  const last = cs[T - 1];
  const total = Math.exp(last);
  for (let i = 0; i < PN; i++) states[(c + 1) * PN + i] = total * states[c * PN + i];
  for (let s = 0; s < T; s++) {
    const w = Math.exp(Math.min(last - cs[s], 0)) * dts[s];
    for (let p = 0; p < P; p++) rows[s * P + p] = w * a.x[xo + s * H * P + p];
  }
  product({
    a: rows,
    aRow: 1,
    aCol: P,
    b: a.B,
    bOff: bc,
    bRow: G * N,
    bCol: 1,
    c: states,
    cOff: (c + 1) * PN,
    m: P,
    n: N,
    k: T,
    accumulate: true,
  });
}

/** Chunk c's gradients (see ssdScanBackward), with dS_end in dS; leaves dS₀ there for chunk c − 1. */
function chunkBackward(a: SsdGradArgs, chunk: Chunk, c: number, T0: number): void {
  const { len, heads: H, headDim: P, groups: G, dState: N } = a.desc;
  const { x, A, B, C, D, dy } = a;
  const { b, h, t0, T, safe, xo, bc } = chunk;
  const PN = P * N;
  const [cs, dts, ecs, emcs] = decayViews(T0);
  const da = decay.subarray(4 * T0, 4 * T0 + T).fill(0);
  const gdt = decay.subarray(5 * T0, 5 * T0 + T).fill(0);
  const [CB, Lm, dL, dCB] = [0, 1, 2, 3].map((i) => mats.subarray(i * T * T, (i + 1) * T * T));
  const Z = rows.subarray(0, T * N);
  const W2 = rows.subarray(T * N, 2 * T * N);
  const M = rows.subarray(2 * T * N, T * (2 * N + P));
  const tmp = rows.subarray(T * (2 * N + P), T * (2 * N + 2 * P));
  const dSend = dS.subarray(0, PN);
  const dS0 = dS.subarray(PN, 2 * PN);
  const S0 = states.subarray(c * PN, (c + 1) * PN);
  // CB = C·Bᵀ and dL = G·Xᵀ
  product({
    a: C,
    aOff: bc,
    aRow: G * N,
    aCol: 1,
    b: B,
    bOff: bc,
    bRow: 1,
    bCol: G * N,
    c: CB,
    m: T,
    n: T,
    k: N,
  });
  product({
    a: dy,
    aOff: xo,
    aRow: H * P,
    aCol: 1,
    b: x,
    bOff: xo,
    bRow: 1,
    bCol: H * P,
    c: dL,
    m: T,
    n: T,
    k: P,
  });
  for (let t = 0; t < T; t++) {
    const row = t * T;
    for (let s = 0; s <= t; s++) {
      const e = safe ? ecs[t] * emcs[s] : Math.exp(Math.min(cs[t] - cs[s], 0));
      const q = dL[row + s] * CB[row + s] * e; // ∂/∂dt_s of L[t, s]'s explicit factor
      const r = q * dts[s]; // dL ∘ L: ∂/∂a_t, −∂/∂a_s
      gdt[s] += q;
      da[t] += r;
      da[s] -= r;
      Lm[row + s] = CB[row + s] * e * dts[s];
      dCB[row + s] = dL[row + s] * e * dts[s];
    }
    Lm.fill(0, row + t + 1, row + T);
    dCB.fill(0, row + t + 1, row + T);
  }
  // dX += Lᵀ·G; d(CB) into dC and dB
  product({
    a: Lm,
    aRow: 1,
    aCol: T,
    b: dy,
    bOff: xo,
    bRow: H * P,
    bCol: 1,
    c: a.dx,
    cOff: xo,
    ldc: H * P,
    m: T,
    n: P,
    k: T,
    accumulate: true,
  });
  for (const [aRow, aCol, factor, into] of [
    [T, 1, B, a.dC],
    [1, T, C, a.dB],
  ] as const)
    product({
      a: dCB,
      aRow,
      aCol,
      b: factor,
      bOff: bc,
      bRow: G * N,
      bCol: 1,
      c: into,
      cOff: bc,
      ldc: G * N,
      m: T,
      n: N,
      k: T,
      accumulate: true,
    });
  // The entering state's term: Z = G·S₀, dC_t += exp(a_t)·Z_t, da_t += exp(a_t)·Z_t·C_t
  product({ a: dy, aOff: xo, aRow: H * P, aCol: 1, b: S0, bRow: N, bCol: 1, c: Z, m: T, n: N, k: P });
  for (let t = 0; t < T; t++) {
    const co = bc + t * G * N;
    let zc = 0;
    for (let n = 0; n < N; n++) {
      zc += Z[t * N + n] * C[co + n];
      a.dC[co + n] += ecs[t] * Z[t * N + n];
    }
    da[t] += ecs[t] * zc;
  }
  // dS₀ = exp(a_last)·dS_end + (diag(exp a)·G)ᵀ·C, da_last += exp(a_last)·⟨dS_end, S₀⟩
  const last = cs[T - 1];
  const total = Math.exp(last);
  let dsS0 = 0;
  for (let k = 0; k < PN; k++) {
    dS0[k] = total * dSend[k];
    dsS0 += dSend[k] * S0[k];
  }
  da[T - 1] += total * dsS0;
  for (let t = 0; t < T; t++) for (let p = 0; p < P; p++) tmp[t * P + p] = ecs[t] * dy[xo + t * H * P + p];
  product({
    a: tmp,
    aRow: 1,
    aCol: P,
    b: C,
    bOff: bc,
    bRow: G * N,
    bCol: 1,
    c: dS0,
    m: P,
    n: N,
    k: T,
    accumulate: true,
  });
  // The leaving state's term: M = B·dS_endᵀ, W2 = X·dS_end; dx_s += w_s·M_s, dB_s += w_s·W2_s, dw_s = x_s·M_s
  product({ a: B, aOff: bc, aRow: G * N, aCol: 1, b: dSend, bRow: 1, bCol: N, c: M, m: T, n: P, k: N });
  product({
    a: x,
    aOff: xo,
    aRow: H * P,
    aCol: 1,
    b: dSend,
    bRow: N,
    bCol: 1,
    c: W2,
    m: T,
    n: N,
    k: P,
  });
  for (let s = 0; s < T; s++) {
    const ew = Math.exp(Math.min(last - cs[s], 0));
    const w = ew * dts[s];
    const xs = xo + s * H * P;
    let dw = 0;
    for (let p = 0; p < P; p++) {
      dw += x[xs + p] * M[s * P + p];
      a.dx[xs + p] += w * M[s * P + p];
    }
    const bo = bc + s * G * N;
    for (let n = 0; n < N; n++) a.dB[bo + n] += w * W2[s * N + n];
    gdt[s] += dw * ew;
    da[T - 1] += dw * w;
    da[s] -= dw * w;
  }
  if (D) {
    let dd = 0;
    for (let t = 0; t < T; t++)
      for (let p = 0; p < P; p++) {
        const k = xo + t * H * P + p;
        dd += dy[k] * x[k];
        a.dx[k] += D[h] * dy[k];
      }
    headSums[1] += dd;
  }
  // a_t = A·Σ_{u≤t} dt_u
  let rc = 0;
  let dA = 0;
  for (let t = T - 1; t >= 0; t--) {
    rc += da[t];
    a.ddt[(b * len + t0 + t) * H + h] = gdt[t] + A[h] * rc;
    dA += dts[t] * rc;
  }
  headSums[0] += dA;
  dS.copyWithin(0, PN, 2 * PN);
}

export interface ConvGradArgs {
  x: Float32Array;
  w: Float32Array;
  bias: Float32Array | null;
  state: Float32Array | null;
  dy: Float32Array;
  dStateOut: Float32Array | null;
  dx: Float32Array;
  dState: Float32Array | null;
  /** [batch, channels, width] and [batch, channels]: each batch row's sums, added over the batch at the end. */
  dw: Float32Array;
  db: Float32Array;
  desc: Conv1dDesc;
}

/**
 * Gradients of the causal depthwise conv1d. With P = [state; x] per batch ([width−1+len, C]) and
 * pre[t, c] = bias[c] + Σ_j w[c, j]·P[t+j, c], y = pre (or silu(pre)), stateOut = P's last width−1 rows:
 *   dpre = dy (· silu'(pre)),  dw[c, j] = Σ_t dpre[t, c]·P[t+j, c],  dbias = Σ_t dpre,
 *   dP[t+j, c] += w[c, j]·dpre[t, c] (+ dStateOut on the last rows); dx and dState are dP's parts.
 * Parallel over the batch; the fast kernels run it in C (ls_conv1d_grad_, widths ≤ 16), this TypeScript task
 * (sums in f64) is their reference.
 */
export function conv1dBackward(
  dx: Tensor,
  dWeight: Tensor,
  dBias: Tensor | null,
  dState: Tensor | null,
  dy: Tensor,
  dStateOut: Tensor | null,
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null,
  state: Tensor | null,
  d: Conv1dDesc,
): void {
  const { batch, len, channels: C, width: W } = d;
  const gx = sharedF32Out(dx);
  const gs = dState ? sharedF32Out(dState) : null;
  const args: ConvGradArgs = {
    x: sharedF32Of(x),
    w: sharedF32Of(weight),
    bias: bias ? sharedF32Of(bias) : null,
    state: state ? sharedF32Of(state) : null,
    dy: sharedF32Of(dy),
    dStateOut: dStateOut ? sharedF32Of(dStateOut) : null,
    dx: gx.data,
    dState: gs ? gs.data : null,
    dw: sharedF32(batch * C * W),
    db: sharedF32(batch * C),
    desc: d,
  };
  if (batch * len * C * W < PARALLEL_WORK) conv1dBackwardTask(args, 0, batch);
  else parallelFor('conv1dBackward', args, batch, 1, conv1dBackwardTask);
  gx.commit();
  gs?.commit();
  writeSummed(dWeight, args.dw, C * W);
  if (dBias) writeSummed(dBias, args.db, C);
}

// Per-thread scratch: [state; x] of a batch row and its gradient dP ([width−1+len, C]); per channel pre, dpre,
// the bias gradient; the weights and their gradient as [width][C].
let convScratch = new Float64Array(0);
let padded = new Float32Array(0);
let weightT = new Float32Array(0);

/** Batch rows [lo, hi). */
export function conv1dBackwardTask(a: ConvGradArgs, lo: number, hi: number): void {
  const fast = a.desc.width <= 16 ? fastOps() : null;
  if (fast) {
    fast.conv1dGrad(a, lo, hi);
    return;
  }
  const { len, channels: C, width: W } = a.desc;
  const past = W - 1;
  const rowsP = (len + past) * C;
  const need = rowsP + (3 + W) * C;
  if (convScratch.length < need) convScratch = new Float64Array(need);
  if (padded.length < rowsP) padded = new Float32Array(rowsP);
  if (weightT.length < W * C) weightT = new Float32Array(W * C);
  const dP = convScratch.subarray(0, rowsP);
  const dbias = convScratch.subarray(rowsP + 2 * C, rowsP + 3 * C);
  const dwT = convScratch.subarray(rowsP + 3 * C, need);
  for (let c = 0; c < C; c++) for (let j = 0; j < W; j++) weightT[j * C + c] = a.w[c * W + j];
  for (let b = lo; b < hi; b++) {
    if (a.state) padded.set(a.state.subarray(b * past * C, (b + 1) * past * C));
    else padded.fill(0, 0, past * C);
    padded.set(a.x.subarray(b * len * C, (b + 1) * len * C), past * C);
    dP.fill(0);
    dwT.fill(0);
    dbias.fill(0);
    if (a.dStateOut) dP.set(a.dStateOut.subarray(b * past * C, (b + 1) * past * C), len * C);
    for (let t = 0; t < len; t++) convStep(a, b, t);
    for (let c = 0; c < C; c++) {
      a.db[b * C + c] = dbias[c];
      for (let j = 0; j < W; j++) a.dw[(b * C + c) * W + j] = dwT[j * C + c];
    }
    a.dx.set(dP.subarray(past * C), b * len * C);
    if (a.dState) a.dState.set(dP.subarray(0, past * C), b * past * C);
  }
}

/** Output step t of batch row b: its pre-activation gradient, added into dP, the weight and bias gradients. */
function convStep(a: ConvGradArgs, b: number, t: number): void {
  const { len, channels: C, width: W, silu } = a.desc;
  const rowsP = (len + W - 1) * C;
  const dP = convScratch.subarray(0, rowsP);
  const pre = convScratch.subarray(rowsP, rowsP + C);
  const dpre = convScratch.subarray(rowsP + C, rowsP + 2 * C);
  const dbias = convScratch.subarray(rowsP + 2 * C, rowsP + 3 * C);
  const dwT = convScratch.subarray(rowsP + 3 * C, rowsP + (3 + W) * C);
  const { bias, dy } = a;
  const [P, wT] = [padded, weightT];
  const o = (b * len + t) * C;
  if (silu) {
    for (let c = 0; c < C; c++) pre[c] = bias ? bias[c] : 0;
    for (let j = 0; j < W; j++) for (let c = 0; c < C; c++) pre[c] += wT[j * C + c] * P[(t + j) * C + c];
    for (let c = 0; c < C; c++) {
      const s = 1 / (1 + Math.exp(-pre[c]));
      dpre[c] = dy[o + c] * s * (1 + pre[c] * (1 - s));
    }
  } else for (let c = 0; c < C; c++) dpre[c] = dy[o + c];
  for (let c = 0; c < C; c++) dbias[c] += dpre[c];
  for (let j = 0; j < W; j++) {
    const q = (t + j) * C;
    for (let c = 0; c < C; c++) {
      dP[q + c] += wT[j * C + c] * dpre[c];
      dwT[j * C + c] += dpre[c] * P[q + c];
    }
  }
}
