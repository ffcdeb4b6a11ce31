/**
 * Token Merging (ToMe, Bolya et al.) as TimeViper's projector runs it (`ToMe16_mlp_hd64.merge_tokens`): repeated
 * bipartite soft matching rounds, each merging r tokens into their most similar partner, until `keep` remain.
 *
 * Per round, over the current tokens: the metric is each token's feature averaged over `heads` equal slices
 * (16 × 72 for SigLIP's 1152), L2-normalised; set A is the even positions, B the odd ones; every A token finds
 * its most similar B token; the r A tokens with the best scores merge into their partners (size-weighted
 * averages, sizes accumulating over rounds); the result is [unmerged A tokens in descending score order, then
 * every B token in its original order]. That order is the official output order (`token_order="raw"`), which
 * matters to the Mamba layers reading the tokens.
 *
 * A size-weighted average of averages is the plain average of the original tokens in the group, and the head
 * average is linear, so each round's metric is the group average of the original tokens' metrics: the matching
 * runs on the host over the small metric (frames × tokens × C/heads) and the whole merge is one matrix per
 * frame, applied on the device.
 */

import * as ops from '../runtime/ops.js';
import { tidy } from '../runtime/scope.js';
import { ShapeError } from '../runtime/shape.js';
import type { Tensor } from '../runtime/tensor.js';

/** TimeViper's ToMe: 16 metric heads (hard-coded there), 16 tokens per frame. */
export const TOME_HEADS = 16;
export const TOME_KEEP = 16;

/**
 * The tokens merged in each round, going from `tokens` to `keep`: half the current count while more than
 * half must go, then the remainder (729 → 16: 364, 182, 91, 46, 23, 7).
 */
export function tomeSchedule(tokens: number, keep: number): number[] {
  if (!(keep > 0 && tokens > keep))
    throw new ShapeError(`ToMe: cannot merge ${tokens} tokens down to ${keep} (need 0 < keep < tokens)`);
  const rounds: number[] = [];
  let p = tokens;
  while (p !== keep) {
    const half = Math.floor(p / 2);
    if (p - keep <= half) {
      rounds.push(p - keep);
      break;
    }
    rounds.push(half);
    p -= half;
  }
  return rounds;
}

/**
 * The groups of one frame: for each output token in the official order, the original token indices it
 * averages. `metric` is [tokens, dim] (the head-averaged features of the original tokens).
 */
export function tomeGroups(metric: Float32Array, tokens: number, dim: number, keep: number): number[][] {
  if (metric.length !== tokens * dim)
    throw new ShapeError(`ToMe: metric of ${metric.length} values is not ${tokens} tokens × ${dim}`);
  let groups: number[][] = Array.from({ length: tokens }, (_, i) => [i]);
  // Each current token's metric as the sum of its originals' (divided by the group size when used).
  let sums: Float64Array[] = groups.map(([i]) => Float64Array.from(metric.subarray(i * dim, (i + 1) * dim)));
  for (const rWanted of tomeSchedule(tokens, keep)) {
    const t = groups.length;
    const r = Math.min(rWanted, Math.floor(t / 2));
    const unit = sums.map((s) => {
      let n = 0;
      for (let d = 0; d < dim; d++) n += s[d] * s[d];
      n = Math.sqrt(n);
      return s.map((v) => v / n); // the group size cancels in the normalisation
    });
    const nA = Math.ceil(t / 2);
    const nB = Math.floor(t / 2);
    const best = new Float64Array(nA);
    const partner = new Int32Array(nA);
    for (let a = 0; a < nA; a++) {
      const ua = unit[2 * a];
      let m = Number.NEGATIVE_INFINITY;
      for (let b = 0; b < nB; b++) {
        const ub = unit[2 * b + 1];
        let s = 0;
        for (let d = 0; d < dim; d++) s += ua[d] * ub[d];
        if (s > m) {
          m = s;
          partner[a] = b;
        }
      }
      best[a] = m;
    }
    const edges = Array.from({ length: nA }, (_, a) => a).sort((x, y) => best[y] - best[x] || x - y);
    const nextGroups: number[][] = [];
    const nextSums: Float64Array[] = [];
    for (const a of edges.slice(r)) {
      nextGroups.push(groups[2 * a]);
      nextSums.push(sums[2 * a]);
    }
    const bGroups = Array.from({ length: nB }, (_, b) => [...groups[2 * b + 1]]);
    const bSums = Array.from({ length: nB }, (_, b) => Float64Array.from(sums[2 * b + 1]));
    for (const a of edges.slice(0, r)) {
      const b = partner[a];
      bGroups[b].push(...groups[2 * a]);
      const s = sums[2 * a];
      for (let d = 0; d < dim; d++) bSums[b][d] += s[d];
    }
    groups = [...nextGroups, ...bGroups];
    sums = [...nextSums, ...bSums];
  }
  return groups;
}

/**
 * Each frame's groups (tomeGroups) for x [frames, tokens, C]: the matching, on the host over the head-averaged
 * metric. `tomeApply` then merges by them.
 */
export async function tomePlan(x: Tensor, keep = TOME_KEEP, heads = TOME_HEADS): Promise<number[][][]> {
  if (x.rank !== 3) throw new ShapeError(`ToMe: expected [frames, tokens, channels], got [${x.shape}]`);
  const [frames, tokens, channels] = x.shape;
  if (channels % heads !== 0)
    throw new ShapeError(`ToMe: ${channels} channels do not split into ${heads} metric heads`);
  const dim = channels / heads;
  const metric = tidy(() =>
    ops.mean(ops.permute(ops.cast(x, 'f32').reshape([frames, tokens, heads, dim]), [0, 1, 3, 2]), -1),
  );
  const values = (await metric.data()) as Float32Array;
  metric.dispose();
  return Array.from({ length: frames }, (_, f) =>
    tomeGroups(values.subarray(f * tokens * dim, (f + 1) * tokens * dim), tokens, dim, keep),
  );
}

/**
 * x [frames, tokens, C] merged by each frame's groups (all frames the same count): [frames, groups, C] in x's
 * dtype. The merge matrix is applied in f32 (1/size weights are not exact in bf16).
 */
export function tomeApply(x: Tensor, groups: readonly (readonly (readonly number[])[])[]): Tensor {
  const [frames, tokens] = x.shape;
  const keep = groups[0]?.length ?? 0;
  const weights = new Float32Array(frames * keep * tokens);
  groups.forEach((frame, f) => {
    frame.forEach((g, k) => {
      const row = (f * keep + k) * tokens;
      for (const i of g) weights[row + i] = 1 / g.length;
    });
  });
  return tidy(() => {
    const m = ops.tensor(x.backend, weights, [frames, keep, tokens]);
    return ops.cast(ops.matmul(m, ops.cast(x, 'f32')), x.dtype);
  });
}

/** Merges each frame of x [frames, tokens, C] down to `keep` tokens: [frames, keep, C] in x's dtype. */
export async function tomeMerge(x: Tensor, keep = TOME_KEEP, heads = TOME_HEADS): Promise<Tensor> {
  return tomeApply(x, await tomePlan(x, keep, heads));
}
