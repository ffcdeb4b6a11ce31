/**
 * In-place writes seen while recording, per buffer (element ranges), so that backward can tell whether a
 * tensor it saved was overwritten afterwards (its gradient would then be wrong) without flagging writes
 * elsewhere in the same memory (a KV cache's later rows, another chunk of an output).
 */
import type { Buffer, Tensor } from '../runtime/tensor.js';

const writes = new WeakMap<Buffer, { lo: number; hi: number }[]>();

/** How many writes `b` has seen: a saved tensor remembers it. */
export const writeCount = (b: Buffer): number => writes.get(b)?.length ?? 0;

/** Notes an in-place write into dst by `op`: writeSlice's bounding element range, else all of dst. */
export function noteWrite(op: string, dst: Tensor, inputs: readonly (Tensor | null)[], attrs: object): void {
  let [lo, hi] = [dst.offset, dst.offset + dst.size];
  const a = attrs as { axis?: number; start?: number };
  const x = inputs[0];
  if (op === 'writeSlice' && x && a.axis !== undefined && a.start !== undefined) {
    const inner = dst.shape.slice(a.axis + 1).reduce((p, d) => p * d, 1);
    const outer = dst.shape.slice(0, a.axis).reduce((p, d) => p * d, 1);
    const dim = dst.shape[a.axis];
    lo = dst.offset + a.start * inner;
    hi = dst.offset + ((outer - 1) * dim + a.start + x.shape[a.axis]) * inner;
  }
  const log = writes.get(dst.buffer) ?? [];
  log.push({ lo, hi });
  writes.set(dst.buffer, log);
}

/** Whether a write after the first `since` ones overlapped t's elements. */
export function overwritten(t: Tensor, since: number): boolean {
  const log = writes.get(t.buffer) ?? [];
  for (let i = since; i < log.length; i++)
    if (log[i].lo < t.offset + t.size && t.offset < log[i].hi) return true;
  return false;
}
