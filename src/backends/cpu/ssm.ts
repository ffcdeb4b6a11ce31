import type { Conv1dDesc, SsdDesc } from '../../runtime/backend.js';
import type { Tensor } from '../../runtime/tensor.js';
import { f32Of, f32Out } from './memory.js';

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
  // Input at time t (t < 0 reads the carried state).
  const input = (b: number, t: number, c: number) =>
    t >= 0 ? xv[(b * len + t) * C + c] : sv ? sv[(b * past + past + t) * C + c] : 0;
  for (let b = 0; b < batch; b++)
    for (let t = 0; t < len; t++)
      for (let c = 0; c < C; c++) {
        let s = bv ? bv[c] : 0;
        for (let j = 0; j < W; j++) s += w[c * W + j] * input(b, t - past + j, c);
        o.data[(b * len + t) * C + c] = act ? silu(s) : s;
      }
  o.commit();
  if (stateOut) {
    const so = f32Out(stateOut);
    for (let b = 0; b < batch; b++)
      for (let r = 0; r < past; r++)
        for (let c = 0; c < C; c++) so.data[(b * past + r) * C + c] = input(b, len - past + r, c);
    so.commit();
  }
}

/**
 * Chunked SSD (the mamba_ssm algorithm): within a chunk, y_t = exp(a_t)·C_t·S₀ + Σ_{s≤t} (C_t·B_s)·exp(a_t − a_s)·dt_s·x_s
 * with a the inclusive cumulative sum of dt·A inside the chunk; then S ← exp(a_last)·S₀ + Σ_s exp(a_last − a_s)·dt_s·x_s⊗B_s.
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
  const { batch, len, heads: H, headDim: P, groups: G, dState: N, chunkSize } = d;
  const xv = f32Of(x);
  const dtv = f32Of(dt);
  const Av = f32Of(A);
  const Bv = f32Of(B);
  const Cv = f32Of(C);
  const Dv = D ? f32Of(D) : null;
  const o = f32Out(y);
  const S = new Float64Array(batch * H * P * N);
  if (state) S.set(f32Of(state));
  const perGroup = H / G;
  const cs = new Float64Array(chunkSize);
  const CB = new Float64Array(chunkSize * chunkSize);
  for (let b = 0; b < batch; b++)
    for (let t0 = 0; t0 < len; t0 += chunkSize) {
      const T = Math.min(chunkSize, len - t0);
      for (let g = 0; g < G; g++) {
        // CB[t, s] = C_t · B_s for this chunk and group, shared by the group's heads.
        for (let t = 0; t < T; t++)
          for (let s = 0; s <= t; s++) {
            const cb = ((b * len + t0 + t) * G + g) * N;
            const bb = ((b * len + t0 + s) * G + g) * N;
            let acc = 0;
            for (let n = 0; n < N; n++) acc += Cv[cb + n] * Bv[bb + n];
            CB[t * chunkSize + s] = acc;
          }
        for (let h = g * perGroup; h < (g + 1) * perGroup; h++) {
          let a = 0;
          for (let t = 0; t < T; t++) {
            a += dtv[(b * len + t0 + t) * H + h] * Av[h];
            cs[t] = a;
          }
          const sBase = (b * H + h) * P * N;
          for (let t = 0; t < T; t++) {
            const cRow = ((b * len + t0 + t) * G + g) * N;
            const decay = Math.exp(cs[t]);
            const yBase = ((b * len + t0 + t) * H + h) * P;
            for (let p = 0; p < P; p++) {
              let acc = 0;
              for (let n = 0; n < N; n++) acc += Cv[cRow + n] * S[sBase + p * N + n];
              acc *= decay;
              for (let s = 0; s <= t; s++) {
                const ts = (b * len + t0 + s) * H + h;
                acc +=
                  CB[t * chunkSize + s] * Math.exp(Math.min(cs[t] - cs[s], 0)) * dtv[ts] * xv[ts * P + p];
              }
              if (Dv) acc += Dv[h] * xv[yBase + p];
              o.data[yBase + p] = acc;
            }
          }
          // State passing to the next chunk.
          const last = cs[T - 1];
          const total = Math.exp(last);
          for (let i = 0; i < P * N; i++) S[sBase + i] *= total;
          for (let s = 0; s < T; s++) {
            const ts = (b * len + t0 + s) * H + h;
            const wgt = Math.exp(Math.min(last - cs[s], 0)) * dtv[ts];
            const bRow = ((b * len + t0 + s) * G + g) * N;
            for (let p = 0; p < P; p++) {
              const xs = wgt * xv[ts * P + p];
              for (let n = 0; n < N; n++) S[sBase + p * N + n] += xs * Bv[bRow + n];
            }
          }
        }
      }
    }
  o.commit();
  if (stateOut) f32Out(stateOut).data.set(S);
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
