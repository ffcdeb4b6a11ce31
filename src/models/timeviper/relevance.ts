/**
 * Where a TimeViper answer looked. Its LLM decides which video tokens survive (pdrop.ts): each stage keeps some
 * (uniformly, or those the last prompt token attends to most) and, with TransV, moves the dropped ones into the
 * instruction through a cross-attention. So each of the N original video tokens is worth 1 token of the
 * prompt: a token that reaches the last layers keeps its 1; the tokens a TransV stage drops share their count
 * in proportion to the last prompt token's transfer attention over them (they live on inside the instruction);
 * tokens a drop-only stage removes are worth 0. Without stages every token is kept and the worth is flat.
 */
import { ModelError } from '../../errors.js';

/** One stage of a prefill: the positions it kept (of its own input) and its TransV mass per dropped token. */
export interface StageTrace {
  kept: readonly number[];
  transfer: ArrayLike<number> | null;
}

/** Each original video token's worth (above), in prompt order; sums to N when every stage transfers. */
export function tokenWorth(count: number, stages: readonly StageTrace[]): Float64Array {
  const worth = new Float64Array(count);
  let alive = Array.from({ length: count }, (_, i) => i);
  for (const [s, { kept, transfer }] of stages.entries()) {
    const keep = new Set(kept);
    const dropped = alive.filter((_, i) => !keep.has(i));
    if (transfer) {
      if (transfer.length !== dropped.length)
        throw new ModelError(
          `TimeViper relevance: stage ${s} transferred ${transfer.length} tokens but dropped ${dropped.length}`,
        );
      let total = 0;
      for (let i = 0; i < transfer.length; i++) total += transfer[i];
      if (total > 0)
        for (const [i, t] of dropped.entries()) worth[t] += (transfer[i] / total) * dropped.length;
    }
    alive = kept.map((i) => alive[i]);
  }
  for (const t of alive) worth[t] += 1;
  return worth;
}
