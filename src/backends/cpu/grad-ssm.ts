import type { Conv1dDesc, SsdDesc, SsdGrads, SsdTensors } from '../../runtime/backend.js';
import type { Tensor } from '../../runtime/tensor.js';
import { f32Of, writeF64 } from './memory.js';

/**
 * Gradients of the SSD scan from the sequential recurrence, per (batch, head), in f64:
 *   s_t = a_t·s_{t−1} + dt_t·x_t ⊗ B_t (a_t = exp(dt_t·A)),   y_t = s_t·C_t + D·x_t.
 * Reverse time with ds (the gradient of s_t) starting at dStateOut:
 *   ds += dy_t ⊗ C_t;  dC_t += Σ_p dy_p·s_t[p];  dx_t = D·dy_t + dt_t·ds·B_t;  dB_t += dt_t·dsᵀx_t;
 *   ddt_t = ⟨ds, x_t ⊗ B_t⟩ + A·a_t·⟨ds, s_{t−1}⟩;  dA += dt_t·a_t·⟨ds, s_{t−1}⟩;  ds ← a_t·ds.
 * States are kept at chunk boundaries (desc.chunkSize) and recomputed forward inside each chunk, so memory
 * is (len/chunk + chunk)·headDim·dState per head rather than len·headDim·dState.
 */
export function ssdScanBackward(
  g: SsdGrads,
  dy: Tensor,
  dStateOut: Tensor | null,
  i: SsdTensors,
  d: SsdDesc,
): void {
  const { batch, len, heads: H, headDim: P, groups: G, dState: N, chunkSize } = d;
  const x = f32Of(i.x);
  const dt = f32Of(i.dt);
  const A = f32Of(i.A);
  const B = f32Of(i.B);
  const C = f32Of(i.C);
  const D = i.D ? f32Of(i.D) : null;
  const s0 = i.state ? f32Of(i.state) : null;
  const gy = f32Of(dy);
  const gOut = dStateOut ? f32Of(dStateOut) : null;
  const perGroup = H / G;
  const PN = P * N;
  const dx = new Float64Array(i.x.size);
  const ddt = new Float64Array(i.dt.size);
  const dA = new Float64Array(H);
  const dB = new Float64Array(i.B.size);
  const dC = new Float64Array(i.C.size);
  const dD = new Float64Array(H);
  const dS0 = new Float64Array(batch * H * PN);
  const T = Math.max(1, Math.min(chunkSize, len));
  const chunks = Math.ceil(len / T);
  const bounds = new Float64Array((chunks + 1) * PN); // the state before each chunk
  const states = new Float64Array((T + 1) * PN); // states inside the chunk being reversed
  const ds = new Float64Array(PN);
  for (let b = 0; b < batch; b++)
    for (let h = 0; h < H; h++) {
      const grp = Math.floor(h / perGroup);
      const sBase = (b * H + h) * PN;
      const xAt = (t: number) => ((b * len + t) * H + h) * P;
      const bcAt = (t: number) => ((b * len + t) * G + grp) * N;
      const dtAt = (t: number) => (b * len + t) * H + h;
      /** Advances `st` (at offset `o`, P·N) by token t in place. */
      const advance = (st: Float64Array, from: number, to: number, t: number) => {
        const dtv = dt[dtAt(t)];
        const a = Math.exp(dtv * A[h]);
        const xo = xAt(t);
        const bo = bcAt(t);
        for (let p = 0; p < P; p++) {
          const u = dtv * x[xo + p];
          for (let n = 0; n < N; n++) st[to + p * N + n] = a * st[from + p * N + n] + u * B[bo + n];
        }
      };
      bounds.fill(0, 0, PN);
      if (s0) for (let k = 0; k < PN; k++) bounds[k] = s0[sBase + k];
      for (let c = 0; c < chunks; c++) {
        bounds.copyWithin((c + 1) * PN, c * PN, (c + 1) * PN);
        for (let t = c * T; t < Math.min(len, (c + 1) * T); t++)
          advance(bounds, (c + 1) * PN, (c + 1) * PN, t);
      }
      if (gOut) for (let k = 0; k < PN; k++) ds[k] = gOut[sBase + k];
      else ds.fill(0);
      for (let c = chunks - 1; c >= 0; c--) {
        const t0 = c * T;
        const t1 = Math.min(len, t0 + T);
        states.set(bounds.subarray(c * PN, (c + 1) * PN));
        for (let t = t0; t < t1; t++) advance(states, (t - t0) * PN, (t - t0 + 1) * PN, t);
        for (let t = t1 - 1; t >= t0; t--) {
          const cur = (t - t0 + 1) * PN; // s_t
          const prev = (t - t0) * PN; // s_{t−1}
          const xo = xAt(t);
          const bo = bcAt(t);
          const dtv = dt[dtAt(t)];
          const a = Math.exp(dtv * A[h]);
          for (let p = 0; p < P; p++) {
            const gyp = gy[xo + p];
            if (D) {
              dD[h] += gyp * x[xo + p];
              dx[xo + p] += D[h] * gyp;
            }
            for (let n = 0; n < N; n++) {
              ds[p * N + n] += gyp * C[bo + n];
              dC[bo + n] += gyp * states[cur + p * N + n];
            }
          }
          let dsPrev = 0; // ⟨ds, s_{t−1}⟩
          let dsXB = 0; // ⟨ds, x_t ⊗ B_t⟩
          for (let p = 0; p < P; p++) {
            const xp = x[xo + p];
            let dsB = 0;
            for (let n = 0; n < N; n++) {
              const v = ds[p * N + n];
              dsB += v * B[bo + n];
              dB[bo + n] += dtv * v * xp;
              dsPrev += v * states[prev + p * N + n];
            }
            dx[xo + p] += dtv * dsB;
            dsXB += dsB * xp;
          }
          ddt[dtAt(t)] += dsXB + A[h] * a * dsPrev;
          dA[h] += dtv * a * dsPrev;
          for (let k = 0; k < PN; k++) ds[k] *= a;
        }
      }
      dS0.set(ds, sBase);
    }
  writeF64(g.dx, dx);
  writeF64(g.ddt, ddt);
  writeF64(g.dA, dA);
  writeF64(g.dB, dB);
  writeF64(g.dC, dC);
  if (g.dD) writeF64(g.dD, dD);
  if (g.dState) writeF64(g.dState, dS0);
}

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));

/**
 * Gradients of the causal depthwise conv1d. With P = [state; x] per batch ([width−1+len, C]) and
 * pre[t, c] = bias[c] + Σ_j w[c, j]·P[t+j, c], y = pre (or silu(pre)), stateOut = P's last width−1 rows:
 *   dpre = dy (· silu'(pre)),  dw[c, j] = Σ_t dpre[t, c]·P[t+j, c],  dbias = Σ_t dpre,
 *   dP[t+j, c] += w[c, j]·dpre[t, c] (+ dStateOut on the last rows); dx and dState are dP's parts. f64.
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
  const { batch, len, channels: C, width: W, silu } = d;
  const past = W - 1;
  const xv = f32Of(x);
  const w = f32Of(weight);
  const bv = bias ? f32Of(bias) : null;
  const sv = state ? f32Of(state) : null;
  const gy = f32Of(dy);
  const gso = dStateOut ? f32Of(dStateOut) : null;
  const padded = new Float64Array((past + len) * C);
  const dP = new Float64Array((past + len) * C);
  const gx = new Float64Array(batch * len * C);
  const gs = new Float64Array(batch * past * C);
  const gw = new Float64Array(C * W);
  const gb = new Float64Array(C);
  for (let b = 0; b < batch; b++) {
    padded.fill(0, 0, past * C);
    if (sv) for (let k = 0; k < past * C; k++) padded[k] = sv[b * past * C + k];
    for (let k = 0; k < len * C; k++) padded[past * C + k] = xv[b * len * C + k];
    dP.fill(0);
    if (gso) for (let k = 0; k < past * C; k++) dP[len * C + k] += gso[b * past * C + k];
    for (let t = 0; t < len; t++)
      for (let c = 0; c < C; c++) {
        let g = gy[(b * len + t) * C + c];
        if (silu) {
          let pre = bv ? bv[c] : 0;
          for (let j = 0; j < W; j++) pre += w[c * W + j] * padded[(t + j) * C + c];
          const s = sigmoid(pre);
          g *= s * (1 + pre * (1 - s));
        }
        gb[c] += g;
        for (let j = 0; j < W; j++) {
          gw[c * W + j] += g * padded[(t + j) * C + c];
          dP[(t + j) * C + c] += w[c * W + j] * g;
        }
      }
    gs.set(dP.subarray(0, past * C), b * past * C);
    gx.set(dP.subarray(past * C), b * len * C);
  }
  writeF64(dx, gx);
  writeF64(dWeight, gw);
  if (dBias) writeF64(dBias, gb);
  if (dState) writeF64(dState, gs);
}
