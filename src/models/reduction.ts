/**
 * Token reduction as a user choice: fewer video tokens entering the LLM, for any family whose runner applies
 * one (`ModelRunner.reductions`). The strategies, by name:
 *
 *   none       the model's tokens as they are
 *   uniform    per frame, a spatially uniform subset of the tokens (a fraction `keep`)
 *   tome       Token Merging per frame down to a fraction `keep` (src/nn/tome.ts, TimeViper's matching)
 *   transv     TimeViper's own transfer-and-drop inside its LLM: valid only for TimeViper checkpoints trained
 *              with its stages (and their transfer weights); the stages set what it keeps
 *   mambamia   the MambaMia compressor: trained weights per LLM; TSTAR checkpoints carry theirs
 *
 * A strategy that runs on tokens maps [frames, perFrame, width] to rows [n, width] with, per row, the input
 * rows it stands for (`source`, global indices `frame·perFrame + j`): a family that places tokens by position
 * (Qwen2-VL's M-RoPE) puts each row at its first source's position.
 */
import { UsageError } from '../errors.js';
import { TOME_HEADS, tomeApply, tomePlan } from '../nn/tome.js';
import * as ops from '../runtime/ops.js';
import type { Tensor } from '../runtime/tensor.js';

export interface ReducedTokens {
  /** [n, width], in the order the LLM reads them. */
  tokens: Tensor;
  /** For each row, the input rows it stands for (ascending; the first one places it). */
  source: number[][];
}

export interface TokenReduction {
  readonly name: string;
  /** One line for `--help` and errors. */
  readonly summary: string;
  /** Families it is valid for (its own model's part); absent: any that applies it. */
  readonly onlyFor?: readonly string[];
  /** The trained weights it needs, said when a model has none. */
  readonly needsWeights?: string;
  /** What sets how many tokens it keeps, when not the user's KEEP (which it then refuses). */
  readonly keepSetBy?: string;
  /** Runs on tokens [frames, perFrame, width] keeping a fraction `keep`; absent: the model applies it itself. */
  reduce?(tokens: Tensor, keep: number): ReducedTokens | Promise<ReducedTokens>;
}

/** A user's choice: a strategy and the fraction of tokens to keep. */
export interface ReductionRequest {
  method: string;
  /** In (0, 1]; default 0.5 where it applies. */
  keep?: number;
}

/** The input rows a uniform drop keeps of one frame of `n` tokens: `m` evenly spaced, the middle of each stride. */
export function uniformRows(n: number, keep: number): number[] {
  const m = Math.max(1, Math.round(n * keep));
  return Array.from({ length: m }, (_, i) => Math.floor(((i + 0.5) * n) / m));
}

const uniform: TokenReduction = {
  name: 'uniform',
  summary: 'keep a spatially uniform fraction of each frame’s tokens',
  reduce(tokens, keep) {
    const [frames, per, width] = tokens.shape;
    const rows = Array.from({ length: frames }, (_, f) =>
      uniformRows(per, keep).map((j) => f * per + j),
    ).flat();
    const flat = tokens.reshape([frames * per, width]);
    try {
      using ids = ops.tensor(tokens.backend, rows, [rows.length], 'i32');
      return { tokens: ops.embedding(flat, ids), source: rows.map((r) => [r]) };
    } finally {
      flat.dispose();
    }
  },
};

const tome: TokenReduction = {
  name: 'tome',
  summary: 'Token Merging per frame (bipartite soft matching) down to a fraction of the tokens',
  async reduce(tokens, keep) {
    const [frames, per, width] = tokens.shape;
    const m = Math.max(1, Math.round(per * keep));
    if (m >= per) return uniform.reduce!(tokens, 1);
    // TimeViper's 16 metric heads where the width splits so, else the whole feature as one.
    const groups = await tomePlan(tokens, m, width % TOME_HEADS ? 1 : TOME_HEADS);
    const merged = tomeApply(tokens, groups);
    const flat = merged.reshape([frames * m, width]);
    merged.dispose();
    const source = groups.flatMap((frame, f) =>
      frame.map((g) => g.map((i) => f * per + i).sort((a, b) => a - b)),
    );
    return { tokens: flat, source };
  },
};

const reductions = new Map<string, TokenReduction>(
  [
    { name: 'none', summary: 'the model’s video tokens as they are' },
    uniform,
    tome,
    {
      name: 'transv',
      summary: 'TimeViper’s transfer-and-drop of vision tokens inside its LLM',
      onlyFor: ['timeviper'],
      needsWeights:
        'a checkpoint trained with TransV’s stages (use_pdrop with pdrop_type; with merge_module CrossAttention their cross-attention weights, merge_modules.* and alpha)',
      keepSetBy: 'the checkpoint’s pdrop_type stages',
    },
    {
      name: 'mambamia',
      summary: 'the MambaMia compressor (k patches per query, then frames × s)',
      needsWeights: 'a MambaMia compressor trained for this model’s LLM (TSTAR checkpoints carry theirs)',
    },
  ].map((r) => [r.name, r]),
);

export function tokenReductions(): readonly TokenReduction[] {
  return [...reductions.values()];
}

/** `method` or `method:keep` (e.g. `uniform:0.25`) as the CLI and the server take it. */
export function parseReduction(spec: string): ReductionRequest {
  const [method, keepText, ...rest] = spec.trim().split(':');
  const keep = keepText === undefined ? undefined : Number(keepText);
  if (rest.length || (keep !== undefined && !(keep > 0 && keep <= 1)))
    throw new UsageError(
      `reduce: "${spec}" is not METHOD or METHOD:KEEP with KEEP in (0, 1] (e.g. uniform:0.25)`,
    );
  return keep === undefined ? { method } : { method, keep };
}

/**
 * The strategy a request names for a runner of `family` that applies `applies` (besides `none`): null for none,
 * else the strategy; a choice the model cannot take (including one that needs trained weights it lacks) is a
 * UsageError that says why.
 */
export function resolveReduction(
  request: ReductionRequest | undefined,
  family: string,
  applies: readonly string[],
): { reduction: TokenReduction; keep: number } | null {
  if (!request || request.method === 'none') return null;
  const r = reductions.get(request.method);
  if (!r)
    throw new UsageError(
      `reduce: no token reduction "${request.method}" (choices: ${[...reductions.keys()].join(', ')})`,
    );
  if (r.onlyFor && !r.onlyFor.includes(family))
    throw new UsageError(
      `reduce: ${r.name} is ${r.summary}; it is valid only for ${r.onlyFor.join(', ')} models`,
    );
  if (!applies.includes(r.name)) {
    if (r.needsWeights)
      throw new UsageError(`reduce: ${r.name} needs ${r.needsWeights}; this ${family} model has none`);
    if (r.onlyFor || !r.reduce)
      throw new UsageError(`reduce: ${r.name} is not available for ${family} models in this build`);
    throw new UsageError(`reduce: ${family} models take ${['none', ...applies].join(', ')}, not ${r.name}`);
  }
  if (r.keepSetBy) {
    if (request.keep !== undefined)
      throw new UsageError(`reduce: ${r.name} keeps what ${r.keepSetBy} say; give it without :KEEP`);
    return { reduction: r, keep: 1 };
  }
  return { reduction: r, keep: request.keep ?? 0.5 };
}
