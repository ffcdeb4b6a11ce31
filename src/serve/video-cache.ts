/**
 * The encoded videos kept between requests, so a second question about the same video skips decoding and
 * encoding. Keyed by the file's content hash plus the sampling settings (the same bytes sampled
 * differently are a different encoding). Least recently used entries are dropped past `maxEntries` or
 * `maxBytes`; a handle still in use by a request is freed only when that request lets go of it. Two
 * requests for the same video at once share one encoding. The server's memory ledger reads what the handles
 * hold (kept, or evicted and still in use) and evicts unused ones, least recently used first, to make room,
 * and what a question over a kept video holds (`questionCost`), so that a cache hit is admitted with it.
 */
import type { VideoHandle } from '../facade/engine.js';
import type { QuestionCost } from '../models/family.js';

interface Entry {
  key: string;
  handle?: VideoHandle;
  pending?: Promise<VideoHandle>;
  /** A question's cost as planned before the encode (the handle's replaces it once encoded). */
  question?: QuestionCost;
  users: number;
  evicted: boolean;
}

export interface Lease {
  handle: VideoHandle;
  /** True when the handle came from the cache (no decoding or encoding was done for this request). */
  hit: boolean;
  release(): void;
}

export class VideoCache {
  private readonly entries = new Map<string, Entry>(); // insertion order = recency
  /** Evicted entries a request still uses (their memory is held until it lets go). */
  private readonly retained = new Set<Entry>();
  /** Called when a handle is freed (the server's queue re-checks what fits). */
  onFree: () => void = () => {};

  constructor(
    readonly maxEntries: number,
    readonly maxBytes = Number.POSITIVE_INFINITY,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** Bytes the kept encoded videos hold. */
  get bytes(): number {
    let n = 0;
    for (const e of this.entries.values()) n += e.handle?.bytes ?? 0;
    return n;
  }

  /** Bytes every encoded video the cache handed out holds: kept, or evicted but still in use. */
  get heldBytes(): number {
    let n = this.bytes;
    for (const e of this.retained) n += e.handle?.bytes ?? 0;
    return n;
  }

  /** Bytes of the kept videos no request uses (what `evictUnused` can free). */
  get evictableBytes(): number {
    let n = 0;
    for (const e of this.entries.values()) if (e.handle && e.users === 0) n += e.handle.bytes;
    return n;
  }

  /**
   * Holds a kept (or being encoded) video so that it is not evicted, e.g. while its request waits to be
   * admitted; returns the function that lets go, or null when `key` is not kept.
   */
  pin(key: string): (() => void) | null {
    const e = this.entries.get(key);
    if (!e) return null;
    e.users++;
    let pinned = true;
    return () => {
      if (!pinned) return;
      pinned = false;
      e.users--;
      if (e.evicted && e.users === 0) this.free(e);
    };
  }

  /** Frees unused kept videos, least recently used first, until `bytes` are freed or none is left. */
  evictUnused(bytes: number): void {
    let freed = 0;
    for (const e of [...this.entries.values()]) {
      if (freed >= bytes) return;
      if (!e.handle || e.users) continue;
      freed += e.handle.bytes;
      this.drop(e);
    }
  }

  /** What a question over the kept (or being encoded) video `key` holds; undefined when unknown. */
  questionCost(key: string): QuestionCost | undefined {
    const e = this.entries.get(key);
    return e?.handle ? e.handle.questionBytes : e?.question;
  }

  /** The video `key`, encoded by `encode` when not kept (`question`: its plan's question cost meanwhile). */
  async lease(key: string, encode: () => Promise<VideoHandle>, question?: QuestionCost): Promise<Lease> {
    let entry = this.entries.get(key);
    const hit = entry !== undefined;
    if (entry) {
      this.entries.delete(key);
      this.entries.set(key, entry); // most recent
    } else {
      entry = { key, users: 0, evicted: false, question };
      const created = entry;
      created.pending = encode().then(
        (h) => {
          created.handle = h;
          created.pending = undefined;
          return h;
        },
        (e) => {
          this.entries.delete(key); // a failed encoding is not cached
          this.retained.delete(created);
          throw e;
        },
      );
      if (this.maxEntries > 0) this.entries.set(key, entry);
      else {
        entry.evicted = true;
        this.retained.add(entry); // held while its request uses it
      }
    }
    entry.users++;
    let handle: VideoHandle;
    try {
      handle = entry.handle ?? (await entry.pending!);
    } catch (e) {
      entry.users--;
      throw e;
    }
    this.evict();
    const e = entry;
    let released = false;
    return {
      handle,
      hit,
      release: () => {
        if (released) return;
        released = true;
        e.users--;
        if (e.evicted && e.users === 0) this.free(e);
      },
    };
  }

  private evict(): void {
    for (const e of this.entries.values()) {
      if (this.entries.size <= this.maxEntries && this.bytes <= this.maxBytes) return;
      if (!e.handle) continue; // still encoding
      this.drop(e);
    }
  }

  /** Evicts an entry: freed now when no request uses it, else when the last one lets go. */
  private drop(e: Entry): void {
    if (this.entries.get(e.key) === e) this.entries.delete(e.key);
    e.evicted = true;
    if (e.users === 0) this.free(e);
    else this.retained.add(e);
  }

  private free(e: Entry): void {
    this.retained.delete(e);
    if (!e.handle) return;
    e.handle.dispose();
    this.onFree();
  }

  clear(): void {
    for (const e of [...this.entries.values()]) this.drop(e);
  }
}
