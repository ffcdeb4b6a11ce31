import type { NormDesc } from '../../runtime/backend.js';
import type { Tensor } from '../../runtime/tensor.js';
import { sharedF32, sharedF32Of, sharedF32Out, writeSummed } from './memory.js';
import { parallelFor } from './pool.js';

/** Rows per unit of work: each unit sums its own weight (and bias) gradient, added up at the end. */
const ROWS = 32;
const PARALLEL_WORK = 1 << 16;

export interface NormGradArgs {
  kind: 'rms' | 'layer';
  x: Float32Array;
  dy: Float32Array;
  weight: Float32Array | null;
  gate: Float32Array | null;
  dSum: Float32Array | null;
  dx: Float32Array;
  dGate: Float32Array | null;
  /** [units, dim] partial sums of the weight and bias gradients. */
  dw: Float32Array;
  db: Float32Array;
  desc: NormDesc;
}

/**
 * Runs a norm backward over blocks of ROWS rows (in parallel when large), then sums the blocks' weight and bias
 * gradients into dWeight / dBias.
 */
function normBackward(
  args: Omit<NormGradArgs, 'dw' | 'db'>,
  dWeight: Tensor | null,
  dBias: Tensor | null,
  commit: () => void,
): void {
  const { rows, dim } = args.desc;
  const units = Math.ceil(rows / ROWS);
  const a: NormGradArgs = {
    ...args,
    dw: sharedF32(dWeight ? units * dim : 0),
    db: sharedF32(dBias ? units * dim : 0),
  };
  if (rows * dim < PARALLEL_WORK) normBackwardTask(a, 0, units);
  else parallelFor('normBackward', a, units, 1, normBackwardTask);
  commit();
  if (dWeight) writeSummed(dWeight, a.dw, dim);
  if (dBias) writeSummed(dBias, a.db, dim);
}

/**
 * RMSNorm backward per group of `groupSize` values. The normalised input u is x·silu(g) (gate before the norm,
 * mamba_ssm's default) or x; y = u·r·w (·silu(g) when normBeforeGate) with r = (mean u² + eps)^−½:
 *   dn = dy·w (·silu(g));  du = r·(dn − u·r²·mean(dn·u));  dw += dy·u·r (·silu(g));
 *   gate after: dg = dy·u·r·w·silu'(g);  gate before: dx = du·silu(g), dg = du·x·silu'(g).
 * dx gets dSum added (the fused add's residual stream). Statistics in f64.
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
  const gx = sharedF32Out(dx);
  const gg = dGate ? sharedF32Out(dGate) : null;
  const args = {
    ...normInputs('rms', x, dy, weight, dSum, d),
    gate: gate ? sharedF32Of(gate) : null,
    dx: gx.data,
    dGate: gg ? gg.data : null,
  };
  normBackward(args, dWeight, null, () => {
    gx.commit();
    gg?.commit();
  });
}

/**
 * LayerNorm backward per row: with x̂ = (x − μ)·r and dx̂ = dy·w,
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
  const gx = sharedF32Out(dx);
  const args = { ...normInputs('layer', x, dy, weight, dSum, d), gate: null, dx: gx.data, dGate: null };
  normBackward(args, dWeight, dBias, gx.commit);
}

const normInputs = (
  kind: 'rms' | 'layer',
  x: Tensor,
  dy: Tensor,
  weight: Tensor | null,
  dSum: Tensor | null,
  desc: NormDesc,
) => ({
  kind,
  x: sharedF32Of(x),
  dy: sharedF32Of(dy),
  weight: weight ? sharedF32Of(weight) : null,
  dSum: dSum ? sharedF32Of(dSum) : null,
  desc,
});

// Per-thread scratch of one row: u (or x̂), dn, silu(g) and silu'(g).
let scratch = new Float64Array(0);

/** Row blocks [lo, hi). */
export function normBackwardTask(a: NormGradArgs, lo: number, hi: number): void {
  const { rows, dim } = a.desc;
  if (scratch.length < 4 * dim) scratch = new Float64Array(4 * dim);
  for (let unit = lo; unit < hi; unit++)
    for (let r = unit * ROWS; r < Math.min(rows, (unit + 1) * ROWS); r++)
      if (a.kind === 'rms') rmsRow(a, r, unit * dim);
      else layerRow(a, r, unit * dim);
}

function rmsRow(a: NormGradArgs, r: number, partial: number): void {
  const { dim, groupSize: G, eps, normBeforeGate } = a.desc;
  const { x, dy, weight: w, gate: g, dSum, dx, dGate, dw } = a;
  const u = scratch.subarray(0, dim);
  const dn = scratch.subarray(dim, 2 * dim);
  const sg = scratch.subarray(2 * dim, 3 * dim); // silu(g)
  const sd = scratch.subarray(3 * dim, 4 * dim); // silu'(g)
  const base = r * dim;
  if (g)
    for (let i = 0; i < dim; i++) {
      const v = g[base + i];
      const s = 1 / (1 + Math.exp(-v));
      sg[i] = v * s;
      sd[i] = s * (1 + v * (1 - s));
    }
  const gateFirst = g !== null && !normBeforeGate;
  const gateAfter = g !== null && normBeforeGate;
  for (let g0 = 0; g0 < dim; g0 += G) {
    let ss = 0;
    for (let i = g0; i < g0 + G; i++) {
      u[i] = gateFirst ? x[base + i] * sg[i] : x[base + i];
      ss += u[i] * u[i];
    }
    const rs = 1 / Math.sqrt(ss / G + eps);
    let dot = 0;
    for (let i = g0; i < g0 + G; i++) {
      const after = gateAfter ? sg[i] : 1;
      const wi = w ? w[i] : 1;
      dn[i] = dy[base + i] * wi * after;
      dot += dn[i] * u[i];
      if (dw.length) dw[partial + i] += dy[base + i] * u[i] * rs * after;
      if (gateAfter && dGate) dGate[base + i] = dy[base + i] * u[i] * rs * wi * sd[i];
    }
    const k = (rs * rs * dot) / G;
    for (let i = g0; i < g0 + G; i++) {
      const du = rs * (dn[i] - u[i] * k);
      let v = du;
      if (gateFirst) {
        v = du * sg[i];
        if (dGate) dGate[base + i] = du * x[base + i] * sd[i];
      }
      dx[base + i] = dSum ? v + dSum[base + i] : v;
    }
  }
}

function layerRow(a: NormGradArgs, r: number, partial: number): void {
  const { dim, eps } = a.desc;
  const { x, dy, weight: w, dSum, dx, dw, db } = a;
  const xh = scratch.subarray(0, dim);
  const base = r * dim;
  let mean = 0;
  for (let i = 0; i < dim; i++) mean += x[base + i];
  mean /= dim;
  let v = 0;
  for (let i = 0; i < dim; i++) v += (x[base + i] - mean) ** 2;
  const rs = 1 / Math.sqrt(v / dim + eps);
  let m1 = 0;
  let m2 = 0;
  for (let i = 0; i < dim; i++) {
    xh[i] = (x[base + i] - mean) * rs;
    const g = dy[base + i] * (w ? w[i] : 1);
    m1 += g;
    m2 += g * xh[i];
    if (dw.length) dw[partial + i] += dy[base + i] * xh[i];
    if (db.length) db[partial + i] += dy[base + i];
  }
  m1 /= dim;
  m2 /= dim;
  for (let i = 0; i < dim; i++) {
    const g = dy[base + i] * (w ? w[i] : 1);
    dx[base + i] = rs * (g - m1 - xh[i] * m2) + (dSum ? dSum[base + i] : 0);
  }
}
