/**
 * An answer's relevance per frame (GenerationOptions.relevance): the attention mass the answer's queries put on
 * the video tokens (models/<family> records it with nn/attention-probe.ts), folded per frame. Video tokens
 * come in temporal groups (Qwen2-VL and Vamba merge 2 frames into one group of h·w tokens, [t][h][w] order);
 * a group's mass is shared equally by the frames it covers, and the scores are normalised to sum to 1.
 */
import { ModelError } from '../errors.js';

export interface Relevance {
  /** Each decoded frame's time (VideoHandle.timestampsSec). */
  timestampsSec: number[];
  /** Each frame's share of the answer's attention over the video: ≥ 0, summing to 1 (all 0 if none was recorded). */
  scores: number[];
}

/** Mass per key of the video's tokens → mass per temporal group of `groups` equal runs of tokens. */
export function massPerGroup(perToken: ArrayLike<number>, groups: number): number[] {
  if (!(Number.isInteger(groups) && groups >= 1 && perToken.length % groups === 0))
    throw new ModelError(`relevance: ${perToken.length} video tokens do not split into ${groups} groups`);
  const per = perToken.length / groups;
  const out = new Array<number>(groups).fill(0);
  for (let i = 0; i < perToken.length; i++) out[Math.floor(i / per)] += perToken[i];
  return out;
}

/** Frame i of F lies in group ⌊i·G/F⌋ and takes an equal share of that group's mass. */
export function frameRelevance(groupMass: readonly number[], timestampsSec: readonly number[]): Relevance {
  const F = timestampsSec.length;
  const G = groupMass.length;
  if (!F || !G) return { timestampsSec: [...timestampsSec], scores: new Array(F).fill(0) };
  const groupOf = (i: number) => Math.min(G - 1, Math.floor((i * G) / F));
  const members = new Array<number>(G).fill(0);
  for (let i = 0; i < F; i++) members[groupOf(i)]++;
  const raw = timestampsSec.map((_, i) => {
    const g = groupOf(i);
    return groupMass[g] / members[g];
  });
  const total = raw.reduce((a, b) => a + b, 0);
  return { timestampsSec: [...timestampsSec], scores: raw.map((s) => (total > 0 ? s / total : 0)) };
}
