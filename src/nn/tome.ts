/**
 * Token Merging (ToMe, Bolya et al.) as TimeViper's projector runs it (`ToMe16_mlp_hd64.merge_tokens`): repeated
 * bipartite soft matching rounds, each merging r tokens into their most similar partner, until `keep` remain.
 *
 * Per round, over the current tokens: the metric is each token's feature averaged over `heads` equal slices
 * (16 × 72 for SigLIP's 1152), L2-normalised; set A is the even positions, B the odd ones; every A token finds
 * its most similar B token (the first on ties); the r A tokens with the best scores merge into their partners
 * (size-weighted averages, sizes accumulating over rounds); the result is [unmerged A tokens in descending score
 * order (ties by position), then every B token in its original order]. That order is the official output order
 * (`token_order="raw"`), which matters to the Mamba layers reading the tokens.
 *
 * A size-weighted average of averages is the plain average of the original tokens in the group, and the head
 * average is linear, so each round's metric is the group sum of the original tokens' metrics (the group size
 * cancels in the normalisation). So the state of a frame is its groups (index lists), and per round, for a
 * chunk of frames at once, the device sums each group's original metrics (embeddingBag), normalises, scores
 * A·Bᵀ in f32 and takes each row's max and argmax; only those two [frames, nA] vectors come back, and the host
 * sorts the edges and updates the groups. The final merge is one bag mean per output token, on the device.
 */

import type { Backend } from '../runtime/backend.js';
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

/** Bytes of f32 scratch per chunk of frames (the [frames, nA, nB] scores, the f32 copy of the features). */
const CHUNK_BYTES = 256 * 2 ** 20;

/** Bags of original tokens as embeddingBag's ids and offsets: the groups of each frame, frame f's rows at f·tokens. */
function bags(
  backend: Backend,
  frames: readonly (readonly (readonly number[])[])[],
  tokens: number,
): { ids: Tensor; offsets: Tensor } {
  const nnz = frames.reduce((n, groups) => n + groups.reduce((m, g) => m + g.length, 0), 0);
  const ids = new Int32Array(nnz);
  const offsets = new Int32Array(frames.reduce((n, groups) => n + groups.length, 0) + 1);
  let j = 0;
  let r = 0;
  frames.forEach((groups, f) => {
    for (const g of groups) {
      for (const i of g) ids[j++] = f * tokens + i;
      offsets[++r] = j;
    }
  });
  return {
    ids: ops.tensor(backend, ids, [nnz], 'i32'),
    offsets: ops.tensor(backend, offsets, [r + 1], 'i32'),
  };
}

/**
 * One matching round for each frame's groups (all frames the same count): each A token's best score and its
 * partner (a B index), computed on the device from the original tokens' metrics `table` [frames·tokens, dim].
 */
async function matchRound(
  table: Tensor,
  groups: readonly (readonly number[])[][],
  tokens: number,
): Promise<{ best: Float32Array; partner: Int32Array }> {
  const t = groups[0].length;
  const [nA, nB] = [Math.ceil(t / 2), Math.floor(t / 2)];
  const [best, partner] = tidy(() => {
    const unit = (parity: number, n: number) => {
      const { ids, offsets } = bags(
        table.backend,
        groups.map((g) => g.filter((_, i) => i % 2 === parity)),
        tokens,
      );
      const sums = ops.embeddingBag(table, ids, offsets).reshape([groups.length, n, table.shape[1]]);
      return ops.rmsNorm(sums, null, { eps: 0 }); // √dim · the unit vector: a constant scale of every score
    };
    const scores = ops.matmul(unit(0, nA), unit(1, nB), { transB: true }); // [frames, nA, nB]
    return [ops.reduce('max', scores), ops.argmax(scores)];
  });
  try {
    return {
      best: (await best.data()) as Float32Array,
      partner: (await partner.data()) as Int32Array,
    };
  } finally {
    best.dispose();
    partner.dispose();
  }
}

/**
 * A frame's groups after a round merging r of its A tokens, given each A token's best score and partner: the
 * unmerged A groups by descending score (ties by position), then the B groups with their merged A groups.
 */
function mergeRound(
  groups: readonly (readonly number[])[],
  best: Float32Array,
  partner: Int32Array,
  r: number,
): number[][] {
  const nA = best.length;
  const nB = groups.length - nA;
  const edges = Array.from({ length: nA }, (_, a) => a).sort((x, y) => best[y] - best[x] || x - y);
  const b = Array.from({ length: nB }, (_, k) => [...groups[2 * k + 1]]);
  for (const a of edges.slice(0, r)) b[partner[a]].push(...groups[2 * a]);
  return [...edges.slice(r).map((a) => [...groups[2 * a]]), ...b];
}

/**
 * Each frame's groups for x [frames, tokens, C]: for each output token in the official order, the original
 * token indices it averages. The matching runs on x's backend in chunks of frames holding at most `chunkBytes` of
 * f32 scratch; `tomeApply` then merges by the groups.
 */
export async function tomePlan(
  x: Tensor,
  keep = TOME_KEEP,
  heads = TOME_HEADS,
  chunkBytes = CHUNK_BYTES,
): Promise<number[][][]> {
  if (x.rank !== 3) throw new ShapeError(`ToMe: expected [frames, tokens, channels], got [${x.shape}]`);
  const [frames, tokens, channels] = x.shape;
  if (channels % heads !== 0)
    throw new ShapeError(`ToMe: ${channels} channels do not split into ${heads} metric heads`);
  const schedule = tomeSchedule(tokens, keep);
  const dim = channels / heads;
  const scores = Math.ceil(tokens / 2) * Math.floor(tokens / 2);
  const perFrame = 4 * Math.max(scores, x.dtype === 'f32' ? 0 : tokens * channels);
  const chunk = Math.max(1, Math.floor(chunkBytes / perFrame));
  const plan: number[][][] = [];
  for (let f0 = 0; f0 < frames; f0 += chunk) {
    const n = Math.min(chunk, frames - f0);
    using table = tidy(() => {
      const xc = x.narrow(f0, f0 + n);
      const x32 = x.dtype === 'f32' ? xc : ops.cast(xc, 'f32');
      return ops.mean(x32.reshape([n * tokens, heads, dim]), 1); // [n·tokens, dim]
    });
    let groups = Array.from({ length: n }, () => Array.from({ length: tokens }, (_, i) => [i]));
    for (const r of schedule) {
      const nA = Math.ceil(groups[0].length / 2);
      const { best, partner } = await matchRound(table, groups, tokens);
      groups = groups.map((g, f) =>
        mergeRound(g, best.subarray(f * nA, (f + 1) * nA), partner.subarray(f * nA, (f + 1) * nA), r),
      );
    }
    plan.push(...groups);
  }
  return plan;
}

/**
 * x [frames, tokens, C] merged by each frame's groups (all frames the same count): [frames, groups, C] in x's
 * dtype, each output token the f32 mean of its group's tokens.
 */
export function tomeApply(x: Tensor, groups: readonly (readonly (readonly number[])[])[]): Tensor {
  const [frames, tokens, channels] = x.shape;
  const keep = groups[0]?.length ?? 0;
  return tidy(() => {
    const { ids, offsets } = bags(x.backend, groups, tokens);
    return ops
      .embeddingBag(x.reshape([frames * tokens, channels]), ids, offsets, 'mean')
      .reshape([frames, keep, channels]);
  });
}

/** Merges each frame of x [frames, tokens, C] down to `keep` tokens: [frames, keep, C] in x's dtype. */
export async function tomeMerge(x: Tensor, keep = TOME_KEEP, heads = TOME_HEADS): Promise<Tensor> {
  return tomeApply(x, await tomePlan(x, keep, heads));
}
