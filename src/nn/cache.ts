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
 * continuation is writing there, and copies the prefix into buffers of its own otherwise.
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
  #states: (Mamba2State | null)[];
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
    if (from) this.#buf = from.buffers.acquire();
    else {
      this.#buf = this.#alloc(Math.max(1, options.capacity ?? 256));
      this.#buf.writer = this;
    }
  }

  get capacity(): number {
    return this.#buf.capacity;
  }

  /** Bytes held: the K/V buffers (shared ones counted in full) and the Mamba states. */
  get bytes(): number {
    return this.#buf.bytes + statesBytes(this.#states);
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
   * Makes room for `n` more tokens after `length`, in the current buffers when this cache may write there,
   * else in new buffers holding a copy of the first `length` rows: with capacity doubled when they were too
   * small, and just what is needed when another continuation writes into them.
   */
  reserve(n: number): void {
    const buf = this.#buf;
    const need = this.length + n;
    if (buf.writer === null && this.length >= buf.frozen) buf.writer = this;
    if (buf.writer === this && need <= buf.capacity) return;
    let cap = Math.max(1, Math.min(need, buf.capacity));
    while (cap < need) cap *= 2;
    const next = this.#alloc(cap);
    if (this.length)
      for (const [i, t] of buf.k.entries()) {
        if (!t) continue;
        for (const [src, dst] of [
          [t, next.k[i]!],
          [buf.v[i]!, next.v[i]!],
        ]) {
          const used = ops.slice(src, 1, 0, this.length);
          ops.writeSlice(dst, used, 1, 0);
          used.dispose();
        }
      }
    next.writer = this;
    buf.release(this);
    this.#buf = next;
  }

  /**
   * Writes attention layer `layer`'s keys/values [1, n, kvHeads, headDim] at `length` (not yet committed) and
   * returns the buffers to attend over with kvLength = length + n.
   */
  write(layer: number, k: Tensor, v: Tensor): { k: Tensor; v: Tensor; kvLength: number } {
    const n = k.shape[1];
    const room = this.room(layer, n);
    ops.writeSlice(room.k, k, 1, this.length);
    ops.writeSlice(room.v, v, 1, this.length);
    return { k: room.k, v: room.v, kvLength: this.length + n };
  }

  /** Attention layer `layer`'s K/V buffers with room for `n` more tokens at `length` (the caller writes them). */
  room(layer: number, n: number): { k: Tensor; v: Tensor } {
    this.reserve(n);
    const [k, v] = [this.#buf.k[layer], this.#buf.v[layer]];
    if (!k || !v) throw new TypeError(`cache layer ${layer} is a Mamba layer, not attention`);
    return { k, v };
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
    this.#buf.release(this);
    for (const s of this.#states) if (s) disposeState(s);
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
