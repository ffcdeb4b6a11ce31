/**
 * The encoded videos kept between requests, so a second question about the same video skips decoding and
 * encoding. Keyed by the file's content hash plus the sampling settings (the same bytes sampled
 * differently are a different encoding). Least recently used entries are dropped past `maxEntries` or
 * `maxBytes`; a handle still in use by a request is freed only when that request lets go of it. Two
 * requests for the same video at once share one encoding.
 */
import type { VideoHandle } from '../facade/engine.js';

interface Entry {
  key: string;
  handle?: VideoHandle;
  pending?: Promise<VideoHandle>;
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

  constructor(
    readonly maxEntries: number,
    readonly maxBytes = Number.POSITIVE_INFINITY,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  get bytes(): number {
    let n = 0;
    for (const e of this.entries.values()) n += e.handle?.bytes ?? 0;
    return n;
  }

  async lease(key: string, encode: () => Promise<VideoHandle>): Promise<Lease> {
    let entry = this.entries.get(key);
    const hit = entry !== undefined;
    if (entry) {
      this.entries.delete(key);
      this.entries.set(key, entry); // most recent
    } else {
      entry = { key, users: 0, evicted: false };
      const created = entry;
      created.pending = encode().then(
        (h) => {
          created.handle = h;
          created.pending = undefined;
          return h;
        },
        (e) => {
          this.entries.delete(key); // a failed encoding is not cached
          throw e;
        },
      );
      if (this.maxEntries > 0) this.entries.set(key, entry);
      else entry.evicted = true;
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
        if (e.evicted && e.users === 0) e.handle?.dispose();
      },
    };
  }

  private evict(): void {
    for (const e of this.entries.values()) {
      if (this.entries.size <= this.maxEntries && this.bytes <= this.maxBytes) return;
      if (!e.handle) continue; // still encoding
      this.entries.delete(e.key);
      e.evicted = true;
      if (e.users === 0) e.handle.dispose();
    }
  }

  clear(): void {
    for (const e of this.entries.values()) {
      e.evicted = true;
      if (e.users === 0) e.handle?.dispose();
    }
    this.entries.clear();
  }
}
