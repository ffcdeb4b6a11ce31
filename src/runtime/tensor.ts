import type { Backend, Storage } from './backend.js';
import { BYTES_PER_ELEMENT, type DType, type RawArray, toF32 } from './dtype.js';
import { active } from './grad-hook.js';
import { TENSOR_BRAND, track } from './scope.js';
import { fmt, numel, type Shape, ShapeError } from './shape.js';

/** Reference-counted backend memory shared by a tensor and its views. */
export class Buffer {
  refs = 1;
  constructor(
    readonly backend: Backend,
    readonly storage: Storage,
  ) {}
  retain(): this {
    // A buffer at 0 has gone back to the backend: a new view of it would read memory that now belongs to
    // another tensor (on a GPU's caching allocator, and release it a second time). Never a user error.
    if (this.refs <= 0) throw new Error('internal: a view of a released buffer (use after free)');
    this.refs++;
    return this;
  }
  release(): void {
    if (this.refs <= 0) throw new Error('internal: a buffer released twice');
    if (--this.refs === 0) this.backend.release(this.storage);
  }
}

/**
 * An n-dimensional array on one backend. Always contiguous (row-major) from `offset` (in elements) into
 * its buffer; reshape and leading-axis slices are views that share the buffer. Memory is released
 * explicitly (`dispose`, `using`, or `tidy`), never left to the garbage collector.
 */
export class Tensor implements Disposable {
  readonly size: number;
  readonly [TENSOR_BRAND] = true;
  #disposed = false;

  constructor(
    readonly buffer: Buffer,
    readonly dtype: DType,
    readonly shape: Shape,
    readonly offset = 0,
  ) {
    this.size = numel(shape);
    track(this);
  }

  get backend(): Backend {
    return this.buffer.backend;
  }
  get storage(): Storage {
    return this.buffer.storage;
  }
  get rank(): number {
    return this.shape.length;
  }
  get bytes(): number {
    return this.size * BYTES_PER_ELEMENT[this.dtype];
  }
  get disposed(): boolean {
    return this.#disposed;
  }

  /** A view with another shape of the same number of elements; -1 infers one axis. */
  reshape(shape: readonly number[]): Tensor {
    this.assertLive('reshape');
    const s = [...shape];
    const hole = s.indexOf(-1);
    if (hole >= 0) {
      const rest = s.reduce((a, d, i) => (i === hole ? a : a * d), 1);
      s[hole] = rest === 0 ? 0 : this.size / rest;
    }
    if (numel(s) !== this.size || s.some((d) => !Number.isInteger(d) || d < 0))
      throw new ShapeError(`reshape: cannot view ${fmt(this.shape)} as ${fmt(shape)}`);
    const out = new Tensor(this.buffer.retain(), this.dtype, s, this.offset);
    if (active) active.record('reshape', [this], [out], {});
    return out;
  }

  /** A view of rows [start, end) along axis 0 (no copy). */
  narrow(start: number, end: number): Tensor {
    this.assertLive('narrow');
    const n = this.shape[0];
    if (this.rank === 0 || start < 0 || end > n || start > end)
      throw new ShapeError(`narrow: rows [${start}, ${end}) out of range for ${fmt(this.shape)}`);
    const row = this.size / (n || 1);
    const out = new Tensor(
      this.buffer.retain(),
      this.dtype,
      [end - start, ...this.shape.slice(1)],
      this.offset + start * row,
    );
    if (active) active.record('narrow', [this], [out], { start });
    return out;
  }

  /** Raw elements (bf16/f16 as 16-bit patterns). Waits for pending device work. */
  async raw(): Promise<RawArray> {
    this.assertLive('read');
    return this.backend.download(this);
  }

  /** Values as f32 (floats) or their integer array (i32/u8). */
  async data(): Promise<Float32Array | Int32Array | Uint8Array> {
    const r = await this.raw();
    if (this.dtype === 'bf16' || this.dtype === 'f16') return toF32(this.dtype, r);
    return r as Float32Array | Int32Array | Uint8Array;
  }

  /** Values as a plain number array (tests, small tensors). */
  async toArray(): Promise<number[]> {
    return Array.from(await this.data());
  }

  /** A scalar tensor's (or a one-element tensor's) value. */
  async item(): Promise<number> {
    if (this.size !== 1)
      throw new ShapeError(`item: tensor ${fmt(this.shape)} has ${this.size} elements, not 1`);
    return (await this.data())[0];
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.buffer.release();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  assertLive(what: string): void {
    if (this.#disposed && !active?.revived(this))
      throw new Error(`${what}: tensor ${fmt(this.shape)} ${this.dtype} was already disposed`);
  }

  toString(): string {
    return `Tensor(${this.backend.name}, ${this.dtype}, ${fmt(this.shape)})`;
  }
}
