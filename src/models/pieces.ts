/**
 * Work that can run in pieces (chunked prefill, family.ts `Pieces`) is written once as a generator that yields
 * between two pieces; these run it at once, or pausing at every yield.
 */

/** Runs `work` to its end without pausing. */
export function runAtOnce<T>(work: Generator<void, T>): T {
  for (;;) {
    const r = work.next();
    if (r.done) return r.value;
  }
}

/** Runs `work`, awaiting `pause` between pieces; an error while paused ends it (its `finally` blocks run). */
export async function runInPieces<T>(work: Generator<void, T>, pause: () => Promise<void>): Promise<T> {
  let finished = false;
  try {
    for (;;) {
      const r = work.next();
      if (r.done) {
        finished = true;
        return r.value;
      }
      await pause();
    }
  } finally {
    if (!finished) work.return(undefined as never);
  }
}
