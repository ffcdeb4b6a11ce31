/**
 * Rows that grow at one end and may be dropped at the other (a live video's cross-attention keys or values):
 * one [capacity, ...row] buffer holding rows [start, end). Appending writes after `end`; when the buffer is
 * full the live rows move to a new buffer with half again their room, so appending costs O(new rows)
 * amortised and the memory stays within 1.5× the rows held plus what is appended at once. `view()` is a
 * zero-copy view of the live rows: rows it covers are never written again (a move allocates a new buffer and
 * the view keeps the old one alive), so a view taken for a question stays valid while appending goes on.
 */
import * as ops from '../runtime/ops.js';
import { keep } from '../runtime/scope.js';
import type { Tensor } from '../runtime/tensor.js';

export class GrowingRows implements Disposable {
  #buf: Tensor | null = null;
  #start = 0;
  #end = 0;

  /** Rows held. */
  get length(): number {
    return this.#end - this.#start;
  }

  /** Bytes of the buffer (its whole capacity). */
  get bytes(): number {
    return this.#buf?.bytes ?? 0;
  }

  /** Appends x [n, ...row] (copied; all appends have the same row shape and dtype). */
  append(x: Tensor): void {
    const n = x.shape[0];
    const buf = this.#buf;
    if (!buf || this.#end + n > buf.shape[0]) {
      const live = this.length;
      const next = keep(ops.empty(x.backend, [Math.ceil((live + n) * 1.5), ...x.shape.slice(1)], x.dtype));
      if (buf && live) {
        using rows = buf.narrow(this.#start, this.#end);
        ops.writeSlice(next, rows, 0, 0);
      }
      buf?.dispose();
      this.#buf = next;
      this.#start = 0;
      this.#end = live;
    }
    ops.writeSlice(this.#buf!, x, 0, this.#end);
    this.#end += n;
  }

  /** Forgets the oldest `n` rows (their memory is reused at the next move). */
  dropFront(n: number): void {
    this.#start += Math.min(n, this.length);
  }

  /** A view [length, ...row] of the rows held (the caller disposes it); null before any row. */
  view(): Tensor | null {
    return this.#buf && this.length ? this.#buf.narrow(this.#start, this.#end) : null;
  }

  [Symbol.dispose](): void {
    this.#buf?.dispose();
    this.#buf = null;
  }
}
