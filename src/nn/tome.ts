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

/** embeddingBag's ids and offsets on `backend`. */
function bagTensors(
  backend: Backend,
  ids: Int32Array,
  offsets: Int32Array,
): { ids: Tensor; offsets: Tensor } {
  return {
    ids: ops.tensor(backend, ids, [ids.length], 'i32'),
    offsets: ops.tensor(backend, offsets, [offsets.length], 'i32'),
  };
}

/**
 * The groups of `frames` frames, each frame its `count` groups (the same for all) of original token indices, in
 * flat arrays: frame f's members are members[f·tokens, (f + 1)·tokens) in group order, its group g spans
 * [starts[f·(count + 1) + g], starts[f·(count + 1) + g + 1]) of them. Rounds over a thousand frames update these
 * arrays in place of a thousand nested arrays each.
 */
class Groups {
  private constructor(
    readonly frames: number,
    readonly tokens: number,
    public count: number,
    public members: Int32Array,
    public starts: Int32Array,
  ) {}

  /** Every token its own group. */
  static singletons(frames: number, tokens: number): Groups {
    const members = new Int32Array(frames * tokens);
    const starts = new Int32Array(frames * (tokens + 1));
    for (let f = 0; f < frames; f++)
      for (let i = 0; i <= tokens; i++) {
        if (i < tokens) members[f * tokens + i] = i;
        starts[f * (tokens + 1) + i] = i;
      }
    return new Groups(frames, tokens, tokens, members, starts);
  }

  /** Nested groups (each frame the same count; members < tokens) in the flat form. */
  static of(nested: readonly (readonly (readonly number[])[])[], tokens: number): Groups {
    const count = nested[0]?.length ?? 0;
    const members = new Int32Array(nested.length * tokens);
    const starts = new Int32Array(nested.length * (count + 1));
    nested.forEach((frame, f) => {
      const size = frame.reduce((n, g) => n + g.length, 0);
      if (frame.length !== count || size > tokens)
        throw new ShapeError(
          `ToMe: frame ${f} has ${frame.length} groups of ${size} tokens (frame 0: ${count} groups; at most ${tokens} tokens)`,
        );
      let w = 0;
      frame.forEach((group, k) => {
        for (const i of group) members[f * tokens + w++] = i;
        starts[f * (count + 1) + k + 1] = w;
      });
    });
    return new Groups(nested.length, tokens, count, members, starts);
  }

  /**
   * Bags of original tokens as embeddingBag's ids and offsets, frame f's rows at f·tokens: every group, or those
   * at even (parity 0) or odd (1) positions.
   */
  bags(parity: 0 | 1 | null): { ids: Int32Array; offsets: Int32Array } {
    const { frames, tokens, count, members, starts } = this;
    const first = parity ?? 0;
    const step = parity === null ? 1 : 2;
    const offsets = new Int32Array(frames * Math.ceil((count - first) / step) + 1);
    let nnz = 0;
    for (let f = 0, r = 0; f < frames; f++)
      for (let g = f * (count + 1) + first; g < (f + 1) * (count + 1) - 1; g += step)
        offsets[++r] = nnz += starts[g + 1] - starts[g];
    const ids = new Int32Array(nnz);
    for (let f = 0, j = 0; f < frames; f++) {
      const base = f * tokens;
      for (let g = f * (count + 1) + first; g < (f + 1) * (count + 1) - 1; g += step)
        for (let k = base + starts[g]; k < base + starts[g + 1]; k++) ids[j++] = base + members[k];
    }
    return { ids, offsets };
  }

  /**
   * One round merging r A groups (even positions) of every frame into their partners (B groups, odd positions),
   * given each A group's best score and partner (a B index), [frames, nA] each: per frame, the unmerged A groups
   * by descending score (ties by position), then each B group followed by the A groups merged into it, in the
   * order of their scores.
   */
  merge(best: Float32Array, partner: Int32Array, r: number): void {
    const { frames, tokens, count, members, starts } = this;
    const nA = Math.ceil(count / 2);
    const nB = count - nA;
    const next = count - r;
    const out = new Int32Array(members.length);
    const outStarts = new Int32Array(frames * (next + 1));
    const order = new Int32Array(nA);
    const head = new Int32Array(nB);
    const tail = new Int32Array(nB);
    const link = new Int32Array(nA);
    for (let f = 0; f < frames; f++) {
      const o = f * nA;
      for (let a = 0; a < nA; a++) order[a] = a;
      order.sort((x, y) => best[o + y] - best[o + x] || x - y);
      // The merged A groups of each B group, as linked lists kept in score order.
      head.fill(-1);
      for (let k = 0; k < r; k++) {
        const a = order[k];
        const b = partner[o + a];
        link[a] = -1;
        if (head[b] < 0) head[b] = a;
        else link[tail[b]] = a;
        tail[b] = a;
      }
      const base = f * tokens;
      const from = f * (count + 1);
      const to = f * (next + 1);
      let w = base;
      let g = to;
      for (let k = r; k < nA; k++) {
        const a = from + 2 * order[k];
        for (let m = base + starts[a]; m < base + starts[a + 1]; m++) out[w++] = members[m];
        outStarts[++g] = w - base;
      }
      for (let b = 0; b < nB; b++) {
        const own = from + 2 * b + 1;
        for (let m = base + starts[own]; m < base + starts[own + 1]; m++) out[w++] = members[m];
        for (let a = head[b]; a >= 0; a = link[a])
          for (let m = base + starts[from + 2 * a]; m < base + starts[from + 2 * a + 1]; m++)
            out[w++] = members[m];
        outStarts[++g] = w - base;
      }
    }
    this.members = out;
    this.starts = outStarts;
    this.count = next;
  }

  /** Each frame's groups as nested arrays. */
  nested(): number[][][] {
    const { frames, tokens, count, members, starts } = this;
    const out: number[][][] = [];
    for (let f = 0; f < frames; f++) {
      const frame: number[][] = [];
      for (let g = f * (count + 1); g < (f + 1) * (count + 1) - 1; g++) {
        const group: number[] = [];
        for (let k = f * tokens + starts[g]; k < f * tokens + starts[g + 1]; k++) group.push(members[k]);
        frame.push(group);
      }
      out.push(frame);
    }
    return out;
  }
}

/**
 * One matching round for each frame's groups: each A group's best score and its partner (a B index), computed on
 * the device from the original tokens' metrics `table` [frames·tokens, dim].
 */
async function matchRound(
  table: Tensor,
  groups: Groups,
): Promise<{ best: Float32Array; partner: Int32Array }> {
  const t = groups.count;
  const [nA, nB] = [Math.ceil(t / 2), Math.floor(t / 2)];
  const [best, partner] = tidy(() => {
    const unit = (parity: 0 | 1, n: number) => {
      const { ids, offsets } = groups.bags(parity);
      const bag = bagTensors(table.backend, ids, offsets);
      const sums = ops.embeddingBag(table, bag.ids, bag.offsets).reshape([groups.frames, n, table.shape[1]]);
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
    const groups = Groups.singletons(n, tokens);
    for (const r of schedule) {
      const { best, partner } = await matchRound(table, groups);
      groups.merge(best, partner, r);
    }
    plan.push(...groups.nested());
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
    const flat = Groups.of(groups, tokens).bags(null);
    const { ids, offsets } = bagTensors(x.backend, flat.ids, flat.offsets);
    return ops
      .embeddingBag(x.reshape([frames * tokens, channels]), ids, offsets, 'mean')
      .reshape([frames, keep, channels]);
  });
}

/** Merges each frame of x [frames, tokens, C] down to `keep` tokens: [frames, keep, C] in x's dtype. */
export async function tomeMerge(x: Tensor, keep = TOME_KEEP, heads = TOME_HEADS): Promise<Tensor> {
  return tomeApply(x, await tomePlan(x, keep, heads));
}
