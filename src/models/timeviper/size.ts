/**
 * TimeViper's memory, from its config and the frame count, as the code allocates it (one estimate for the CLI's
 * fit check and the server's encode plan). Two phases, at different times:
 *
 *   encode (runner.ts, once per video): batches of at most ENCODE_BATCH_FRAMES frames, each its f32 pixels →
 *     SigLIP (siglip/size.ts) → ToMe (the features and its f32 scratch) → the projector, while the batches
 *     done so far are held; then their concatenation (the parts and the whole, twice the state). What stays is
 *     the projected tokens [frames, 16, hidden].
 *   question prefill (model.ts session + language-model.ts, per question, over the whole prompt): the session's
 *     caches (every segment's attention layers at the whole prompt + the answer's capacity, and the Mamba
 *     states), the prompt's embeddings (while built: every frame's copy and the concatenation), the residual
 *     stream in its dtype, and per block the segment's input, the block's input and the block's working set
 *     (Mamba-2's in its scope: nn/mamba2-size.ts; attention's projections; the MLP's hidden twice); a drop
 *     stage rebuilds the stream and the later segments see fewer tokens.
 */
import { BYTES_PER_ELEMENT, type DType } from '../../runtime/dtype.js';
import type { QuestionCost } from '../family.js';
import { blockPeakBytes, nemotronHStateBytes } from '../nemotron_h/size.js';
import { patchGrid } from '../siglip/config.js';
import { siglipForwardBytes, siglipPixelsBytes } from '../siglip/size.js';
import type { TimeViperConfig } from './config.js';
import { stageCounts } from './pdrop.js';

/** Frames the runner sends through the vision tower at a time (the facade's decoded batches are 8). */
export const ENCODE_BATCH_FRAMES = 8;

/** nn/tome.ts's bound on a matching chunk's f32 scratch. */
const TOME_CHUNK_BYTES = 256 * 2 ** 20;

/** Tokens each block sees in a prefill of `text` text tokens and `frames` frames, stage by stage. */
export function tokensPerBlock(c: TimeViperConfig, frames: number, text: number, drops = true): number[] {
  const vision = frames * c.tokensPerFrame;
  const out: number[] = [];
  let stage = 0;
  for (let i = 0; i < c.llm.hybrid_override_pattern.length; i++) {
    while (drops && stage < c.stages.length && c.stages[stage].layer <= i) stage++;
    const kept = stage ? stageCounts(c.stages, stage - 1, vision).keep : vision;
    out.push(text + kept);
  }
  return out;
}

export interface TimeViperMemoryOptions {
  frames: number;
  /** A question's text tokens around the frames' placeholders, and the answer's tokens (default 512). */
  textTokens: number;
  newTokens?: number;
  dtype: DType;
  /** Whether the prefill runs the checkpoint's drop stages (`--reduce transv`; default false, every token). */
  drops?: boolean;
}

export interface TimeViperMemory {
  videoTokens: number;
  /** The encoded video: the projected tokens. */
  stateBytes: number;
  /** The encode's peak above what was held before it (the state being built included). */
  encodeBytes: number;
  /** A question's prefill peak beyond the encoded video (the caches it leaves included). */
  prefillBytes: number;
  /** Of which the session's caches: attention K/V and Mamba states. */
  cacheBytes: number;
}

export function timeViperMemory(c: TimeViperConfig, o: TimeViperMemoryOptions): TimeViperMemory {
  const b = BYTES_PER_ELEMENT[o.dtype];
  const H = c.llm.hidden_size;
  const videoTokens = o.frames * c.tokensPerFrame;
  const stateBytes = videoTokens * H * b;
  const batches = Math.ceil(o.frames / ENCODE_BATCH_FRAMES);
  const batch = Math.min(o.frames, ENCODE_BATCH_FRAMES);
  const encodeBytes = Math.max(stateBytes + batchBytes(c, batch, o.dtype), batches > 1 ? 2 * stateBytes : 0);

  const prompt = o.textTokens + videoTokens;
  const state = nemotronHStateBytes(c.llm, prompt + (o.newTokens ?? 512), o.dtype);
  const cacheBytes = state.kv + state.mamba;
  const r = c.llm.residual_in_fp32 ? 4 : b;
  // The embeddings (each frame's copy and the concatenation while built), the stream cast to the residual's dtype.
  const embed = videoTokens * H * b + prompt * H * b;
  const stream = prompt * H * b + (r !== b ? prompt * H * r : 0);
  const blocks = tokensPerBlock(c, o.frames, o.textTokens, o.drops ?? false);
  const kv = 2 * c.llm.num_key_value_heads * c.llm.head_dim * b;
  let widest = 0;
  for (const [i, kind] of [...c.llm.hybrid_override_pattern].entries()) {
    const L = blocks[i];
    // The segment's input beside the block's (one tensor at a segment's first block).
    const first = i === 0 || c.stages.some((s) => s.layer === i);
    widest = Math.max(widest, blockPeakBytes(c.llm, kind, L, first ? 1 : 2, o.dtype));
    const before = blocks[i - 1] ?? L;
    // A stage's rebuild: the old stream, the kept rows, the new stream; the dropped rows and their K/V.
    if (L < before) widest = Math.max(widest, (before + 2 * L) * H * r + (before - L) * (H * r + kv));
  }
  const logits = c.llm.vocab_size * (b + 4);
  const prefillBytes = cacheBytes + Math.max(embed, stream + widest + logits);
  return { videoTokens, stateBytes, encodeBytes, prefillBytes, cacheBytes };
}

/**
 * A question over an encoded video of `frames` frames (`perFrame` tokens each after a per-frame reduction;
 * `drops`: TransV's stages): its prefill phase above, the caches it leaves included.
 */
export function timeViperQuestionCost(
  c: TimeViperConfig,
  video: { frames: number; perFrame?: number; drops?: boolean },
  dtype: DType,
): QuestionCost {
  const config = { ...c, tokensPerFrame: video.perFrame ?? c.tokensPerFrame };
  return (q) =>
    timeViperMemory(config, {
      frames: video.frames,
      textTokens: q.textTokens,
      newTokens: q.newTokens,
      dtype,
      drops: video.drops,
    }).prefillBytes;
}

/**
 * One encode batch of `frames` frames: the f32 pixels (more while they are made), then the largest of the tower (its output included),
 * ToMe's step (the features, the f32 metric table, a matching round's bags, sums, norms and scores; or the
 * features' f32 copy) and the projector (ToMe's output, fc1, its activation, fc2).
 */
function batchBytes(c: TimeViperConfig, frames: number, dtype: DType): number {
  const b = BYTES_PER_ELEMENT[dtype];
  const v = c.vision;
  const T = patchGrid(v).tokens;
  const D = v.hidden_size;
  const H = c.llm.hidden_size;
  const [nA, nB] = [Math.ceil(T / 2), Math.floor(T / 2)];
  const perFrame = 4 * Math.max(nA * nB, dtype === 'f32' ? 0 : T * D);
  const n = Math.min(frames, Math.max(1, Math.floor(TOME_CHUNK_BYTES / perFrame)));
  const table = n * T * (D / 16) * 4;
  const tome = Math.max(
    dtype === 'f32' ? 0 : n * T * D * 4,
    2 * n * T * (D / 16) * 4 + n * (nA * nB + 2 * nA) * 4 + 2 * n * T * 4,
  );
  const features = frames * T * D * b;
  const merged = frames * c.tokensPerFrame * D * b;
  const projector = merged + 3 * frames * c.tokensPerFrame * H * b;
  const pixels = siglipPixelsBytes(v, frames);
  return Math.max(
    pixels.peak,
    pixels.held + Math.max(siglipForwardBytes(v, frames, dtype), features + table + tome, projector),
  );
}
