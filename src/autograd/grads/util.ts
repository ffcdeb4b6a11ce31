/** Small helpers the backward rules share (all build on the runtime's forward ops). */
import * as ops from '../../runtime/ops.js';
import { type Shape, sameShape } from '../../runtime/shape.js';
import type { Tensor } from '../../runtime/tensor.js';

/** t in f32 (saved inputs may be bf16/f16; gradients are always f32). */
export const f32 = (t: Tensor): Tensor => (t.dtype === 'f32' ? t : ops.cast(t, 'f32'));

/** A one-element f32 constant on t's backend, for broadcasting binary ops. */
export const scalar = (like: Tensor, v: number): Tensor => ops.full(like.backend, [1], v);

/** Sums g over the axes that broadcasting added or stretched, giving `shape` (the reverse of broadcasting). */
export function sumTo(g: Tensor, shape: Shape): Tensor {
  if (sameShape(g.shape, shape)) return g;
  let t = g;
  while (t.rank > shape.length) t = ops.sum(t, 0);
  for (let i = 0; i < shape.length; i++) if (shape[i] === 1 && t.shape[i] !== 1) t = ops.sum(t, i, true);
  return t.reshape(shape);
}

/** g broadcast (materialised) to `shape`. */
export const broadcastTo = (g: Tensor, shape: Shape): Tensor =>
  sameShape(g.shape, shape) ? g : ops.add(ops.zeros(g.backend, shape), g);

/**
 * 1 where a ≥ b, else 0 (elementwise, broadcasting): a saturated step of (a − b), exact for differences
 * above ~1e-30 (a subgradient choice at ties: the first operand wins).
 */
export function geMask(a: Tensor, b: Tensor): Tensor {
  const d = ops.affine(ops.sub(b, a), 1e30);
  return ops.sub(scalar(d, 1), ops.minimum(ops.maximum(d, scalar(d, 0)), scalar(d, 1)));
}

/** zeros of `shape` with g written at [start, start + g.shape[axis]) along axis (the backward of a slice). */
export function padInto(g: Tensor, shape: Shape, axis: number, start: number): Tensor {
  const out = ops.zeros(g.backend, shape);
  ops.writeSlice(out, g, axis, start);
  return out;
}
