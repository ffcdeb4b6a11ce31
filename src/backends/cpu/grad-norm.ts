import type { NormDesc } from '../../runtime/backend.js';
import type { Tensor } from '../../runtime/tensor.js';
import { f32Of, writeF64 } from './memory.js';

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));
const silu = (v: number) => v * sigmoid(v);
/** d silu / dv. */
const siluGrad = (v: number) => {
  const s = sigmoid(v);
  return s * (1 + v * (1 - s));
};

/**
 * RMSNorm backward per group of `groupSize` values, in f64. The normalised input u is x·silu(g) (gate before
 * the norm, mamba_ssm's default) or x; y = u·r·w (·silu(g) when normBeforeGate) with r = (mean u² + eps)^−½:
 *   dn = dy·w (·silu(g));  du = r·(dn − u·r²·mean(dn·u));  dw += dy·u·r (·silu(g));
 *   gate after: dg = dy·u·r·w·silu'(g);  gate before: dx = du·silu(g), dg = du·x·silu'(g).
 * dx gets dSum added (the fused add's residual stream).
 */
export function rmsNormBackward(
  dx: Tensor,
  dWeight: Tensor | null,
  dGate: Tensor | null,
  dy: Tensor,
  x: Tensor,
  weight: Tensor | null,
  gate: Tensor | null,
  dSum: Tensor | null,
  d: NormDesc,
): void {
  const { rows, dim, groupSize: G, eps, normBeforeGate } = d;
  const xv = f32Of(x);
  const w = weight ? f32Of(weight) : null;
  const g = gate ? f32Of(gate) : null;
  const gy = f32Of(dy);
  const extra = dSum ? f32Of(dSum) : null;
  const gx = new Float64Array(x.size);
  const gg = new Float64Array(gate ? gate.size : 0);
  const gw = new Float64Array(dim);
  const gateFirst = g !== null && !normBeforeGate;
  const u = new Float64Array(G);
  const dn = new Float64Array(G);
  for (let r = 0; r < rows; r++)
    for (let g0 = 0; g0 < dim; g0 += G) {
      const base = r * dim + g0;
      let ss = 0;
      for (let i = 0; i < G; i++) {
        u[i] = gateFirst ? xv[base + i] * silu(g![base + i]) : xv[base + i];
        ss += u[i] * u[i];
      }
      const rs = 1 / Math.sqrt(ss / G + eps);
      let dot = 0;
      for (let i = 0; i < G; i++) {
        const after = g && normBeforeGate ? silu(g[base + i]) : 1;
        const wi = w ? w[g0 + i] : 1;
        dn[i] = gy[base + i] * wi * after;
        dot += dn[i] * u[i];
        gw[g0 + i] += gy[base + i] * u[i] * rs * after;
        if (g && normBeforeGate) gg[base + i] = gy[base + i] * u[i] * rs * wi * siluGrad(g[base + i]);
      }
      const k = (rs * rs * dot) / G;
      for (let i = 0; i < G; i++) {
        const du = rs * (dn[i] - u[i] * k);
        if (gateFirst) {
          gx[base + i] = du * silu(g![base + i]);
          gg[base + i] = du * xv[base + i] * siluGrad(g![base + i]);
        } else gx[base + i] = du;
        if (extra) gx[base + i] += extra[base + i];
      }
    }
  writeF64(dx, gx);
  if (dWeight) writeF64(dWeight, gw);
  if (dGate) writeF64(dGate, gg);
}

/**
 * LayerNorm backward per row, in f64: with x̂ = (x − μ)·r and dx̂ = dy·w,
 *   dx = r·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)) (+ dSum);  dw += dy·x̂;  db += dy.
 */
export function layerNormBackward(
  dx: Tensor,
  dWeight: Tensor | null,
  dBias: Tensor | null,
  dy: Tensor,
  x: Tensor,
  weight: Tensor | null,
  dSum: Tensor | null,
  d: NormDesc,
): void {
  const { rows, dim, eps } = d;
  const xv = f32Of(x);
  const w = weight ? f32Of(weight) : null;
  const gy = f32Of(dy);
  const extra = dSum ? f32Of(dSum) : null;
  const gx = new Float64Array(x.size);
  const gw = new Float64Array(dim);
  const gb = new Float64Array(dim);
  const xh = new Float64Array(dim);
  for (let r = 0; r < rows; r++) {
    const base = r * dim;
    let mean = 0;
    for (let i = 0; i < dim; i++) mean += xv[base + i];
    mean /= dim;
    let v = 0;
    for (let i = 0; i < dim; i++) v += (xv[base + i] - mean) ** 2;
    const rs = 1 / Math.sqrt(v / dim + eps);
    let m1 = 0;
    let m2 = 0;
    for (let i = 0; i < dim; i++) {
      xh[i] = (xv[base + i] - mean) * rs;
      const g = gy[base + i] * (w ? w[i] : 1);
      m1 += g;
      m2 += g * xh[i];
      gw[i] += gy[base + i] * xh[i];
      gb[i] += gy[base + i];
    }
    m1 /= dim;
    m2 /= dim;
    for (let i = 0; i < dim; i++) {
      const g = gy[base + i] * (w ? w[i] : 1);
      gx[base + i] = rs * (g - m1 - xh[i] * m2) + (extra ? extra[base + i] : 0);
    }
  }
  writeF64(dx, gx);
  if (dWeight) writeF64(dWeight, gw);
  if (dBias) writeF64(dBias, gb);
}
