import type { Storage } from '../../runtime/backend.js';
import { BYTES_PER_ELEMENT, fromF32, type RawArray, rawArrayFor, toF32 } from '../../runtime/dtype.js';
import type { Tensor } from '../../runtime/tensor.js';

/** CPU storage: shared memory, so worker threads can compute on it without copies. */
export interface CpuStorage extends Storage {
  readonly buf: SharedArrayBuffer;
}

/** A tensor's raw elements (a view, no copy). */
export function rawOf(t: Tensor): RawArray {
  return rawArrayFor(t.dtype, (t.storage as CpuStorage).buf, t.offset * BYTES_PER_ELEMENT[t.dtype], t.size);
}

/** A tensor's values as f32: a view for f32 tensors, a converted copy otherwise. */
export function f32Of(t: Tensor): Float32Array {
  const r = rawOf(t);
  return t.dtype === 'f32' ? (r as Float32Array) : toF32(t.dtype, r);
}

/**
 * Where a kernel writes its f32 results for `out`: the tensor itself when it is f32, otherwise a scratch
 * array that `commit` rounds into the tensor's dtype.
 */
export function f32Out(out: Tensor): { data: Float32Array; commit: () => void } {
  const r = rawOf(out);
  if (out.dtype === 'f32') return { data: r as Float32Array, commit: () => {} };
  const data = new Float32Array(out.size);
  return { data, commit: () => r.set(fromF32(out.dtype, data)) };
}

/** f32 values of `t` in shared memory (workers can read them): the tensor itself when f32, else a copy. */
export function sharedF32Of(t: Tensor): Float32Array {
  if (t.dtype === 'f32') return rawOf(t) as Float32Array;
  const out = new Float32Array(new SharedArrayBuffer(t.size * 4));
  out.set(f32Of(t));
  return out;
}

/** Like `f32Out`, with the scratch in shared memory so worker threads can write it. */
export function sharedF32Out(out: Tensor): { data: Float32Array; commit: () => void } {
  const r = rawOf(out);
  if (out.dtype === 'f32') return { data: r as Float32Array, commit: () => {} };
  const data = new Float32Array(new SharedArrayBuffer(out.size * 4));
  return { data, commit: () => r.set(fromF32(out.dtype, data)) };
}

/** Writes f64 values into a tensor of any float dtype (rounded once). */
export function writeF64(t: Tensor, v: Float64Array): void {
  rawOf(t).set(t.dtype === 'f32' ? v : fromF32(t.dtype, Float32Array.from(v)));
}

/** Zeroed f32 values in shared memory. */
export const sharedF32 = (n: number): Float32Array => new Float32Array(new SharedArrayBuffer(4 * n));

/** Writes the sum of the partials' rows (each `width` long) into t. */
export function writeSummed(t: Tensor, partials: Float32Array, width: number): void {
  const out = new Float64Array(width);
  for (let k = 0; k < partials.length; k++) out[k % width] += partials[k];
  writeF64(t, out);
}
