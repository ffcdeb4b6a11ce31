/**
 * MambaMia's secondary frame sampling s: the frames whose query outputs are kept. The paper gives s = 1/3 but
 * not the rule; here every run of frames between multiples of 1/s keeps one: its first (`first`, a stride from
 * frame 0: the paper's token counts, 128 frames → 43 kept → 430 tokens, are this rule's) or its last (`last`: under
 * a causal scan it has seen the whole run). Frame i is kept when
 *
 *   last:  ⌊(i+1)·s⌋ > ⌊i·s⌋     (s = 1/3: frames 2, 5, 8, …; ⌊F·s⌋ frames in all)
 *   first: ⌈(i+1)·s⌉ > ⌈i·s⌉     (s = 1/3: frames 0, 3, 6, …; ⌈F·s⌉ frames in all)
 */

/** Rounding slack so that e.g. 3·(1/3) counts as 1. */
const SLACK = 1e-9;

export function keptFrames(frames: number, s: number, keep: 'last' | 'first'): number[] {
  const at =
    keep === 'last' ? (i: number) => Math.floor(i * s + SLACK) : (i: number) => Math.ceil(i * s - SLACK);
  const out: number[] = [];
  for (let i = 0; i < frames; i++) if (at(i + 1) > at(i)) out.push(i);
  return out;
}
