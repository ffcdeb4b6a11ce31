/**
 * Parameter count and a memory estimate for a Qwen2-VL config, without weights. The estimate is meant for
 * "will this fit?" checks before loading: weights + KV cache for the whole sequence + the largest
 * activation working set (vision encoder or decoder prefill), counted in the compute dtype.
 */

import type { ChatTurn, DecodeCacheSize } from '../../facade/types.js';
import { attentionLayers, kvBytesPerToken } from '../../nn/cache.js';
import { countParams } from '../../nn/params.js';
import { BYTES_PER_ELEMENT, type DType } from '../../runtime/dtype.js';
import type { EncodePlan, QuestionCost } from '../family.js';
import type { Qwen2VLConfig, Qwen2VLTextConfig, Qwen2VLVisionConfig } from './config.js';
import type { PreprocessorConfig } from './preprocessor-config.js';
import { smartResize } from './processor.js';
import type { GridTHW } from './vision.js';
import { qwen2vlSpecs } from './weights.js';

export function countParameters(config: Qwen2VLConfig): number {
  return countParams(qwen2vlSpecs(config));
}

export interface MemoryEstimateOptions {
  /** Sampled video frames (paired in time; an odd count is padded). */
  frames?: number;
  /** Frame size before smart_resize (default 640×360). */
  width?: number;
  height?: number;
  /** The video's patch grid [t, h, w] when known (a decoded video): replaces frames, size and bounds. */
  grid?: GridTHW;
  /** Pixel bounds per frame (default Qwen2VLVideoProcessor's 128·28² .. 768·28²). */
  minPixels?: number;
  maxPixels?: number;
  /** Prompt text tokens (default 64) and tokens to generate (default 512). */
  textTokens?: number;
  newTokens?: number;
  /** Compute/storage dtype (default bf16). */
  dtype?: DType;
}

export interface MemoryEstimate {
  parameters: number;
  tokens: { video: number; text: number; total: number };
  weightBytes: number;
  kvCacheBytes: number;
  activationBytes: number;
  totalBytes: number;
}

export function estimateMemory(config: Qwen2VLConfig, opts: MemoryEstimateOptions = {}): MemoryEstimate {
  const v = config.vision;
  const t = config.text;
  const bytes = BYTES_PER_ELEMENT[opts.dtype ?? 'bf16'];
  const frames = opts.frames ?? 0;
  const groups = opts.grid ? opts.grid[0] : Math.ceil(frames / v.temporal_patch_size);
  const [h, w] = opts.grid
    ? [opts.grid[1] * v.patch_size, opts.grid[2] * v.patch_size]
    : frames
      ? smartResize(opts.height ?? 360, opts.width ?? 640, {
          factor: v.patch_size * v.spatial_merge_size,
          minPixels: opts.minPixels ?? 128 * 28 * 28,
          maxPixels: opts.maxPixels ?? 768 * 28 * 28,
        })
      : [0, 0];
  const patchesPerGroup = (h / v.patch_size) * (w / v.patch_size);
  const patches = groups * patchesPerGroup;
  const video = patches / v.spatial_merge_size ** 2;
  const text = opts.textTokens ?? 64;
  const total = video + text + (opts.newTokens ?? 512);

  const parameters = countParameters(config);
  const kvCacheBytes = 2 * t.num_hidden_layers * t.num_key_value_heads * t.head_dim * total * bytes;
  // Vision: residual, norm, qkv (3), attention out, MLP hidden; f32 scores of one temporal group per head.
  const visionAct =
    patches * v.embed_dim * (6 + v.mlp_ratio) * bytes + v.num_heads * patchesPerGroup ** 2 * 4;
  // Decoder prefill, at its peak inside a layer's MLP: eight rows of the hidden size (the embeddings, the
  // stream in and out of the layer, both norms' outputs, attention's output, the MLP's output, one spare) and
  // gate, up and their product (SwiGLU: silu·up in one pass; another activation adds a row); the vision tokens
  // kept until they are written into the embeddings; logits of the last position in f32. Attention's q/k/v
  // are freed before the MLP. Measured on an H200 at 1024 frames: 48.2 GiB against 49.0 estimated.
  const prefill = video + text;
  const mlpRows = t.hidden_act === 'silu' ? 3 : 4;
  const textAct =
    prefill * (8 * t.hidden_size + mlpRows * t.intermediate_size) * bytes +
    video * t.hidden_size * bytes +
    t.vocab_size * 4;
  const activationBytes = Math.max(visionAct, textAct);
  const weightBytes = parameters * bytes;
  return {
    parameters,
    tokens: { video, text, total },
    weightBytes,
    kvCacheBytes,
    activationBytes,
    totalBytes: weightBytes + kvCacheBytes + activationBytes,
  };
}

/**
 * The memory one conversation holds while it decodes (Qwen2-VL, Vamba): the text decoder's K/V per token, a
 * token's activations in a layer (as the prefill's in estimateMemory) and a row's f32 logits twice.
 */
export function decodeCacheOf(t: Qwen2VLTextConfig, dtype: DType): DecodeCacheSize {
  const layers = attentionLayers(t.num_hidden_layers, t.num_key_value_heads, t.head_dim);
  const mlpRows = t.hidden_act === 'silu' ? 3 : 4;
  return {
    bytesPerToken: kvBytesPerToken(layers, dtype),
    bytesPerSequence: 0,
    activationBytesPerToken: (8 * t.hidden_size + mlpRows * t.intermediate_size) * BYTES_PER_ELEMENT[dtype],
    logitsBytes: 2 * t.vocab_size * 4,
  };
}

/** A video's patch grid [t, h, w] from its frame count and decoded size, as the processor will make it. */
export function videoGrid(
  c: PreprocessorConfig,
  frames: number,
  width: number,
  height: number,
  oddLast: 'pad' | 'drop',
): GridTHW {
  const factor = c.patch_size * c.merge_size;
  const [h, w] = c.do_resize
    ? smartResize(height, width, { factor, minPixels: c.min_pixels, maxPixels: c.max_pixels })
    : [height, width];
  const t = (oddLast === 'drop' ? Math.floor : Math.ceil)(frames / c.temporal_patch_size);
  return [t, h / c.patch_size, w / c.patch_size];
}

/**
 * Device bytes of one vision-tower call over `patches` patch rows (Qwen2-VL's tower, also Vamba's): the
 * pixels uploaded in f32 and their narrowed copy, per block the residual, norm, q/k/v, rotated q/k, attention
 * output, projection and the MLP hidden before and after its activation, the f32 rotary tables, and the
 * merged output.
 */
export function visionCallBytes(v: Qwen2VLVisionConfig, patches: number, dtype: DType): number {
  const b = BYTES_PER_ELEMENT[dtype];
  const rowLen = v.in_channels * v.temporal_patch_size * v.patch_size ** 2;
  const headDim = v.embed_dim / v.num_heads;
  return (
    patches * rowLen * (4 + (dtype === 'f32' ? 0 : b)) +
    patches * v.embed_dim * (10 + 2 * v.mlp_ratio) * b +
    2 * patches * headDim * 4 +
    (patches / v.spatial_merge_size ** 2) * v.hidden_size * b
  );
}

/**
 * Patch rows of the largest vision call when a video streams through in batches of `framesPerBatch` frames
 * (chunked prefill makes later batches smaller, never the first, which runs before the frame size is
 * known), a batch cut into calls of at most `maxPatchesPerChunk` patches (a larger group runs alone).
 */
export function visionBatchPatches(
  v: Qwen2VLVisionConfig,
  grid: GridTHW,
  framesPerBatch: number,
  maxPatchesPerChunk = 16384,
): number {
  const perGroup = grid[1] * grid[2];
  const groups = Math.min(
    Math.max(1, Math.floor(framesPerBatch / v.temporal_patch_size)),
    grid[0],
    Math.max(1, Math.floor(maxPatchesPerChunk / perGroup)),
  );
  return groups * perGroup;
}

export interface Qwen2VLEncodePlanOptions {
  grid: GridTHW;
  /** Text tokens of the prefix around the video (the chat template up to the end of the video). */
  prefixTextTokens: number;
  /** Tokens reserved after the prefix for the questions (the runner's PREFIX_ROOM). */
  room: number;
  framesPerBatch: number;
  /** Chunked prefill's video tokens a piece; absent: at once. */
  pieceTokens?: number;
  /** Whether a conversation continues the prefix (for a question's cost). */
  continues: (turns: readonly ChatTurn[]) => boolean;
  dtype: DType;
}

/**
 * The device memory of encoding a video as the Qwen2-VL runner does it (the server's admission): the vision
 * tower streams batches of frames into the whole video's tokens [T, hidden], then the prefix (template text
 * + the video) is prefilled into a K/V cache of the prefix plus `room`, at once or in pieces. Its peak is the
 * larger of the two phases:
 *
 *   vision:  the tokens + one vision call
 *   prefill: the tokens + the prefix's embeddings + the K/V cache + one piece's activations
 *
 * and what stays (the video's state) is the tokens and the K/V cache.
 */
export function qwen2vlEncodePlan(config: Qwen2VLConfig, o: Qwen2VLEncodePlanOptions): EncodePlan {
  const t = config.text;
  const b = BYTES_PER_ELEMENT[o.dtype];
  const [gt, gh, gw] = o.grid;
  const videoTokens = (gt * gh * gw) / config.vision.spatial_merge_size ** 2;
  const tokensBytes = videoTokens * t.hidden_size * b;
  const vision =
    tokensBytes +
    visionCallBytes(config.vision, visionBatchPatches(config.vision, o.grid, o.framesPerBatch), o.dtype);
  const n = videoTokens + o.prefixTextTokens;
  const kv = (n + o.room) * decodeCacheOf(t, o.dtype).bytesPerToken;
  const prefill = tokensBytes + prefillBytes(t, n, o.pieceTokens || n, o.dtype) + kv;
  return {
    videoTokens,
    stateBytes: tokensBytes + kv,
    peakBytes: Math.max(vision, prefill),
    questionBytes: qwen2vlQuestionCost(config, { videoTokens, prefixTokens: n }, o.continues, o.dtype),
  };
}

/**
 * The decoder's prefill of `n` tokens in pieces of `piece` (its K/V cache not counted): the prompt's
 * embeddings, one piece through a decoder layer (the prefill's activations as in estimateMemory), its f32 rotary
 * tables (3 M-RoPE sections share one table a side) and the f32 logits of the last position.
 */
function prefillBytes(t: Qwen2VLTextConfig, n: number, piece: number, dtype: DType): number {
  const b = BYTES_PER_ELEMENT[dtype];
  const p = Math.min(n, piece);
  const mlpRows = t.hidden_act === 'silu' ? 3 : 4;
  const pieceBytes = p * (8 * t.hidden_size + mlpRows * t.intermediate_size) * b + 2 * p * t.head_dim * 4;
  return 2 * n * t.hidden_size * b + pieceBytes + t.vocab_size * 4;
}

/**
 * A question over a video beyond its decode cache (which counts its own tokens' K/V and activations):
 *
 *   continuing the video's prefilled prefix of `prefixTokens` (the default prompt): while another question
 *     writes after the prefix, its prefill joins the prefix's K/V to its own one layer at a time (nn/cache.ts
 *     `write`: a copy of the prefix's rows, then their concatenation with its own, freed with the layer);
 *   any other prompt (a system message of its own, or no prefix): the whole prompt is prefilled again at once,
 *     so the video's tokens' K/V and their prefill;
 *   an image (`imagePatches`, kept as pixels): every question runs the vision tower over it, then that prefill
 *     with the image's tokens held.
 *
 * `continues` says whether a conversation continues the prefix (a budget without turns is taken to).
 */
export function qwen2vlQuestionCost(
  config: Qwen2VLConfig,
  video: { videoTokens: number; prefixTokens: number; imagePatches?: number },
  continues: (turns: readonly ChatTurn[]) => boolean,
  dtype: DType,
): QuestionCost {
  const t = config.text;
  const kv = decodeCacheOf(t, dtype).bytesPerToken;
  const joined = (2 * video.prefixTokens * kv) / t.num_hidden_layers;
  const again = video.videoTokens * kv + prefillBytes(t, video.videoTokens, video.videoTokens, dtype);
  if (video.imagePatches)
    return () =>
      Math.max(
        visionCallBytes(config.vision, video.imagePatches!, dtype),
        video.videoTokens * t.hidden_size * BYTES_PER_ELEMENT[dtype] + again,
      );
  return (q) => (!q.turns || continues(q.turns) ? joined : again);
}
