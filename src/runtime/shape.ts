/** Shape helpers shared by the op front-end and the backends. */
export type Shape = readonly number[];

export const numel = (shape: Shape): number => shape.reduce((a, b) => a * b, 1);

/** Row-major strides of a contiguous tensor, in elements. */
export function stridesOf(shape: Shape): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export const fmt = (shape: Shape): string => `[${shape.join(', ')}]`;

/** Normalises a possibly negative axis, throwing a ShapeError when it is out of range. */
export function axisOf(axis: number, rank: number, what: string): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new ShapeError(`${what}: axis ${axis} is out of range for rank ${rank}`);
  return a;
}

/** Numpy broadcasting of two shapes; throws a ShapeError naming both when they do not broadcast. */
export function broadcastShapes(a: Shape, b: Shape, what: string): number[] {
  const r = Math.max(a.length, b.length);
  const out = new Array<number>(r);
  for (let i = 0; i < r; i++) {
    const da = a[a.length - r + i] ?? 1;
    const db = b[b.length - r + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1)
      throw new ShapeError(`${what}: shapes ${fmt(a)} and ${fmt(b)} do not broadcast`);
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Strides (elements) to read `shape` as if broadcast to `out` (0 on broadcast axes). */
export function broadcastStrides(shape: Shape, out: Shape): number[] {
  const own = stridesOf(shape);
  const r = out.length;
  const s = new Array<number>(r).fill(0);
  for (let i = 0; i < shape.length; i++) {
    const j = r - shape.length + i;
    s[j] = shape[i] === 1 && out[j] !== 1 ? 0 : own[i];
  }
  return s;
}

/** Raised for impossible shapes or arguments; names the op and the shapes involved. */
export class ShapeError extends Error {
  override name = 'ShapeError';
}
