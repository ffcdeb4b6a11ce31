import type { Conv1dDesc, SsdDesc, SsdGrads, SsdTensors } from '../../runtime/backend.js';
import type { Tensor } from '../../runtime/tensor.js';
import { type Gemm, gemm } from './gemm.js';
import { sharedF32Of, sharedF32Out, sharedPartials, writeSummed } from './memory.js';
import { parallelFor } from './pool.js';
import { chunkDecays, type SsdOperands, ssdOperands } from './ssm.js';

export interface SsdGradArgs extends SsdOperands {
  dy: Float32Array;
  dStateOut: Float32Array | null;
  dx: Float32Array;
  ddt: Float32Array;
  dB: Float32Array;
  dC: Float32Array;
  /** [batch, heads] partial sums of dA and dD, added over the batch at the end. */
  dA: Float64Array;
  dD: Float64Array;
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
 * f32 products on the fast GEMM kernels, decays and their sums in f64. Parallel over (batch, group), the
 * owners of dB/dC rows.
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
    dx: outs[0].data.fill(0),
    ddt: outs[1].data,
    dB: outs[2].data.fill(0),
    dC: outs[3].data.fill(0),
    dA: sharedPartials(d.batch, d.heads),
    dD: sharedPartials(d.batch, d.heads),
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

// Per-thread scratch, grown on demand.
let states = new Float32Array(0); // the state entering each chunk, [chunks + 1][P][N]
let mats = new Float32Array(0); // CB, L, dL, d(CB): [4][T][T]
let rows = new Float32Array(0); // Z, M, W2 ([T][N], [T][P], [T][N]) and a [T][P] operand
let dS = new Float32Array(0); // dS_end, dS₀: [2][P][N]
let decay = new Float64Array(0); // a, dt, exp(a), exp(−a), da, ddt: [6][T]

function grow(T: number, P: number, N: number, chunks: number): void {
  if (states.length < (chunks + 1) * P * N) states = new Float32Array((chunks + 1) * P * N);
  if (mats.length < 4 * T * T) mats = new Float32Array(4 * T * T);
  if (rows.length < T * (2 * N + 2 * P)) rows = new Float32Array(T * (2 * N + 2 * P));
  if (dS.length < 2 * P * N) dS = new Float32Array(2 * P * N);
  if (decay.length < 6 * T) decay = new Float64Array(6 * T);
}

const product = (
  g: Partial<Gemm> & Pick<Gemm, 'a' | 'b' | 'c' | 'm' | 'n' | 'k' | 'aRow' | 'aCol' | 'bRow' | 'bCol'>,
) => gemm({ aOff: 0, bOff: 0, cOff: 0, ldc: g.n, alpha: 1, bias: null, biasOff: 0, accumulate: false, ...g });

/** The (batch, group) pairs [lo, hi): every head of the group, each over its chunks in reverse. */
export function ssdBackwardTask(a: SsdGradArgs, lo: number, hi: number): void {
  const { len, heads: H, headDim: P, groups: G, dState: N, chunkSize } = a.desc;
  const { x, dt, A, B, C, D, dy } = a;
  const perGroup = H / G;
  const T0 = Math.max(1, Math.min(chunkSize, len));
  const chunks = Math.ceil(len / T0);
  grow(T0, P, N, chunks);
  const PN = P * N;
  const [CB, Lm, dL, dCB] = [0, 1, 2, 3].map((k) => mats.subarray(k * T0 * T0, (k + 1) * T0 * T0));
  const Z = rows.subarray(0, T0 * N);
  const M = rows.subarray(T0 * N, T0 * (N + P));
  const W2 = rows.subarray(T0 * (N + P), T0 * (2 * N + P));
  const tmp = rows.subarray(T0 * (2 * N + P), T0 * (2 * N + 2 * P));
  const dSend = dS.subarray(0, PN);
  const dS0 = dS.subarray(PN, 2 * PN);
  const [cs, dts, ecs, emcs, da, gdt] = [0, 1, 2, 3, 4, 5].map((k) => decay.subarray(k * T0, (k + 1) * T0));
  for (let u = lo; u < hi; u++) {
    const b = Math.floor(u / G);
    const grp = u % G;
    for (let h = grp * perGroup; h < (grp + 1) * perGroup; h++) {
      const sBase = (b * H + h) * PN;
      const decays = (t0: number, T: number) =>
        chunkDecays(dt, A[h], (b * len + t0) * H + h, H, T, cs, dts, ecs, emcs);
      // The state entering each chunk: S ← exp(a_last)·S + (w ∘ X)ᵀ·B.
      states.fill(0, 0, PN);
      if (a.s0) states.set(a.s0.subarray(sBase, sBase + PN));
      for (let c = 0; c < chunks - 1; c++) {
        const t0 = c * T0;
        const T = Math.min(T0, len - t0);
        decays(t0, T);
        const last = cs[T - 1];
        const total = Math.exp(last);
        for (let k = 0; k < PN; k++) states[(c + 1) * PN + k] = total * states[c * PN + k];
        for (let s = 0; s < T; s++) {
          const w = Math.exp(Math.min(last - cs[s], 0)) * dts[s];
          const xo = ((b * len + t0 + s) * H + h) * P;
          for (let p = 0; p < P; p++) tmp[s * P + p] = w * x[xo + p];
        }
        product({
          a: tmp,
          aRow: 1,
          aCol: P,
          b: B,
          bOff: ((b * len + t0) * G + grp) * N,
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
      if (a.dStateOut) dSend.set(a.dStateOut.subarray(sBase, sBase + PN));
      else dSend.fill(0);
      for (let c = chunks - 1; c >= 0; c--) {
        const t0 = c * T0;
        const T = Math.min(T0, len - t0);
        const safe = decays(t0, T);
        const S0 = states.subarray(c * PN, (c + 1) * PN);
        const xo = ((b * len + t0) * H + h) * P; // x_t / dy_t rows of this head, stride H·P
        const bc = ((b * len + t0) * G + grp) * N; // B_t / C_t rows of this group, stride G·N
        const X = { b: x, bOff: xo };
        da.fill(0, 0, T);
        gdt.fill(0, 0, T);
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
          ...X,
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
        for (let t = 0; t < T; t++)
          for (let p = 0; p < P; p++) tmp[t * P + p] = ecs[t] * dy[xo + t * H * P + p];
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
          a.dD[b * H + h] += dd;
        }
        // a_t = A·Σ_{u≤t} dt_u
        let rc = 0;
        let dA = 0;
        for (let t = T - 1; t >= 0; t--) {
          rc += da[t];
          a.ddt[(b * len + t0 + t) * H + h] = gdt[t] + A[h] * rc;
          dA += dts[t] * rc;
        }
        a.dA[b * H + h] += dA;
        dSend.set(dS0);
      }
      if (a.dState) a.dState.set(dSend, sBase);
    }
  }
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
  /** [batch, channels, width] and [batch, channels] partial sums, added over the batch at the end. */
  dw: Float64Array;
  db: Float64Array;
  desc: Conv1dDesc;
}

/**
 * Gradients of the causal depthwise conv1d. With P = [state; x] per batch ([width−1+len, C]) and
 * pre[t, c] = bias[c] + Σ_j w[c, j]·P[t+j, c], y = pre (or silu(pre)), stateOut = P's last width−1 rows:
 *   dpre = dy (· silu'(pre)),  dw[c, j] = Σ_t dpre[t, c]·P[t+j, c],  dbias = Σ_t dpre,
 *   dP[t+j, c] += w[c, j]·dpre[t, c] (+ dStateOut on the last rows); dx and dState are dP's parts.
 * Sums in f64; parallel over the batch.
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
    dw: sharedPartials(batch, C * W),
    db: sharedPartials(batch, C),
    desc: d,
  };
  if (batch * len * C * W < PARALLEL_WORK) conv1dBackwardTask(args, 0, batch);
  else parallelFor('conv1dBackward', args, batch, 1, conv1dBackwardTask);
  gx.commit();
  gs?.commit();
  writeSummed(dWeight, args.dw, C * W);
  if (dBias) writeSummed(dBias, args.db, C);
}

// Per-thread scratch: dP [width−1+len, C], and per channel: pre, dpre, the weights and their gradient as [width][C].
let convScratch = new Float64Array(0);
let weightT = new Float32Array(0);

/** Batch rows [lo, hi). */
export function conv1dBackwardTask(a: ConvGradArgs, lo: number, hi: number): void {
  const { len, channels: C, width: W, silu } = a.desc;
  const past = W - 1;
  const need = (len + past + 2 + 2 * W) * C;
  if (convScratch.length < need) convScratch = new Float64Array(need);
  if (weightT.length < W * C) weightT = new Float32Array(W * C);
  const dP = convScratch.subarray(0, (len + past) * C);
  const pre = convScratch.subarray((len + past) * C, (len + past + 1) * C);
  const dpre = convScratch.subarray((len + past + 1) * C, (len + past + 2) * C);
  const dwT = convScratch.subarray((len + past + 2) * C, (len + past + 2 + W) * C);
  const dbias = convScratch.subarray((len + past + 2 + W) * C, need);
  const { x, w, bias, state, dy } = a;
  for (let c = 0; c < C; c++) for (let j = 0; j < W; j++) weightT[j * C + c] = w[c * W + j];
  for (let b = lo; b < hi; b++) {
    /** Row q of [state; x]: its array and offset, or null for a zero row (no state). */
    const rowOf = (q: number): [Float32Array, number] | null =>
      q >= past ? [x, (b * len + q - past) * C] : state ? [state, (b * past + q) * C] : null;
    dP.fill(0);
    dwT.fill(0);
    dbias.fill(0);
    if (a.dStateOut) for (let k = 0; k < past * C; k++) dP[len * C + k] = a.dStateOut[b * past * C + k];
    for (let t = 0; t < len; t++) {
      const o = (b * len + t) * C;
      if (silu) {
        for (let c = 0; c < C; c++) pre[c] = bias ? bias[c] : 0;
        for (let j = 0; j < W; j++) {
          const row = rowOf(t + j);
          if (!row) continue;
          const [P, at] = row;
          for (let c = 0; c < C; c++) pre[c] += weightT[j * C + c] * P[at + c];
        }
        for (let c = 0; c < C; c++) {
          const s = 1 / (1 + Math.exp(-pre[c]));
          dpre[c] = dy[o + c] * s * (1 + pre[c] * (1 - s));
        }
      } else for (let c = 0; c < C; c++) dpre[c] = dy[o + c];
      for (let c = 0; c < C; c++) dbias[c] += dpre[c];
      for (let j = 0; j < W; j++) {
        const q = (t + j) * C;
        const wj = j * C;
        for (let c = 0; c < C; c++) dP[q + c] += weightT[wj + c] * dpre[c];
        const row = rowOf(t + j);
        if (!row) continue;
        const [P, at] = row;
        for (let c = 0; c < C; c++) dwT[wj + c] += dpre[c] * P[at + c];
      }
    }
    for (let c = 0; c < C; c++) {
      a.db[b * C + c] = dbias[c];
      for (let j = 0; j < W; j++) a.dw[(b * C + c) * W + j] = dwT[j * C + c];
    }
    for (let k = 0; k < len * C; k++) a.dx[b * len * C + k] = dP[past * C + k];
    if (a.dState) for (let k = 0; k < past * C; k++) a.dState[b * past * C + k] = dP[k];
  }
}
