/**
 * The per-layer decoding cache of a hybrid model: an attention layer keeps keys/values, a Mamba-2 layer its
 * conv and SSM state. K/V live in pre-allocated [1, capacity, kvHeads, headDim] buffers: new keys are written
 * in place and attention reads the first `length` rows, so a step never re-concatenates the history; when a
 * write would overflow, capacity doubles (one copy).
 *
 * `snapshot()` freezes the cache at its length, so that many continuations (one per question) can start from
 * one prefix (system prompt + video). A snapshot shares the K/V buffers (rows below its length are never
 * written again) and copies the Mamba states (small, and updated in place by steps). `resume()` gives a cache
 * continuing from a snapshot: it writes its own tokens into the shared buffers' free rows when no other
 * continuation is writing there, and otherwise into buffers of its own while the prefix stays shared
 * (segmented): a one-token step reads the prefix in place, a longer write attends over a joined copy of one
 * layer at a time.
 */
import type { Backend } from '../runtime/backend.js';
import { BYTES_PER_ELEMENT, type DType } from '../runtime/dtype.js';
import * as ops from '../runtime/ops.js';
import { keep } from '../runtime/scope.js';
import type { Tensor } from '../runtime/tensor.js';
import { disposeState, type Mamba2State } from './mamba2.js';

export type CacheLayer = { kind: 'attention'; kvHeads: number; headDim: number } | { kind: 'mamba' };

export interface HybridCacheOptions {
  layers: readonly CacheLayer[];
  /** dtype of the keys/values (Mamba states keep the dtypes the mixer gives them). */
  dtype: DType;
  /** Initial capacity in tokens (grows on demand). */
  capacity?: number;
}

/** `n` attention layers of the same shape (a plain transformer decoder). */
export const attentionLayers = (n: number, kvHeads: number, headDim: number): CacheLayer[] =>
  Array.from({ length: n }, () => ({ kind: 'attention', kvHeads, headDim }));

/** K/V bytes one token adds to a cache of these layers. */
export const kvBytesPerToken = (layers: readonly CacheLayer[], dtype: DType): number =>
  layers.reduce(
    (n, l) => n + (l.kind === 'attention' ? 2 * l.kvHeads * l.headDim * BYTES_PER_ELEMENT[dtype] : 0),
    0,
  );

/** The K/V buffers of every attention layer (null for Mamba layers), shared by a cache and its snapshots. */
export class KVBuffers {
  #refs = 1;
  /** The one cache allowed to write rows at or after `frozen`. */
  writer: HybridCache | null = null;
  /** Rows below this belong to a snapshot and are never written again. */
  frozen = 0;

  constructor(
    readonly k: (Tensor | null)[],
    readonly v: (Tensor | null)[],
    readonly capacity: number,
  ) {}

  get bytes(): number {
    return [...this.k, ...this.v].reduce((n, t) => n + (t?.bytes ?? 0), 0);
  }

  acquire(): this {
    this.#refs++;
    return this;
  }

  release(holder: HybridCache | null): void {
    if (this.writer === holder) this.writer = null;
    if (--this.#refs === 0) for (const t of [...this.k, ...this.v]) t?.dispose();
  }
}

const cloneState = (s: Mamba2State): Mamba2State => ({
  conv: keep(ops.clone(s.conv)),
  ssm: keep(ops.clone(s.ssm)),
});

export class HybridCache implements Disposable {
  #buf: KVBuffers;
  /** A segmented cache's prefix: the first `length` rows of buffers another continuation writes into. */
  #base: { buf: KVBuffers; length: number } | null = null;
  #states: (Mamba2State | null)[];
  /** Whether `#buf` is a snapshot's, resumed (this cache writes after the snapshot's rows). */
  #resumed = false;
  /** Tokens committed so far (the same for every layer). */
  length: number;

  constructor(
    readonly backend: Backend,
    readonly options: HybridCacheOptions,
    /** Continue from a snapshot (see `CacheSnapshot.resume`). */
    from: CacheSnapshot | null = null,
  ) {
    this.length = from?.length ?? 0;
    this.#states = from ? from.states.map((s) => s && cloneState(s)) : options.layers.map(() => null);
    if (from) {
      this.#buf = from.buffers.acquire();
      this.#resumed = true;
    } else {
      this.#buf = this.#alloc(Math.max(1, options.capacity ?? 256));
      this.#buf.writer = this;
    }
  }

  get capacity(): number {
    return this.#offset + this.#buf.capacity;
  }

  /** Bytes held: the K/V buffers (shared ones counted in full) and the Mamba states. */
  get bytes(): number {
    return (this.#base?.buf.bytes ?? 0) + this.#buf.bytes + statesBytes(this.#states);
  }

  /** Position of the own buffers' first row: the shared prefix's length when segmented, else 0. */
  get #offset(): number {
    return this.#base?.length ?? 0;
  }

  #alloc(capacity: number): KVBuffers {
    // The cache outlives any tidy() scope it grows in.
    const make = (l: CacheLayer) =>
      l.kind === 'attention'
        ? keep(ops.empty(this.backend, [1, capacity, l.kvHeads, l.headDim], this.options.dtype))
        : null;
    return new KVBuffers(this.options.layers.map(make), this.options.layers.map(make), capacity);
  }

  /**
   * Makes room for `n` more tokens after `length`: in the current buffers when this cache may write there;
   * when another continuation writes into the buffers this one resumed, in buffers of its own for its tokens
   * only, reading the prefix from the shared ones (segmented: no copy of the prefix); likewise when this one
   * writes after a snapshot's rows and outgrows the room there (its rows move, the snapshot's stay shared);
   * else (growing) in new buffers with the own rows copied, capacity doubled.
   */
  reserve(n: number): void {
    const buf = this.#buf;
    const off = this.#offset;
    const need = this.length - off + n;
    if (buf.writer === null && this.length - off >= buf.frozen) buf.writer = this;
    if (buf.writer === this && need <= buf.capacity) return;
    if (buf.writer !== this && !this.#base && this.length) {
      // Keep the reference to the shared buffers as the base.
      this.#base = { buf, length: this.length };
      this.#buf = this.#alloc(Math.max(1, n));
      this.#resumed = false;
      this.#buf.writer = this;
      return;
    }
    if (buf.writer === this && !this.#base && this.#resumed) {
      // Copying a snapshot's long prefix to grow would hold it twice: keep it shared as the base, own rows
      // apart. (A cache that took its own snapshots, e.g. a live video's, grows by copying: it stays whole.)
      const own = this.length - buf.frozen;
      const next = this.#alloc(Math.max(1, 2 * own, own + n));
      copyRows(buf, next, own, 0, buf.frozen);
      next.writer = this;
      buf.writer = null; // its rows after the snapshot's are free for another continuation
      this.#base = { buf, length: buf.frozen };
      this.#buf = next;
      this.#resumed = false;
      return;
    }
    let cap = Math.max(1, Math.min(need, buf.capacity));
    while (cap < need) cap *= 2;
    const next = this.#alloc(cap);
    copyRows(buf, next, this.length - off);
    next.writer = this;
    buf.release(this);
    this.#buf = next;
    this.#resumed = false;
  }

  /**
   * Writes attention layer `layer`'s keys/values [1, n, kvHeads, headDim] at `length` (not yet committed) and
   * returns K/V to attend over with kvLength = length + n (a segmented cache gives a temporary joined copy,
   * freed with the caller's scope).
   */
  write(
    layer: number,
    k: Tensor,
    v: Tensor,
    /** One token's k‖v as one block [2, kvHeads·headDim]: both rows written in one call. */
    kv: Tensor | null = null,
  ): { k: Tensor; v: Tensor; kvLength: number } {
    const n = k.shape[1];
    const room = this.room(layer, n);
    if (kv && n === 1)
      ops.scatterRows(
        kv,
        [room.k, room.v].map((dst) => ({ dst, at: room.at })),
      );
    else {
      ops.writeSlice(room.k, k, 1, room.at);
      ops.writeSlice(room.v, v, 1, room.at);
    }
    const kvLength = this.length + n;
    const p = room.prefix;
    if (!p) return { k: room.k, v: room.v, kvLength };
    const join = (pre: Tensor, own: Tensor) =>
      ops.concat([ops.slice(pre, 1, 0, p.length), ops.slice(own, 1, 0, room.at + n)], 1);
    return { k: join(p.k, room.k), v: join(p.v, room.v), kvLength };
  }

  /**
   * Attention layer `layer`'s K/V with room for `n` more tokens (the caller writes them): the own buffers and
   * the row `at` where position `length` goes, and the shared prefix (its first `length` rows come before
   * the own rows) when segmented.
   */
  room(
    layer: number,
    n: number,
  ): { k: Tensor; v: Tensor; at: number; prefix: { k: Tensor; v: Tensor; length: number } | null } {
    this.reserve(n);
    const [k, v] = [this.#buf.k[layer], this.#buf.v[layer]];
    if (!k || !v) throw new TypeError(`cache layer ${layer} is a Mamba layer, not attention`);
    const b = this.#base;
    return {
      k,
      v,
      at: this.length - this.#offset,
      prefix: b ? { k: b.buf.k[layer]!, v: b.buf.v[layer]!, length: b.length } : null,
    };
  }

  /** Joins a segmented cache's prefix and own rows into buffers of its own (before a snapshot shares them). */
  #flatten(): void {
    const b = this.#base;
    if (!b) return;
    const next = this.#alloc(this.length + this.#buf.capacity - (this.length - b.length));
    copyRows(b.buf, next, b.length);
    copyRows(this.#buf, next, this.length - b.length, b.length);
    next.writer = this;
    b.buf.release(this);
    this.#buf.release(this);
    this.#buf = next;
    this.#resumed = false;
    this.#base = null;
  }

  /** Mamba layer `layer`'s state after `length` tokens, or null before any (zeros). Steps update it in place. */
  mambaState(layer: number): Mamba2State | null {
    if (this.options.layers[layer]?.kind !== 'mamba')
      throw new TypeError(`cache layer ${layer} is not a Mamba layer`);
    return this.#states[layer];
  }

  /** Replaces Mamba layer `layer`'s state (the cache takes ownership of `state`). */
  setMambaState(layer: number, state: Mamba2State): void {
    const old = this.mambaState(layer);
    keep(state.conv);
    keep(state.ssm);
    this.#states[layer] = state;
    if (old && old !== state) disposeState(old);
  }

  /** Marks `n` written tokens as part of the history (after every layer wrote them). */
  commit(n: number): void {
    this.length += n;
  }

  /** Freezes the cache at its length (see the module comment); this cache goes on unchanged. */
  snapshot(): CacheSnapshot {
    this.#flatten();
    this.#buf.frozen = Math.max(this.#buf.frozen, this.length);
    return new CacheSnapshot(
      this.backend,
      this.options,
      this.#buf.acquire(),
      this.length,
      this.#states.map((s) => s && cloneState(s)),
    );
  }

  [Symbol.dispose](): void {
    this.#base?.buf.release(this);
    this.#buf.release(this);
    for (const s of this.#states) if (s) disposeState(s);
  }
}

/** Copies `rows` rows from row `from` of every attention layer of `src` into `dst` from row `at`. */
function copyRows(src: KVBuffers, dst: KVBuffers, rows: number, at = 0, from = 0): void {
  if (!rows) return;
  for (const [i, t] of src.k.entries()) {
    if (!t) continue;
    for (const [a, b] of [
      [t, dst.k[i]!],
      [src.v[i]!, dst.v[i]!],
    ]) {
      const used = ops.slice(a, 1, from, from + rows);
      ops.writeSlice(b, used, 1, at);
      used.dispose();
    }
  }
}

/** A cache frozen at `length` tokens; `resume` continues from it any number of times. */
export class CacheSnapshot implements Disposable {
  constructor(
    readonly backend: Backend,
    readonly options: HybridCacheOptions,
    readonly buffers: KVBuffers,
    readonly length: number,
    readonly states: readonly (Mamba2State | null)[],
  ) {}

  /** Bytes held: the K/V buffers (shared with the cache it was taken from) and the Mamba states. */
  get bytes(): number {
    return this.buffers.bytes + statesBytes(this.states);
  }

  /** A cache holding this snapshot's tokens, with room for `n` more; the snapshot is left unchanged. */
  resume(n = 0): HybridCache {
    const cache = new HybridCache(this.backend, this.options, this);
    cache.reserve(n);
    return cache;
  }

  [Symbol.dispose](): void {
    this.buffers.release(null);
    for (const s of this.states) if (s) disposeState(s);
  }
}

const statesBytes = (states: readonly (Mamba2State | null)[]): number =>
  states.reduce((n, s) => n + (s ? s.conv.bytes + s.ssm.bytes : 0), 0);

/** The caches of one forward pass: one sequence's, one per row (batched decoding: a token each), or none. */
export type Caches = HybridCache | readonly HybridCache[] | null;

/** Where layer `layer`'s K/V (or Mamba state) go: `cache` for one sequence, `rows` for a batched step. */
export interface LayerCaches {
  cache: { cache: HybridCache; layer: number } | null;
  rows: { cache: HybridCache; layer: number }[] | null;
}

export function layerCaches(caches: Caches, layer: number | null): LayerCaches {
  if (!caches || layer === null) return { cache: null, rows: null };
  if (caches instanceof HybridCache) return { cache: { cache: caches, layer }, rows: null };
  return { cache: null, rows: caches.map((cache) => ({ cache, layer })) };
}

/** Commits `n` tokens to one cache, or one token to each cache of a batched step. */
export function commitCaches(caches: Caches, n: number): void {
  if (caches instanceof HybridCache) caches.commit(n);
  else for (const c of caches ?? []) c.commit(1);
}
