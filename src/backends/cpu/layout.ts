import { ShapeError, stridesOf } from '../../runtime/shape.js';
import type { Tensor } from '../../runtime/tensor.js';
import { f32Of, f32Out, rawOf } from './memory.js';

/** Copies between [outer, ·, inner] views; dtype-agnostic (raw elements). */
export function readSlice(
  out: Tensor,
  x: Tensor,
  outer: number,
  xDim: number,
  inner: number,
  start: number,
): void {
  const src = rawOf(x);
  const dst = rawOf(out);
  const outDim = out.size / (outer * inner || 1);
  const run = outDim * inner;
  for (let o = 0; o < outer; o++) {
    const from = (o * xDim + start) * inner;
    dst.set(src.subarray(from, from + run), o * run);
  }
}

/** Row i of x [rows, rowElems] into dsts[i].dst at row dsts[i].at (Backend.scatterRows). */
export function scatterRows(x: Tensor, dsts: readonly { dst: Tensor; at: number }[], rowElems: number): void {
  const xv = rawOf(x);
  for (const [i, { dst, at }] of dsts.entries())
    rawOf(dst).set(xv.subarray(i * rowElems, (i + 1) * rowElems), at * rowElems);
}

export function writeSlice(
  out: Tensor,
  x: Tensor,
  outer: number,
  outDim: number,
  inner: number,
  start: number,
): void {
  const src = rawOf(x);
  const dst = rawOf(out);
  const run = x.size / (outer || 1);
  for (let o = 0; o < outer; o++) dst.set(src.subarray(o * run, (o + 1) * run), (o * outDim + start) * inner);
}

export function permute(out: Tensor, x: Tensor, perm: readonly number[]): void {
  const src = rawOf(x);
  const dst = rawOf(out);
  const inStrides = stridesOf(x.shape);
  // Output axes with their input strides; neighbours that stay neighbours in the input merge into one, so the
  // innermost axis is as long as possible (a whole contiguous run where the permutation keeps one).
  const shape: number[] = [];
  const step: number[] = [];
  for (const [ax, n] of out.shape.entries()) {
    const s = inStrides[perm[ax]];
    if (n === 1) continue;
    const last = shape.length - 1;
    if (last >= 0 && step[last] === s * n) {
      shape[last] *= n;
      step[last] = s;
    } else {
      shape.push(n);
      step.push(s);
    }
  }
  const rank = shape.length;
  const n = rank ? shape[rank - 1] : 1;
  const inner = rank ? step[rank - 1] : 1;
  const idx = new Array<number>(rank).fill(0);
  let from = 0;
  for (let i = 0; i < out.size; i += n) {
    if (inner === 1) for (let k = 0; k < n; k++) dst[i + k] = src[from + k];
    else for (let k = 0; k < n; k++) dst[i + k] = src[from + k * inner];
    // The next run: carry over the outer axes.
    for (let ax = rank - 2; ax >= 0; ax--) {
      idx[ax]++;
      from += step[ax];
      if (idx[ax] < shape[ax]) break;
      from -= step[ax] * shape[ax];
      idx[ax] = 0;
    }
  }
}

export function flip(out: Tensor, x: Tensor, outer: number, dim: number, inner: number): void {
  const src = rawOf(x);
  const dst = rawOf(out);
  for (let o = 0; o < outer; o++)
    for (let i = 0; i < dim; i++) {
      const from = (o * dim + i) * inner;
      dst.set(src.subarray(from, from + inner), (o * dim + dim - 1 - i) * inner);
    }
}

export function reduce(
  out: Tensor,
  op: 'sum' | 'mean' | 'max',
  x: Tensor,
  outer: number,
  dim: number,
  inner: number,
): void {
  const src = f32Of(x);
  const o = f32Out(out);
  for (let a = 0; a < outer; a++)
    for (let c = 0; c < inner; c++) {
      let acc = op === 'max' ? Number.NEGATIVE_INFINITY : 0;
      for (let i = 0; i < dim; i++) {
        const v = src[(a * dim + i) * inner + c];
        acc = op === 'max' ? (v > acc ? v : acc) : acc + v;
      }
      o.data[a * inner + c] = op === 'mean' ? acc / dim : acc;
    }
  o.commit();
}

export function argmax(out: Tensor, x: Tensor, rows: number, dim: number): void {
  const src = f32Of(x);
  const dst = rawOf(out) as Int32Array;
  for (let r = 0; r < rows; r++) dst[r] = argmaxRow(src, r * dim, dim);
}

/** First index of the maximum of src[off, off+dim) (NaN never wins). */
export function argmaxRow(src: ArrayLike<number>, off: number, dim: number): number {
  let best = 0;
  let bv = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < dim; i++)
    if (src[off + i] > bv) {
      bv = src[off + i];
      best = i;
    }
  return best;
}

export function embeddingBag(out: Tensor, table: Tensor, ids: Tensor, offsets: Tensor, mean: boolean): void {
  const src = f32Of(table);
  const { data, commit } = f32Out(out);
  const idv = rawOf(ids) as Int32Array;
  const off = rawOf(offsets) as Int32Array;
  const [n, dim] = table.shape;
  const acc = new Float32Array(dim);
  for (let r = 0; r + 1 < off.length; r++) {
    const [from, to] = [off[r], off[r + 1]];
    if (!(from >= 0 && from <= to && to <= idv.length))
      throw new ShapeError(`embeddingBag: bag ${r} spans [${from}, ${to}), outside the ${idv.length} ids`);
    acc.fill(0);
    for (let j = from; j < to; j++) {
      const id = idv[j];
      if (id < 0 || id >= n) throw new ShapeError(`embeddingBag: id ${id} is outside the table's ${n} rows`);
      for (let c = 0, o = id * dim; c < dim; c++) acc[c] += src[o + c];
    }
    const count = mean && to > from ? to - from : 1; // f32 sum, then a correctly rounded division, as CUDA
    for (let c = 0; c < dim; c++) data[r * dim + c] = acc[c] / count;
  }
  commit();
}

export function embedding(out: Tensor, table: Tensor, ids: Tensor): void {
  const src = rawOf(table);
  const dst = rawOf(out);
  const idv = rawOf(ids) as Int32Array;
  const [vocab, dim] = table.shape;
  for (let i = 0; i < idv.length; i++) {
    const id = idv[i];
    if (id < 0 || id >= vocab)
      throw new ShapeError(`embedding: id ${id} is outside the vocabulary of ${vocab}`);
    dst.set(src.subarray(id * dim, (id + 1) * dim), i * dim);
  }
}
