/**
 * Pre-allocated key/value cache, one [1, capacity, kvHeads, headDim] pair per layer. New keys are written in
 * place (`ops.writeSlice`) and attention reads the first `length` rows (`kvLength`), so a decoding step never
 * re-concatenates the whole history. When a write would overflow, capacity doubles (one copy).
 */
import type { Backend } from '../runtime/backend.js';
import type { DType } from '../runtime/dtype.js';
import * as ops from '../runtime/ops.js';
import { keep } from '../runtime/scope.js';
import type { Tensor } from '../runtime/tensor.js';

export interface KVCacheOptions {
  layers: number;
  kvHeads: number;
  headDim: number;
  dtype: DType;
  /** Initial capacity in tokens (grows on demand). */
  capacity?: number;
}

export class KVCache implements Disposable {
  #k: Tensor[];
  #v: Tensor[];
  #capacity: number;
  /** Tokens committed so far (the same for every layer). */
  length = 0;

  constructor(
    readonly backend: Backend,
    readonly options: KVCacheOptions,
  ) {
    this.#capacity = Math.max(1, options.capacity ?? 256);
    this.#k = [];
    this.#v = [];
    for (let i = 0; i < options.layers; i++) {
      this.#k.push(this.#alloc(this.#capacity));
      this.#v.push(this.#alloc(this.#capacity));
    }
  }

  get capacity(): number {
    return this.#capacity;
  }

  /** Bytes held by the cache tensors. */
  get bytes(): number {
    return this.#k.reduce((n, t, i) => n + t.bytes + this.#v[i].bytes, 0);
  }

  #alloc(capacity: number): Tensor {
    const { kvHeads, headDim, dtype } = this.options;
    // The cache outlives any tidy() scope it grows in.
    return keep(ops.empty(this.backend, [1, capacity, kvHeads, headDim], dtype));
  }

  /** Makes room for `n` more tokens after `length`. */
  reserve(n: number): void {
    const need = this.length + n;
    if (need <= this.#capacity) return;
    let cap = this.#capacity;
    while (cap < need) cap *= 2;
    const grow = (old: Tensor) => {
      const t = this.#alloc(cap);
      if (this.length) {
        const used = ops.slice(old, 1, 0, this.length);
        ops.writeSlice(t, used, 1, 0);
        used.dispose();
      }
      old.dispose();
      return t;
    };
    this.#k = this.#k.map(grow);
    this.#v = this.#v.map(grow);
    this.#capacity = cap;
  }

  /**
   * Writes layer `layer`'s keys/values [1, n, kvHeads, headDim] at `length` (not yet committed) and returns the
   * cache tensors to attend over with kvLength = length + n.
   */
  write(layer: number, k: Tensor, v: Tensor): { k: Tensor; v: Tensor; kvLength: number } {
    const n = k.shape[1];
    this.reserve(n);
    ops.writeSlice(this.#k[layer], k, 1, this.length);
    ops.writeSlice(this.#v[layer], v, 1, this.length);
    return { k: this.#k[layer], v: this.#v[layer], kvLength: this.length + n };
  }

  /** Marks `n` written tokens as part of the history (after every layer wrote them). */
  commit(n: number): void {
    this.length += n;
  }

  [Symbol.dispose](): void {
    for (const t of [...this.#k, ...this.#v]) t.dispose();
  }
}
