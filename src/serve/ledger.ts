/**
 * The server's device memory as one account, for admission (queue.ts):
 *
 *   budget − weights − encoded videos − running requests' decode caches and questions − encodes in progress = free
 *
 * The weights are what the device held when the server started (measured); the encoded videos are what the
 * video cache's handles hold now, kept or still used by a request (measured from their tensors); a running
 * request reserves its decode cache by the model's estimate (`ModelInfo.decodeCache`, for its prompt's tokens
 * as the model counts them, `ChatEngine.promptTokens`, and max_tokens), what its question over its video holds
 * beyond that (`EncodePlan.questionBytes` / `VideoHandle.questionBytes`: TimeViper's and TSTAR's prefill over
 * every video token) until it ends, and, while its video is encoded, the encode's peak by the family's
 * estimate (`ChatEngine.planEncode`), which ends once the video is in the cache (then measured). Where the
 * backend counts its live tensors, that count is a floor under the sum: memory nobody accounted for still
 * keeps requests out (and shows as `unaccounted` in /metrics).
 */
import { gib } from '../models/fit.js';

/** Bytes for a message: GiB from 1 GiB up, else MiB. */
export const size = (bytes: number): string =>
  bytes >= 2 ** 30 ? gib(bytes) : `${Math.round(bytes / 2 ** 20)} MiB`;

export interface LedgerSources {
  /** Device memory the server may use in all, the weights included (Infinity: no memory admission). */
  budgetBytes: number;
  /** Bytes the encoded videos hold now (kept by the cache, or evicted but still used by a request). */
  videoBytes(): number;
  /** Bytes of kept videos no request uses (what eviction could free). */
  evictableBytes(): number;
  /** Frees unused kept videos, least recently used first, until at least `bytes` are freed or none is left. */
  evict(bytes: number): void;
}

/**
 * What a request reserves: its decode cache, its question over its video (both until it ends), and the encode
 * of its video when that is not cached (until it is).
 */
export interface Cost {
  decode: number;
  question: number;
  encode: number;
}

/** The bytes of a cost. */
export const total = (c: Cost): number => c.decode + c.question + c.encode;

export interface LedgerSnapshot {
  budget_bytes: number | null;
  weights_bytes: number;
  videos_bytes: number;
  decode_reserved_bytes: number;
  question_reserved_bytes: number;
  encode_reserved_bytes: number;
  /** The budget less the larger of the sum and the device's count (null without a budget). */
  free_bytes: number | null;
  /** Live tensors the backend counts beyond the sum (0 when the sum is larger, null when not counted). */
  unaccounted_bytes: number | null;
}

export class MemoryLedger {
  decodeBytes = 0;
  questionBytes = 0;
  encodeBytes = 0;
  weightsBytes = 0;
  #device: (() => number) | null = null;

  constructor(readonly sources: LedgerSources) {}

  /**
   * Starts counting the device: `deviceBytes` reads the backend's live bytes; what it holds now is the
   * weights unless `weightsBytes` says otherwise.
   */
  measure(deviceBytes: () => number, weightsBytes = deviceBytes()): void {
    this.#device = deviceBytes;
    this.weightsBytes = weightsBytes;
  }

  get budgetBytes(): number {
    return this.sources.budgetBytes;
  }

  /** The sum of the parts. */
  get accountedBytes(): number {
    return (
      this.weightsBytes + this.sources.videoBytes() + this.decodeBytes + this.questionBytes + this.encodeBytes
    );
  }

  get freeBytes(): number {
    return this.budgetBytes - Math.max(this.accountedBytes, this.#device?.() ?? 0);
  }

  /** What requests could have on an idle server: the budget less the weights. */
  get roomBytes(): number {
    return this.budgetBytes - this.weightsBytes;
  }

  /** Whether `bytes` fit now; when evicting unused videos would make them fit, evicts them (LRU first). */
  makeRoom(bytes: number): boolean {
    const free = this.freeBytes;
    if (bytes <= free) return true;
    if (bytes > free + this.sources.evictableBytes()) return false;
    this.sources.evict(bytes - free);
    return bytes <= this.freeBytes;
  }

  reserve(c: Cost): void {
    this.decodeBytes += c.decode;
    this.questionBytes += c.question;
    this.encodeBytes += c.encode;
  }

  release(c: Cost): void {
    this.decodeBytes -= c.decode;
    this.questionBytes -= c.question;
    this.encodeBytes -= c.encode;
  }

  /** The 413 message's numbers: what the request needs against the room an idle server has. */
  describe(c: Cost): string {
    const parts = [
      `decode cache ${size(c.decode)}`,
      ...(c.question ? [`a question over its video ${size(c.question)}`] : []),
      ...(c.encode ? [`encoding its video ${size(c.encode)}`] : []),
    ];
    return `about ${size(total(c))} (${parts.join(', ')}) but the server has ${size(this.roomBytes)} for requests (budget ${size(this.budgetBytes)} less ${size(this.weightsBytes)} of weights)`;
  }

  get snapshot(): LedgerSnapshot {
    const limited = Number.isFinite(this.budgetBytes);
    const accounted = this.accountedBytes;
    const device = this.#device?.();
    return {
      budget_bytes: limited ? this.budgetBytes : null,
      weights_bytes: this.weightsBytes,
      videos_bytes: this.sources.videoBytes(),
      decode_reserved_bytes: this.decodeBytes,
      question_reserved_bytes: this.questionBytes,
      encode_reserved_bytes: this.encodeBytes,
      free_bytes: limited ? this.freeBytes : null,
      unaccounted_bytes: device === undefined ? null : Math.max(0, device - accounted),
    };
  }
}
