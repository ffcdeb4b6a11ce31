import type { Conv1dDesc, SsdDesc } from '../../runtime/backend.js';
import { fromF32 } from '../../runtime/dtype.js';
import type { Tensor } from '../../runtime/tensor.js';
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
  const w = f32Of(weight);
  const bv = bias ? f32Of(bias) : null;
  const sv = state ? f32Of(state) : null;
  const o = f32Out(y);
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
      for (let c = 0; c < C; c++) o.data[ob + c] = act ? silu(acc[c]) : acc[c];
    }
    if (stateOut) {
      const so = rawOf(stateOut);
      const last = fromF32(stateOut.dtype, padded.subarray(len * C, (len + past) * C));
      so.set(last, b * past * C);
    }
  }
  o.commit();
}

export interface SsdArgs {
  x: Float32Array;
  dt: Float32Array;
  A: Float32Array;
  B: Float32Array;
  C: Float32Array;
  D: Float32Array | null;
  y: Float32Array;
  s0: Float32Array | null;
  sOut: Float32Array | null;
  desc: SsdDesc;
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
    x: sharedF32Of(x),
    dt: sharedF32Of(dt),
    A: sharedF32Of(A),
    B: sharedF32Of(B),
    C: sharedF32Of(C),
    D: D ? sharedF32Of(D) : null,
    y: o.data,
    s0: state ? sharedF32Of(state) : null,
    sOut: stateOut ? sharedF32Of(stateOut) : null,
    desc: d,
  };
  const units = d.batch * d.heads;
  const work = d.batch * d.len * d.heads * d.headDim * (d.dState + Math.min(d.chunkSize, d.len));
  if (work < PARALLEL_WORK) ssdTask(args, 0, units);
  else parallelFor('ssd', args, units, 1, ssdTask);
  o.commit();
}

const PARALLEL_WORK = 1 << 20;

/** Runs the (batch, head) pairs [lo, hi). */
export function ssdTask(a: SsdArgs, lo: number, hi: number): void {
  const { batch, len, heads: H, headDim: P, groups: G, dState: N, chunkSize } = a.desc;
  const { x, dt, A, B, C, D, y } = a;
  const perGroup = H / G;
  const L = Math.min(chunkSize, len);
  const CB = new Float64Array(L * L);
  const cs = new Float64Array(L);
  const acc = new Float64Array(P);
  for (let b = 0; b < batch; b++) {
    const h0 = Math.max(lo - b * H, 0);
    const h1 = Math.min(hi - b * H, H);
    if (h0 >= h1) continue;
    // States of this batch's heads [h0, h1), in f64.
    const S = new Float64Array((h1 - h0) * P * N);
    if (a.s0) for (let i = 0; i < S.length; i++) S[i] = a.s0[(b * H + h0) * P * N + i];
    for (let t0 = 0; t0 < len; t0 += chunkSize) {
      const T = Math.min(chunkSize, len - t0);
      const row0 = b * len + t0; // global time index of the chunk's first token
      for (let g = Math.floor(h0 / perGroup); g * perGroup < h1; g++) {
        for (let t = 0; t < T; t++) {
          const cb = ((row0 + t) * G + g) * N;
          for (let s = 0; s <= t; s++) {
            const bb = ((row0 + s) * G + g) * N;
            let v = 0;
            for (let n = 0; n < N; n++) v += C[cb + n] * B[bb + n];
            CB[t * L + s] = v;
          }
        }
        for (let h = Math.max(h0, g * perGroup); h < Math.min(h1, (g + 1) * perGroup); h++) {
          const sb = (h - h0) * P * N;
          let cum = 0;
          for (let t = 0; t < T; t++) {
            cum += dt[(row0 + t) * H + h] * A[h];
            cs[t] = cum;
          }
          for (let t = 0; t < T; t++) {
            // Inter-chunk: the carried state read through C_t, decayed to t.
            const cRow = ((row0 + t) * G + g) * N;
            const decay = Math.exp(cs[t]);
            for (let p = 0; p < P; p++) {
              let v = 0;
              const sp = sb + p * N;
              for (let n = 0; n < N; n++) v += C[cRow + n] * S[sp + n];
              acc[p] = v * decay;
            }
            // Intra-chunk: the tokens s ≤ t of this chunk.
            for (let s = 0; s <= t; s++) {
              const ts = (row0 + s) * H + h;
              const w = CB[t * L + s] * Math.exp(Math.min(cs[t] - cs[s], 0)) * dt[ts];
              const xs = ts * P;
              for (let p = 0; p < P; p++) acc[p] += w * x[xs + p];
            }
            const yb = ((row0 + t) * H + h) * P;
            const dh = D ? D[h] : 0;
            for (let p = 0; p < P; p++) y[yb + p] = acc[p] + dh * x[yb + p];
          }
          // State passing to the next chunk.
          const last = cs[T - 1];
          const total = Math.exp(last);
          for (let i = sb; i < sb + P * N; i++) S[i] *= total;
          for (let s = 0; s < T; s++) {
            const ts = (row0 + s) * H + h;
            const w = Math.exp(Math.min(last - cs[s], 0)) * dt[ts];
            const bRow = ((row0 + s) * G + g) * N;
            for (let p = 0; p < P; p++) {
              const xw = w * x[ts * P + p];
              const sp = sb + p * N;
              for (let n = 0; n < N; n++) S[sp + n] += xw * B[bRow + n];
            }
          }
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
  const { batch, heads: H, headDim: P, groups: G, dState: N } = d;
  const xv = f32Of(x);
  const dtv = f32Of(dt);
  const Av = f32Of(A);
  const Bv = f32Of(B);
  const Cv = f32Of(C);
  const Dv = D ? f32Of(D) : null;
  const S = f32Of(state);
  const o = f32Out(y);
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
        o.data[(b * H + h) * P + p] = acc + (Dv ? Dv[h] * xi : 0);
      }
    }
  o.commit();
}
