import {
  type Conv1dDesc,
  type MambaStepRowsDesc,
  type SsdDesc,
  type SsdTensors,
  UNARY_CODE,
} from '../../runtime/backend.js';
import { fromF32, toF32 } from '../../runtime/dtype.js';
import type { Tensor } from '../../runtime/tensor.js';
import { unaryValues } from './elementwise.js';
import { type Gemm, gemm } from './gemm.js';
import { fastOps } from './kernels.js';
import { f32Of, f32Out, rawOf, sharedF32Of, sharedF32Out } from './memory.js';
import { parallelFor } from './pool.js';

const silu = (v: number) => v / (1 + Math.exp(-v));

/** Causal depthwise conv1d over [batch, len, channels] with the previous width−1 inputs in `state`. */
export function conv1d(
  y: Tensor,
  stateOut: Tensor | null,
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null,
  state: Tensor | null,
  d: Conv1dDesc,
): void {
  const { batch, len, channels: C, width: W, silu: act } = d;
  const xv = f32Of(x);
  const sv = state ? f32Of(state) : null;
  const o = f32Out(y);
  convValues(o.data, xv, f32Of(weight), bias ? f32Of(bias) : null, sv, batch, len, C, W, act);
  o.commit();
  if (stateOut) rawOf(stateOut).set(fromF32(stateOut.dtype, convTail(xv, sv, batch, len, C, W - 1)));
}

/** conv1d's outputs (the fast kernel for widths ≤ 16, else the reference loop; a channel's value is its own). */
function convValues(
  o: Float32Array,
  xv: Float32Array,
  w: Float32Array,
  bv: Float32Array | null,
  sv: Float32Array | null,
  batch: number,
  len: number,
  C: number,
  W: number,
  act: boolean,
): void {
  const fast = W <= 16 ? fastOps() : null;
  if (fast) {
    fast.conv1d(o, xv, w, bv, sv, batch, len, C, W, act);
    return;
  }
  const past = W - 1;
  // Per batch, the input with the carried state in front: [past + len, C] (zeros when there is no state).
  const padded = new Float32Array((past + len) * C);
  const acc = new Float64Array(C);
  for (let b = 0; b < batch; b++) {
    if (sv) padded.set(sv.subarray(b * past * C, (b + 1) * past * C));
    else padded.fill(0, 0, past * C);
    padded.set(xv.subarray(b * len * C, (b + 1) * len * C), past * C);
    for (let t = 0; t < len; t++) {
      for (let c = 0; c < C; c++) acc[c] = bv ? bv[c] : 0;
      for (let j = 0; j < W; j++) {
        const row = (t + j) * C;
        for (let c = 0; c < C; c++) acc[c] += w[c * W + j] * padded[row + c];
      }
      const ob = (b * len + t) * C;
      for (let c = 0; c < C; c++) o[ob + c] = act ? silu(acc[c]) : acc[c];
    }
  }
}

/** The last `past` rows of [state; x] per batch (the conv state after x; zeros where neither reaches). */
function convTail(
  xv: Float32Array,
  sv: Float32Array | null,
  batch: number,
  len: number,
  C: number,
  past: number,
): Float32Array {
  const tail = new Float32Array(batch * past * C);
  for (let b = 0; b < batch; b++)
    for (let r = 0; r < past; r++) {
      const q = len + r; // row of [state; x]
      const at = (b * past + r) * C;
      if (q >= past) tail.set(xv.subarray((b * len + q - past) * C, (b * len + q - past + 1) * C), at);
      else if (sv) tail.set(sv.subarray((b * past + q) * C, (b * past + q + 1) * C), at);
    }
  return tail;
}

/**
 * One Mamba-2 decode step of `rows` sequences, each through its own state: per row, the conv over
 * [state; x‖B‖C] (+ bias, SiLU) rounded to x's dtype, dt = softplus(dt + dtBias) clamped to [dtMin, dtMax]
 * (each bound only when set), then the SSM update. The same kernels and roundings as conv1d, the element-wise
 * ops and ssmStep called one by one, so the result equals that path exactly.
 */
export function mambaStepRows(
  y: Tensor,
  x: Tensor,
  bc: Tensor,
  dtRaw: Tensor,
  conv: { weight: Tensor; bias: Tensor | null },
  dtBias: Tensor,
  A: Tensor,
  D: Tensor | null,
  states: readonly { conv: Tensor; ssm: Tensor }[],
  d: MambaStepRowsDesc,
): void {
  const { rows, dInner, groups: G, dState: N, heads: H, headDim: P, width: W } = d;
  const gn = G * N;
  const convDim = dInner + 2 * gn;
  const [xv, bcv, dtv] = [f32Of(x), f32Of(bc), f32Of(dtRaw)];
  const w = f32Of(conv.weight);
  const bv = conv.bias ? f32Of(conv.bias) : null;
  const [bias, Av, Dv] = [f32Of(dtBias), f32Of(A), D ? f32Of(D) : null];
  const o = f32Out(y);
  const inp = new Float32Array(convDim);
  const xbc = new Float32Array(convDim);
  const sum = new Float32Array(H);
  const dt = new Float32Array(H);
  for (let r = 0; r < rows; r++) {
    const s = states[r];
    inp.set(xv.subarray(r * dInner, (r + 1) * dInner));
    inp.set(bcv.subarray(r * 2 * gn, (r + 1) * 2 * gn), dInner);
    const sv = f32Of(s.conv);
    convValues(xbc, inp, w, bv, sv, 1, 1, convDim, W, true);
    rawOf(s.conv).set(fromF32(s.conv.dtype, convTail(inp, sv, 1, 1, convDim, W - 1)));
    // Rounded to x's dtype, as conv1d's output is.
    if (x.dtype !== 'f32') xbc.set(toF32(x.dtype, fromF32(x.dtype, xbc)));
    for (let h = 0; h < H; h++) sum[h] = dtv[r * H + h] + bias[h];
    unaryValues(UNARY_CODE.softplus, sum, dt);
    const [lo, hi] = [Math.fround(d.dtMin), Math.fround(d.dtMax)];
    for (let h = 0; h < H; h++) {
      if (d.dtMin > 0 && !(dt[h] > lo)) dt[h] = lo;
      if (d.dtMax < Number.POSITIVE_INFINITY && !(dt[h] < hi)) dt[h] = hi;
    }
    const S = f32Of(s.ssm);
    ssmUpdate(
      o.data.subarray(r * dInner, (r + 1) * dInner),
      S,
      xbc.subarray(0, dInner),
      dt,
      Av,
      xbc.subarray(dInner, dInner + gn),
      xbc.subarray(dInner + gn),
      Dv,
      { batch: 1, heads: H, headDim: P, groups: G, dState: N },
    );
    if (s.ssm.dtype !== 'f32') rawOf(s.ssm).set(fromF32(s.ssm.dtype, S));
  }
  o.commit();
}

/** The scan's operands as worker threads receive them (f32 views in shared memory). */
export interface SsdOperands {
  x: Float32Array;
  dt: Float32Array;
  A: Float32Array;
  B: Float32Array;
  C: Float32Array;
  D: Float32Array | null;
  s0: Float32Array | null;
  desc: SsdDesc;
}

export const ssdOperands = (i: SsdTensors, desc: SsdDesc): SsdOperands => ({
  x: sharedF32Of(i.x),
  dt: sharedF32Of(i.dt),
  A: sharedF32Of(i.A),
  B: sharedF32Of(i.B),
  C: sharedF32Of(i.C),
  D: i.D ? sharedF32Of(i.D) : null,
  s0: i.state ? sharedF32Of(i.state) : null,
  desc,
});

export interface SsdArgs extends SsdOperands {
  y: Float32Array;
  sOut: Float32Array | null;
}

/**
 * Chunked SSD (the mamba_ssm algorithm). With a the inclusive cumulative sum of dt·A inside a chunk:
 *   y_t = exp(a_t)·C_t·S₀ + Σ_{s≤t} (C_t·B_s)·exp(a_t − a_s)·dt_s·x_s + D·x_t,
 *   S ← exp(a_last)·S₀ + Σ_s exp(a_last − a_s)·dt_s·x_s ⊗ B_s.
 * C_t·B_s is computed once per (chunk, group) and shared by the group's heads. Parallel over (batch, head).
 */
export function ssdScan(
  y: Tensor,
  stateOut: Tensor | null,
  x: Tensor,
  dt: Tensor,
  A: Tensor,
  B: Tensor,
  C: Tensor,
  D: Tensor | null,
  state: Tensor | null,
  d: SsdDesc,
): void {
  const o = sharedF32Out(y);
  const args: SsdArgs = {
    ...ssdOperands({ x, dt, A, B, C, D, state }, d),
    y: o.data,
    sOut: stateOut ? sharedF32Of(stateOut) : null,
  };
  const units = d.batch * d.heads;
  const work = d.batch * d.len * d.heads * d.headDim * (d.dState + Math.min(d.chunkSize, d.len));
  if (work < PARALLEL_WORK) ssdTask(args, 0, units);
  else parallelFor('ssd', args, units, 1, ssdTask);
  o.commit();
}

const PARALLEL_WORK = 1 << 20;

/**
 * A chunk's decays for one head: dt_t (read with `stride` from `at`), a_t = Σ_{u≤t} dt_u·A (f64), exp(a_t) and
 * exp(−a_t). Returns whether exp(a_t − a_s) = exp(a_t)·exp(−a_s) is exact enough to use: with a non-increasing
 * and |a| < 600 it is (≤ 1, no overflow), which saves an exp per (t, s) pair.
 */
export function chunkDecays(
  dt: Float32Array,
  A: number,
  at: number,
  stride: number,
  T: number,
  a: Float64Array,
  dts: Float64Array,
  ea: Float64Array,
  ema: Float64Array,
): boolean {
  let cum = 0;
  let safe = true;
  for (let t = 0; t < T; t++) {
    dts[t] = dt[at + t * stride];
    const inc = dts[t] * A;
    cum += inc;
    a[t] = cum;
    if (inc > 0 || Math.abs(cum) >= 600) safe = false;
  }
  for (let t = 0; t < T; t++) {
    ea[t] = Math.exp(a[t]);
    ema[t] = Math.exp(-a[t]);
  }
  return safe;
}

/**
 * Runs the (batch, head) pairs [lo, hi). Per chunk of T tokens and head, with L[t, s] = (C_t·B_s)·exp(a_t − a_s)·dt_s
 * for s ≤ t (0 above the diagonal), four GEMMs on strided views:
 *   CB = C·Bᵀ (once per group),  Y = diag(exp(a))·C·Sᵀ + L·X + D·X,  S ← exp(a_last)·S + (w ∘ X)ᵀ·B
 * with w_s = exp(a_last − a_s)·dt_s. Operands are f32 so the fast GEMM kernels run them; cumulative sums stay f64.
 */
export function ssdTask(a: SsdArgs, lo: number, hi: number): void {
  const fast = fastOps();
  if (fast) {
    fast.ssd(a, lo, hi);
    return;
  }
  const { batch, len, heads: H, headDim: P, groups: G, dState: N, chunkSize } = a.desc;
  const { x, dt, A, B, C, D, y } = a;
  const perGroup = H / G;
  const Lc = Math.min(chunkSize, len);
  const CB = new Float32Array(Lc * Lc);
  const Lm = new Float32Array(Lc * Lc);
  const Cd = new Float32Array(Lc * N);
  const Xw = new Float32Array(Lc * P);
  const Yc = new Float32Array(Lc * P);
  const cs = new Float64Array(Lc);
  const dts = new Float64Array(Lc);
  const ecs = new Float64Array(Lc); // exp(a_t)
  const wdt = new Float64Array(Lc); // exp(−a_s), then exp(−a_s)·dt_s
  const step = (g: Partial<Gemm> & Pick<Gemm, 'a' | 'b' | 'c' | 'm' | 'n' | 'k'>) =>
    gemm({
      aOff: 0,
      aRow: g.k,
      aCol: 1,
      bOff: 0,
      bRow: g.n,
      bCol: 1,
      cOff: 0,
      ldc: g.n,
      alpha: 1,
      bias: null,
      biasOff: 0,
      accumulate: false,
      ...g,
    });
  for (let b = 0; b < batch; b++) {
    const h0 = Math.max(lo - b * H, 0);
    const h1 = Math.min(hi - b * H, H);
    if (h0 >= h1) continue;
    // States of this batch's heads [h0, h1): [head][P][N].
    const S = new Float32Array((h1 - h0) * P * N);
    if (a.s0) for (let i = 0; i < S.length; i++) S[i] = a.s0[(b * H + h0) * P * N + i];
    for (let t0 = 0; t0 < len; t0 += chunkSize) {
      const T = Math.min(chunkSize, len - t0);
      const row0 = b * len + t0; // global token index of the chunk's first token
      for (let g = Math.floor(h0 / perGroup); g * perGroup < h1; g++) {
        const bcOff = (row0 * G + g) * N; // B_t / C_t rows of this group, stride G·N
        step({
          a: C,
          aOff: bcOff,
          aRow: G * N,
          b: B,
          bOff: bcOff,
          bRow: 1,
          bCol: G * N,
          c: CB,
          ldc: T,
          m: T,
          n: T,
          k: N,
        });
        for (let h = Math.max(h0, g * perGroup); h < Math.min(h1, (g + 1) * perGroup); h++) {
          const sOff = (h - h0) * P * N;
          const xOff = (row0 * H + h) * P; // x_t / y_t rows of this head, stride H·P
          const product = chunkDecays(dt, A[h], row0 * H + h, H, T, cs, dts, ecs, wdt);
          for (let t = 0; t < T; t++) wdt[t] *= dts[t];
          for (let t = 0; t < T; t++) {
            const e = ecs[t];
            const row = t * T;
            for (let n = 0; n < N; n++) Cd[t * N + n] = C[bcOff + t * G * N + n] * e;
            if (product) for (let s = 0; s <= t; s++) Lm[row + s] = CB[row + s] * e * wdt[s];
            else
              for (let s = 0; s <= t; s++)
                Lm[row + s] = CB[row + s] * Math.exp(Math.min(cs[t] - cs[s], 0)) * dts[s];
            Lm.fill(0, row + t + 1, row + T);
          }
          // Y = diag(exp(a))·C·Sᵀ (the carried state) + L·X (this chunk's tokens) + D·X.
          step({ a: Cd, aRow: N, b: S, bOff: sOff, bRow: 1, bCol: N, c: Yc, ldc: P, m: T, n: P, k: N });
          step({
            a: Lm,
            aRow: T,
            b: x,
            bOff: xOff,
            bRow: H * P,
            c: Yc,
            ldc: P,
            m: T,
            n: P,
            k: T,
            accumulate: true,
          });
          const dh = D ? D[h] : 0;
          for (let t = 0; t < T; t++)
            for (let p = 0; p < P; p++)
              y[xOff + t * H * P + p] = Yc[t * P + p] + dh * x[xOff + t * H * P + p];
          // S ← exp(a_last)·S + (w ∘ X)ᵀ·B.
          const last = cs[T - 1];
          const total = Math.exp(last);
          for (let i = sOff; i < sOff + P * N; i++) S[i] *= total;
          for (let s = 0; s < T; s++) {
            const w = Math.exp(Math.min(last - cs[s], 0)) * dt[(row0 + s) * H + h];
            for (let p = 0; p < P; p++) Xw[s * P + p] = w * x[xOff + s * H * P + p];
          }
          step({
            a: Xw,
            aRow: 1,
            aCol: P,
            b: B,
            bOff: bcOff,
            bRow: G * N,
            c: S,
            cOff: sOff,
            ldc: N,
            m: P,
            n: N,
            k: T,
            accumulate: true,
          });
        }
      }
    }
    if (a.sOut) for (let i = 0; i < S.length; i++) a.sOut[(b * H + h0) * P * N + i] = S[i];
  }
}

/** One recurrent step; `state` is updated in place. */
export function ssmStep(
  y: Tensor,
  state: Tensor,
  x: Tensor,
  dt: Tensor,
  A: Tensor,
  B: Tensor,
  C: Tensor,
  D: Tensor | null,
  d: SsdDesc,
): void {
  const o = f32Out(y);
  ssmUpdate(o.data, f32Of(state), f32Of(x), f32Of(dt), f32Of(A), f32Of(B), f32Of(C), D ? f32Of(D) : null, d);
  o.commit();
}

/** s ← exp(dt·A)·s + dt·x ⊗ B, out = s·C + D·x for x [batch, H, P], dt [batch, H], B/C [batch, G, N]. */
function ssmUpdate(
  out: Float32Array,
  S: Float32Array,
  xv: Float32Array,
  dtv: Float32Array,
  Av: Float32Array,
  Bv: Float32Array,
  Cv: Float32Array,
  Dv: Float32Array | null,
  d: Pick<SsdDesc, 'batch' | 'heads' | 'headDim' | 'groups' | 'dState'>,
): void {
  const { batch, heads: H, headDim: P, groups: G, dState: N } = d;
  const perGroup = H / G;
  for (let b = 0; b < batch; b++)
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / perGroup);
      const step = dtv[b * H + h];
      const decay = Math.exp(step * Av[h]);
      const bRow = (b * G + g) * N;
      for (let p = 0; p < P; p++) {
        const xi = xv[(b * H + h) * P + p];
        const sBase = ((b * H + h) * P + p) * N;
        let acc = 0;
        for (let n = 0; n < N; n++) {
          const s = S[sBase + n] * decay + step * xi * Bv[bRow + n];
          S[sBase + n] = s;
          acc += s * Cv[bRow + n];
        }
        out[(b * H + h) * P + p] = acc + (Dv ? Dv[h] * xi : 0);
      }
    }
}
