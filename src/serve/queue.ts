/**
 * Admission control: at most `concurrency` requests run on the model at once, at most `maxQueue` wait;
 * beyond that a request is refused at once with 429 (retry later) rather than left to time out. While the
 * server shuts down, new requests get 503.
 */
import { ApiError } from './errors.js';

export class RequestQueue {
  private running = 0;
  private readonly waiting: Array<{ go: () => void; fail: (e: unknown) => void }> = [];
  private closed = false;

  constructor(
    readonly concurrency: number,
    readonly maxQueue: number,
  ) {}

  get stats() {
    return {
      running: this.running,
      queued: this.waiting.length,
      concurrency: this.concurrency,
      max_queue: this.maxQueue,
    };
  }

  /** Waits for a slot (or throws 429/503, or the signal's reason); returns the function that frees it. */
  async acquire(signal?: AbortSignal): Promise<() => void> {
    if (this.closed)
      throw new ApiError(503, 'the server is shutting down', 'server_error', null, 'unavailable', 5);
    if (this.running >= this.concurrency) {
      if (this.waiting.length >= this.maxQueue)
        throw new ApiError(
          429,
          `the server is busy (${this.running} running, ${this.waiting.length} queued); retry later`,
          'rate_limit_error',
          null,
          'queue_full',
          1,
        );
      await new Promise<void>((go, fail) => {
        const entry = { go, fail };
        this.waiting.push(entry);
        signal?.addEventListener(
          'abort',
          () => {
            const i = this.waiting.indexOf(entry);
            if (i >= 0) this.waiting.splice(i, 1);
            fail(signal.reason);
          },
          { once: true },
        );
      });
    } else this.running++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next)
        next.go(); // the slot passes straight to the next request
      else this.running--;
    };
  }

  close(): void {
    this.closed = true;
    for (const w of this.waiting.splice(0))
      w.fail(new ApiError(503, 'the server is shutting down', 'server_error', null, 'unavailable', 5));
  }
}
