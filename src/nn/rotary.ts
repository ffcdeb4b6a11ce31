/**
 * Rotary position tables for the runtime's rotate-half `ops.rotary`. A table holds cos/sin [seq, dim] with
 * dim = the rotated head dims; entry j and j + dim/2 share one angle. The variants differ only in which
 * position multiplies which frequency:
 *  - 1-D RoPE: angle(p, j) = pos[p] · invFreq[j];
 *  - M-RoPE (Qwen2-VL): frequency j reads the t, h or w position row by the `mrope_section` it falls in;
 *  - 2-D vision RoPE (Qwen2-VL ViT): the first half of the frequencies rotate by the patch row, the second
 *    half by the patch column, each with dim/4 frequencies of a (dim/2)-dim rotary.
 * Angles are formed in f32 as PyTorch does (inv_freq and positions f32, product f32), then cos/sin.
 */

import type { Backend } from '../runtime/backend.js';
import * as ops from '../runtime/ops.js';
import type { Tensor } from '../runtime/tensor.js';

export interface RotaryTable {
  readonly seq: number;
  readonly dim: number;
  readonly cos: Float32Array;
  readonly sin: Float32Array;
}

const f = Math.fround;

/** 1 / theta^(2i/dim) for i < dim/2, in f32 like `1.0 / (base ** (arange(0, dim, 2).float() / dim))`. */
export function ropeInvFreq(dim: number, theta: number): Float32Array {
  const out = new Float32Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) out[i] = f(1 / f(theta ** f((2 * i) / dim)));
  return out;
}

/** Builds a table from the position that drives each (token, frequency) pair. */
function table(
  seq: number,
  invFreq: Float32Array,
  positionOf: (p: number, j: number) => number,
): RotaryTable {
  const half = invFreq.length;
  const dim = 2 * half;
  const cos = new Float32Array(seq * dim);
  const sin = new Float32Array(seq * dim);
  for (let p = 0; p < seq; p++)
    for (let j = 0; j < half; j++) {
      const angle = f(positionOf(p, j) * invFreq[j]);
      const c = Math.cos(angle);
      const s = Math.sin(angle);
      cos[p * dim + j] = cos[p * dim + j + half] = c;
      sin[p * dim + j] = sin[p * dim + j + half] = s;
    }
  return { seq, dim, cos, sin };
}

/** Standard RoPE over `dim` rotated dims at the given positions. */
export function rope1d(positions: ArrayLike<number>, dim: number, theta: number): RotaryTable {
  return table(positions.length, ropeInvFreq(dim, theta), (p) => positions[p]);
}

/**
 * Qwen2-VL multimodal RoPE: `positions` are the (t, h, w) rows; `section` splits the dim/2 frequencies into
 * consecutive t, h and w parts (e.g. [16, 24, 24] for head_dim 128).
 */
export function mrope(
  positions: readonly [ArrayLike<number>, ArrayLike<number>, ArrayLike<number>],
  dim: number,
  theta: number,
  section: readonly [number, number, number],
): RotaryTable {
  if (section[0] + section[1] + section[2] !== dim / 2)
    throw new RangeError(`mrope: sections ${section.join('+')} must add up to ${dim / 2} (head_dim/2)`);
  const rowOf = new Uint8Array(dim / 2);
  rowOf.fill(1, section[0]).fill(2, section[0] + section[1]);
  return table(positions[0].length, ropeInvFreq(dim, theta), (p, j) => positions[rowOf[j]][p]);
}

/** Qwen2-VL vision RoPE for patches at (row, col): head dims [rows' freqs, cols' freqs] (then duplicated). */
export function visionRope2d(
  rows: ArrayLike<number>,
  cols: ArrayLike<number>,
  headDim: number,
  theta = 10000,
): RotaryTable {
  const inv = ropeInvFreq(headDim / 2, theta);
  const quarter = inv.length;
  const invFreq = new Float32Array(2 * quarter);
  invFreq.set(inv);
  invFreq.set(inv, quarter);
  return table(rows.length, invFreq, (p, j) => (j < quarter ? rows[p] : cols[p]));
}

/** Uploads a table as the f32 tensors `ops.rotary` takes. */
export function rotaryTensors(backend: Backend, t: RotaryTable): { cos: Tensor; sin: Tensor } {
  return {
    cos: ops.tensor(backend, t.cos, [t.seq, t.dim], 'f32'),
    sin: ops.tensor(backend, t.sin, [t.seq, t.dim], 'f32'),
  };
}
