import type { NormDesc, ResidualAdd, RotaryDesc } from '../../runtime/backend.js';
import type { Tensor } from '../../runtime/tensor.js';
import { binary } from './elementwise.js';
import { fastOps } from './kernels.js';
import { f32Of, f32Out, rawOf } from './memory.js';

const silu = (v: number) => v / (1 + Math.exp(-v));

/** residual.sum = x + residual.add (the element-wise add, so rounded as an unfused add stores it); returns the sum. */
function addInto({ add, sum }: ResidualAdd, x: Tensor): Tensor {
  binary(sum, 'add', x, add, { outShape: [sum.size], aStrides: [1], bStrides: [1] });
  return sum;
}

export function rmsNorm(
  out: Tensor,
  x: Tensor,
  weight: Tensor | null,
  gate: Tensor | null,
  d: NormDesc,
  residual?: ResidualAdd | null,
): void {
  const xv = f32Of(residual ? addInto(residual, x) : x);
  const w = weight ? f32Of(weight) : null;
  const g = gate ? f32Of(gate) : null;
  const o = f32Out(out);
  const { rows, dim, groupSize, eps } = d;
  const fast = fastOps();
  if (fast) {
    fast.rmsNorm(o.data, xv, w, g, rows, dim, groupSize, eps, d.normBeforeGate);
    o.commit();
    return;
  }
  const gateFirst = g && !d.normBeforeGate;
  const tmp = new Float32Array(groupSize);
  for (let r = 0; r < rows; r++) {
    for (let g0 = 0; g0 < dim; g0 += groupSize) {
      const base = r * dim + g0;
      let ss = 0;
      for (let i = 0; i < groupSize; i++) {
        const v = gateFirst ? xv[base + i] * silu(g![base + i]) : xv[base + i];
        tmp[i] = v;
        ss += v * v;
      }
      const inv = 1 / Math.sqrt(ss / groupSize + eps);
      for (let i = 0; i < groupSize; i++) {
        let v = tmp[i] * inv * (w ? w[g0 + i] : 1);
        if (g && d.normBeforeGate) v *= silu(g[base + i]);
        o.data[base + i] = v;
      }
    }
  }
  o.commit();
}

export function layerNorm(
  out: Tensor,
  x: Tensor,
  weight: Tensor | null,
  bias: Tensor | null,
  d: NormDesc,
  residual?: ResidualAdd | null,
): void {
  const xv = f32Of(residual ? addInto(residual, x) : x);
  const w = weight ? f32Of(weight) : null;
  const b = bias ? f32Of(bias) : null;
  const o = f32Out(out);
  const { rows, dim, eps } = d;
  const fast = fastOps();
  if (fast) {
    fast.layerNorm(o.data, xv, w, b, rows, dim, eps);
    o.commit();
    return;
  }
  for (let r = 0; r < rows; r++) {
    const base = r * dim;
    let mean = 0;
    for (let i = 0; i < dim; i++) mean += xv[base + i];
    mean /= dim;
    let v = 0;
    for (let i = 0; i < dim; i++) v += (xv[base + i] - mean) ** 2;
    const inv = 1 / Math.sqrt(v / dim + eps);
    for (let i = 0; i < dim; i++)
      o.data[base + i] = (xv[base + i] - mean) * inv * (w ? w[i] : 1) + (b ? b[i] : 0);
  }
  o.commit();
}

export function softmax(out: Tensor, x: Tensor, rows: number, dim: number): void {
  const xv = f32Of(x);
  const o = f32Out(out);
  for (let r = 0; r < rows; r++) softmaxRow(xv, o.data, r * dim, dim);
  o.commit();
}

/** Softmax of src[off, off+dim) into dst (−∞ everywhere gives zeros). */
export function softmaxRow(
  src: ArrayLike<number>,
  dst: Float32Array | Float64Array,
  off: number,
  dim: number,
): void {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < dim; i++) if (src[off + i] > max) max = src[off + i];
  if (max === Number.NEGATIVE_INFINITY) {
    dst.fill(0, off, off + dim);
    return;
  }
  let sum = 0;
  for (let i = 0; i < dim; i++) {
    const e = Math.exp(src[off + i] - max);
    dst[off + i] = e;
    sum += e;
  }
  for (let i = 0; i < dim; i++) dst[off + i] /= sum;
}

/** Rotate-half rotary: out = x·cos + rotate_half(x)·sin on the first rotaryDim dims of each head. */
export function rotary(out: Tensor, x: Tensor, cos: Tensor, sin: Tensor, d: RotaryDesc): void {
  const xv = f32Of(x);
  const cv = f32Of(cos);
  const sv = f32Of(sin);
  const o = f32Out(out);
  const { batch, seq, heads, headDim, rotaryDim } = d;
  const half = rotaryDim / 2;
  for (let b = 0; b < batch; b++)
    for (let s = 0; s < seq; s++) {
      const t = ((d.tableShared ? 0 : b) * seq + s) * rotaryDim;
      for (let h = 0; h < heads; h++) {
        const base = ((b * seq + s) * heads + h) * headDim;
        for (let i = 0; i < half; i++) {
          const x1 = xv[base + i];
          const x2 = xv[base + i + half];
          o.data[base + i] = x1 * cv[t + i] - x2 * sv[t + i];
          o.data[base + i + half] = x2 * cv[t + i + half] + x1 * sv[t + i + half];
        }
        for (let i = rotaryDim; i < headDim; i++) o.data[base + i] = xv[base + i];
      }
    }
  o.commit();
}

/** Rotary tables (Backend.ropeTable): the angle is an f32 product, as PyTorch forms it; cos/sin of it in f64. */
export function ropeTable(cos: Tensor, sin: Tensor, positions: Tensor, invFreq: Tensor, rowOf: Tensor): void {
  const pos = f32Of(positions);
  const inv = f32Of(invFreq);
  const row = rawOf(rowOf);
  const c = f32Out(cos);
  const s = f32Out(sin);
  const half = inv.length;
  const seq = positions.shape[1];
  for (let p = 0; p < seq; p++)
    for (let j = 0; j < half; j++) {
      const angle = Math.fround(pos[row[j] * seq + p] * inv[j]);
      const o = p * 2 * half + j;
      c.data[o] = c.data[o + half] = Math.cos(angle);
      s.data[o] = s.data[o + half] = Math.sin(angle);
    }
  c.commit();
  s.commit();
}
