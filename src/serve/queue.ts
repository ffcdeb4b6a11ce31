/**
 * Admission control for continuous batching: at most `concurrency` requests run on the model at once (their
 * decode steps are batched together, generate/batch.ts), and together they hold at most `budgetBytes` of
 * estimated per-request cache memory. A request that fits neither now waits in line (at most `maxQueue`
 * wait; admitted in arrival order); past that it is refused at once with 429 (retry later), and a request
 * whose estimate exceeds the whole budget gets 413, since waiting would never help. While the server shuts
 * down, new requests get 503.
 */
import { gib } from '../models/fit.js';
import { ApiError } from './errors.js';

interface Waiter {
  cost: number;
  go: () => void;
  fail: (e: unknown) => void;
}

export class RequestQueue {
  private running = 0;
  private reserved = 0;
  private readonly waiting: Waiter[] = [];
  private closed = false;

  constructor(
    readonly concurrency: number,
    readonly maxQueue: number,
    /** Cache memory the running requests may hold together (estimates); Infinity: no limit. */
    readonly budgetBytes = Number.POSITIVE_INFINITY,
  ) {}

  get stats() {
    return {
      running: this.running,
      queued: this.waiting.length,
      concurrency: this.concurrency,
      max_queue: this.maxQueue,
      reserved_bytes: this.reserved,
      budget_bytes: Number.isFinite(this.budgetBytes) ? this.budgetBytes : null,
    };
  }

  /**
   * Waits for a slot with `cost` bytes of budget (or throws 413/429/503, or the signal's reason); returns the
   * function that frees both.
   */
  async acquire(signal?: AbortSignal, cost = 0): Promise<() => void> {
    if (this.closed)
      throw new ApiError(503, 'the server is shutting down', 'server_error', null, 'unavailable', 5);
    if (cost > this.budgetBytes)
      throw new ApiError(
        413,
        `this request needs about ${gib(cost)} of cache memory but the server has ${gib(this.budgetBytes)} for all requests; ask for fewer max_tokens, a shorter conversation or a video with fewer frames`,
        'invalid_request_error',
        'max_tokens',
        'request_too_large',
      );
    if (this.waiting.length || !this.fits(cost)) {
      if (this.waiting.length >= this.maxQueue)
        throw new ApiError(
          429,
          this.running < this.concurrency
            ? `the server is busy: this request needs about ${gib(cost)} of cache memory and ${gib(this.budgetBytes - this.reserved)} of ${gib(this.budgetBytes)} is free (${this.running} running, ${this.waiting.length} queued); retry later`
            : `the server is busy (${this.running} running, ${this.waiting.length} queued); retry later`,
          'rate_limit_error',
          null,
          'queue_full',
          1,
        );
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
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.running--;
      this.reserved -= cost;
      this.admit();
    };
  }

  private fits(cost: number): boolean {
    return this.running < this.concurrency && this.reserved + cost <= this.budgetBytes;
  }

  private take(cost: number): void {
    this.running++;
    this.reserved += cost;
  }

  /** Admits waiters in arrival order while the first one fits. */
  private admit(): void {
    while (this.waiting.length && this.fits(this.waiting[0].cost)) {
      const next = this.waiting.shift()!;
      this.take(next.cost);
      next.go();
    }
  }

  close(): void {
    this.closed = true;
    for (const w of this.waiting.splice(0))
      w.fail(new ApiError(503, 'the server is shutting down', 'server_error', null, 'unavailable', 5));
  }
}
