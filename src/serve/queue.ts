/**
 * Admission control for continuous batching: at most `concurrency` requests run on the model at once (their
 * decode steps are batched together, generate/batch.ts), and what they reserve must fit the device memory the
 * ledger (ledger.ts) has free: a request's decode cache, its question over its video and, when its video is not
 * cached, the encode of its video, unused cached videos evicted first when that makes room. A request that fits neither now waits in
 * line (at most `maxQueue` wait; admitted in arrival order); past that it is refused at once with 429 (retry
 * later), and a request that would not fit even on an idle server gets 413, since waiting would never help.
 * While the server shuts down, new requests get 503.
 */
import { ApiError } from './errors.js';
import { type Cost, MemoryLedger, size, total } from './ledger.js';

interface Waiter {
  cost: Cost;
  go: () => void;
  fail: (e: unknown) => void;
}

/** A running request's hold: `release()` ends it; `encoded()` ends the encode's reservation alone. */
export interface Admission {
  release(): void;
  encoded(): void;
}

const NO_COST: Cost = { decode: 0, question: 0, encode: 0 };

export class RequestQueue {
  private running = 0;
  private readonly waiting: Waiter[] = [];
  private closed = false;
  private admitting = false;

  constructor(
    readonly concurrency: number,
    readonly maxQueue: number,
    /** The device memory account; the default has no budget (admission by concurrency alone). */
    readonly ledger = new MemoryLedger({
      budgetBytes: Number.POSITIVE_INFINITY,
      videoBytes: () => 0,
      evictableBytes: () => 0,
      evict: () => {},
    }),
  ) {}

  get stats() {
    return {
      running: this.running,
      queued: this.waiting.length,
      concurrency: this.concurrency,
      max_queue: this.maxQueue,
    };
  }

  /** Refuses with 429 at once when the line is full (before a request does any work, e.g. reading its video). */
  assertRoom(): void {
    if (this.waiting.length >= this.maxQueue && (this.waiting.length || this.running >= this.concurrency))
      throw this.busy();
  }

  /**
   * Waits for a slot with `cost` reserved in the ledger (or throws 413/429/503, or the signal's reason);
   * returns the hold that frees both.
   */
  async acquire(signal?: AbortSignal, cost: Cost = NO_COST): Promise<Admission> {
    if (this.closed)
      throw new ApiError(503, 'the server is shutting down', 'server_error', null, 'unavailable', 5);
    if (total(cost) > this.ledger.roomBytes)
      throw new ApiError(
        413,
        `this request needs ${this.ledger.describe(cost)}; ask for fewer max_tokens or a shorter conversation${cost.encode || cost.question ? ', a video with fewer frames (the request\'s "frames", or smaller "max_edge")' : ''}, or serve with a larger --memory-budget or on a card with more memory`,
        'invalid_request_error',
        cost.encode + cost.question > cost.decode ? 'frames' : 'max_tokens',
        'request_too_large',
      );
    if (this.waiting.length || !this.fits(cost)) {
      if (this.waiting.length >= this.maxQueue) throw this.busy(cost);
      await new Promise<void>((go, fail) => {
        const entry = { cost, go, fail };
        this.waiting.push(entry);
        signal?.addEventListener(
          'abort',
          () => {
            const i = this.waiting.indexOf(entry);
            if (i < 0) return;
            this.waiting.splice(i, 1);
            fail(signal.reason);
            this.admit(); // the next in line may fit where this one did not
          },
          { once: true },
        );
      });
    } else this.take(cost);
    let encoding = cost.encode > 0;
    let released = false;
    const admission: Admission = {
      encoded: () => {
        if (!encoding) return;
        encoding = false;
        this.ledger.release({ decode: 0, question: 0, encode: cost.encode });
        this.admit();
      },
      release: () => {
        if (released) return;
        admission.encoded();
        released = true;
        this.running--;
        this.ledger.release({ ...cost, encode: 0 });
        this.admit();
      },
    };
    return admission;
  }

  /** Re-checks the line: memory may have been freed outside the queue (a video evicted from the cache). */
  poke(): void {
    this.admit();
  }

  private busy(cost?: Cost): ApiError {
    const free = this.ledger.freeBytes;
    return new ApiError(
      429,
      cost && this.running < this.concurrency && Number.isFinite(free)
        ? `the server is busy: this request needs about ${size(total(cost))} of device memory and ${size(Math.max(0, free))} of ${size(this.ledger.budgetBytes)} is free (${this.running} running, ${this.waiting.length} queued); retry later`
        : `the server is busy (${this.running} running, ${this.waiting.length} queued); retry later`,
      'rate_limit_error',
      null,
      'queue_full',
      1,
    );
  }

  private fits(cost: Cost): boolean {
    return this.running < this.concurrency && this.ledger.makeRoom(total(cost));
  }

  private take(cost: Cost): void {
    this.running++;
    this.ledger.reserve(cost);
  }

  /**
   * Admits waiters in arrival order while the first one fits. Not re-entered: evicting a video to make room
   * frees memory, which pokes the queue from inside `fits`.
   */
  private admit(): void {
    if (this.admitting) return;
    this.admitting = true;
    try {
      while (this.waiting.length && this.fits(this.waiting[0].cost)) {
        const next = this.waiting.shift()!;
        this.take(next.cost);
        next.go();
      }
    } finally {
      this.admitting = false;
    }
  }

  close(): void {
    this.closed = true;
    for (const w of this.waiting.splice(0))
      w.fail(new ApiError(503, 'the server is shutting down', 'server_error', null, 'unavailable', 5));
  }
}
