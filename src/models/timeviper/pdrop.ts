/**
 * TimeViper's vision-token dropping inside the LLM ("pdrop", modeling_nano.py): a `pdrop_type` string such as
 * `uni_7_0.5-attn_39_0.1` lists stages `type_layer_ratio`, each acting on the residual stream just before block
 * `layer` runs, in prefill only. The ratio is the fraction of the ORIGINAL vision-token count N kept after the
 * stage: stage s keeps ⌊N·ratio_s⌋ of the ⌊N·ratio_{s−1}⌋ left (ratio_{−1} = 1).
 *   uni   keeps the positions torch.linspace(0, n−1, keep) truncated to integers;
 *   attn  keeps the `keep` vision tokens the last prompt token attends to most in block `layer`'s self-attention
 *         (its q_proj/k_proj on the un-normalised stream, softmax over the row, averaged over heads), in order.
 * A type containing `drop` only drops; the others, with merge_module CrossAttention (TransV), first transfer
 * the dropped tokens into the instruction tokens through a gated cross-attention (see transv.ts).
 */
import { ModelError } from '../../errors.js';

export interface DropStage {
  kind: 'uni' | 'attn';
  /** The block before which the stage runs. */
  layer: number;
  /** Fraction of the original vision-token count left after this stage. */
  ratio: number;
  /** Whether this stage's dropped tokens are transferred (a cross-attention module exists for it). */
  transfer: boolean;
}

/** Parses `pdrop_type` ("" or null: no stages) for a model with `merge_module`. */
export function parsePdropType(text: string | null, mergeModule: string, where = 'config.json'): DropStage[] {
  if (mergeModule !== 'no_merge' && mergeModule !== 'CrossAttention')
    throw new ModelError(`${where}: merge_module "${mergeModule}" is not "no_merge" or "CrossAttention"`);
  if (!text) return [];
  const stages = text.split('-').map((entry): DropStage => {
    const parts = entry.split('_');
    const layer = Number(parts[1]);
    const ratio = Number(parts[2]);
    const type = parts[0] ?? '';
    const kind = type.includes('attn') ? 'attn' : type.includes('uni') ? 'uni' : null;
    if (parts.length !== 3 || !kind || !Number.isInteger(layer) || layer < 0 || !(ratio >= 0 && ratio <= 1))
      throw new ModelError(
        `${where}: pdrop_type entry "${entry}" is not type_layer_ratio (type uni or attn, a block index, a ratio in [0, 1])`,
      );
    return { kind, layer, ratio, transfer: mergeModule === 'CrossAttention' && !type.includes('drop') };
  });
  stages.forEach((s, i) => {
    const prev = stages[i - 1];
    if (prev && (s.layer <= prev.layer || s.ratio > prev.ratio))
      throw new ModelError(
        `${where}: pdrop_type "${text}" must list stages by rising layer with falling keep ratios`,
      );
  });
  return stages;
}

/** Vision tokens present before stage `s` and kept after it, of `n` original ones. */
export function stageCounts(
  stages: readonly DropStage[],
  s: number,
  n: number,
): { current: number; keep: number } {
  const ratio = (i: number) => (i < 0 ? 1 : stages[i].ratio);
  return { current: Math.floor(n * ratio(s - 1)), keep: Math.floor(n * ratio(s)) };
}

/**
 * torch.linspace(0, n − 1, keep, dtype=long) as PyTorch's CUDA kernel computes it (the official code runs it on
 * the GPU): a float32 step, the first half counted from the start and the second from the end, in float32, each
 * value truncated. (PyTorch's CPU kernel uses a float64 step, and before torch 2.1 an integer one; they agree
 * whenever the step is exact.)
 */
export function uniformKeep(n: number, keep: number): number[] {
  if (keep <= 0) return [];
  if (keep === 1) return [0];
  const f = Math.fround;
  const end = f(n - 1);
  const step = f(end / f(keep - 1));
  const half = Math.floor(keep / 2);
  return Array.from({ length: keep }, (_, i) =>
    Math.trunc(i < half ? f(step * f(i)) : f(end - f(step * f(keep - i - 1)))),
  );
}

/** The `keep` highest scores' indices (ties to the lower index), in ascending index order. */
export function topKeep(scores: ArrayLike<number>, keep: number): number[] {
  const idx = Array.from({ length: scores.length }, (_, i) => i);
  idx.sort((a, b) => scores[b] - scores[a] || a - b);
  return idx.slice(0, keep).sort((a, b) => a - b);
}
