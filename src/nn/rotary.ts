/**
 * Rotary position tables for the runtime's rotate-half `ops.rotary`: cos/sin [seq, dim] with dim = the rotated
 * head dims, entry j and j + dim/2 sharing one angle. The variants differ only in which position multiplies
 * which frequency:
 *  - 1-D RoPE: angle(p, j) = pos[p] · invFreq[j];
 *  - M-RoPE (Qwen2-VL): frequency j reads the t, h or w position row by the `mrope_section` it falls in;
 *  - 2-D vision RoPE (Qwen2-VL ViT): the first half of the frequencies rotate by the patch row, the second
 *    half by the patch column, each with dim/4 frequencies of a (dim/2)-dim rotary.
 * Angles are formed in f32 as PyTorch does (inv_freq and positions f32, product f32), then cos/sin.
 */

import type { Backend } from '../runtime/backend.js';
import * as ops from '../runtime/ops.js';
import type { Tensor } from '../runtime/tensor.js';

/**
 * A rotary embedding described by its positions: frequency j (of dim/2) rotates by position row `rowOf[j]`.
 * The cos/sin tables are computed on the device (`rotaryTensors`), where they are used: at 10^5 tokens
 * forming them on the host took longer than a decoder layer.
 */
export interface RotaryTable {
  /** Position rows [rows][seq]: one for 1-D RoPE, (t, h, w) for M-RoPE, (row, col) for vision. */
  readonly positions: readonly ArrayLike<number>[];
  readonly invFreq: Float32Array;
  readonly rowOf: Int32Array;
}

const f = Math.fround;

/** 1 / theta^(2i/dim) for i < dim/2, in f32 like `1.0 / (base ** (arange(0, dim, 2).float() / dim))`. */
export function ropeInvFreq(dim: number, theta: number): Float32Array {
  const out = new Float32Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) out[i] = f(1 / f(theta ** f((2 * i) / dim)));
  return out;
}

/** Standard RoPE over `dim` rotated dims at the given positions. */
export function rope1d(positions: ArrayLike<number>, dim: number, theta: number): RotaryTable {
  return { positions: [positions], invFreq: ropeInvFreq(dim, theta), rowOf: new Int32Array(dim / 2) };
}

/**
 * Qwen2-VL multimodal RoPE: `positions` are the (t, h, w) rows; `section` splits the dim/2 frequencies into
 * consecutive parts read from rows t, h, w in turn (e.g. [16, 24, 24] for head_dim 128). Fewer than three
 * sections use the first rows: transformers 5.17 gives TRL's [1, 1] (head_dim 4) frequencies t, h in both
 * halves (its logits, test/fixtures/configs/v5-two-sections).
 */
export function mrope(
  positions: readonly [ArrayLike<number>, ArrayLike<number>, ArrayLike<number>],
  dim: number,
  theta: number,
  section: readonly number[],
): RotaryTable {
  if (section.length > 3 || section.reduce((a, b) => a + b, 0) !== dim / 2)
    throw new RangeError(
      `mrope: 1 to 3 sections ${section.join('+')} must add up to ${dim / 2} (head_dim/2)`,
    );
  const rowOf = new Int32Array(dim / 2);
  let at = 0;
  for (const [row, n] of section.entries()) {
    rowOf.fill(row, at, at + n);
    at += n;
  }
  return { positions, invFreq: ropeInvFreq(dim, theta), rowOf };
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
  return { positions: [rows, cols], invFreq, rowOf: new Int32Array(2 * quarter).fill(1, quarter) };
}

/** The f32 cos/sin tables [seq, dim] that `ops.rotary` takes. */
export interface Rope {
  cos: Tensor;
  sin: Tensor;
}

/** The tables of a rotary embedding, computed on `backend`. */
export function rotaryTensors(backend: Backend, t: RotaryTable): Rope {
  return ops.ropeTable(backend, t.positions, t.invFreq, t.rowOf);
}
