/**
 * Vamba's memory for a video, before loading or encoding anything. Unlike Qwen2-VL nothing here grows with
 * the square of the video: the peak is the weights, the per-layer cross-attention K/V kept for questions, the
 * video stream V while it is being encoded, and one chunk's worth of temporaries (a vision batch or a Mamba
 * chunk), whichever phase is largest:
 *
 *   vision phase:    V + one vision chunk
 *   LLM phase:       V + K/V of every layer + one Mamba chunk
 *   question phase:  K/V of every layer + the text KV cache + logits
 */

import type { DecodeCacheSize } from '../../facade/types.js';
import { BYTES_PER_ELEMENT, type DType } from '../../runtime/dtype.js';
import type { EncodePlan } from '../family.js';
import type { Qwen2VLConfig } from '../qwen2vl/config.js';
import { smartResize } from '../qwen2vl/processor.js';
import { decodeCacheOf, visionBatchPatches, visionCallBytes } from '../qwen2vl/size.js';
import type { GridTHW } from '../qwen2vl/vision.js';
import { vambaMixerConfig } from './config.js';
import { DEFAULT_VIDEO_CHUNK } from './language-model.js';
import { vambaParamCount } from './weights.js';

export interface VambaMemoryOptions {
  /** Sampled frames (an odd last frame is dropped, as Vamba's processor does). */
  frames: number;
  /** The patch grid [t, h, w] of already-processed frames: replaces frames/width/height. */
  grid?: GridTHW;
  /** Frame size before smart_resize (default 640×360 → 644×364, 299 tokens per two frames). */
  width?: number;
  height?: number;
  minPixels?: number;
  maxPixels?: number;
  /** Video tokens per Mamba chunk (default 4096) and patches per vision-tower call (default 16384). */
  chunkLen?: number;
  maxPatchesPerChunk?: number;
  /** Prompt and generated tokens of one question (defaults 64 and 512). */
  textTokens?: number;
  newTokens?: number;
  dtype?: DType;
}

export interface VambaMemoryEstimate {
  parameters: number;
  videoTokens: number;
  weightBytes: number;
  /** The encoded video kept for questions: every layer's cross-attention K/V. */
  videoKVBytes: number;
  /** The video stream V [tokens, hidden] while encoding. */
  videoStreamBytes: number;
  visionChunkBytes: number;
  mambaChunkBytes: number;
  questionBytes: number;
  phase: 'vision' | 'llm' | 'question';
  totalBytes: number;
}

export function estimateVambaMemory(config: Qwen2VLConfig, o: VambaMemoryOptions): VambaMemoryEstimate {
  const v = config.vision;
  const t = config.text;
  const b = BYTES_PER_ELEMENT[o.dtype ?? 'bf16'];
  const [h, w] = o.grid
    ? [o.grid[1] * v.patch_size, o.grid[2] * v.patch_size]
    : smartResize(o.height ?? 360, o.width ?? 640, {
        factor: v.patch_size * v.spatial_merge_size,
        minPixels: o.minPixels ?? 128 * 28 * 28,
        maxPixels: o.maxPixels ?? 768 * 28 * 28,
      });
  const groups = o.grid ? o.grid[0] : Math.floor(o.frames / v.temporal_patch_size);
  const patchesPerGroup = (h / v.patch_size) * (w / v.patch_size);
  const videoTokens = (groups * patchesPerGroup) / v.spatial_merge_size ** 2;
  const parameters = vambaParamCount(config);
  const weightBytes = parameters * b;
  const kvPerToken = 2 * t.num_key_value_heads * t.head_dim;
  const videoKVBytes = t.num_hidden_layers * videoTokens * kvPerToken * b;
  const videoStreamBytes = videoTokens * t.hidden_size * b;

  // One vision-tower call: f32 pixels and their narrowed copy, then per block the residual, norm, qkv,
  // rotated q/k, attention output, projection and the MLP hidden (before and after the activation).
  const groupsPerCall = Math.max(1, Math.floor((o.maxPatchesPerChunk ?? 16384) / patchesPerGroup));
  const P = Math.min(groups, groupsPerCall) * patchesPerGroup;
  const rowLen = v.in_channels * v.temporal_patch_size * v.patch_size ** 2;
  const headDim = v.embed_dim / v.num_heads;
  const visionChunkBytes =
    P * rowLen * (4 + b) + P * v.embed_dim * (10 + 2 * v.mlp_ratio) * b + 2 * P * headDim * 4;

  // One Mamba chunk: normed input, in_proj output, conv output, dt (f32), SSD output, gated output, out_proj
  // output and the residual sum; the SSD's per-chunk f32 states.
  const m = vambaMixerConfig(config);
  const nHeads = m.dInner / m.headDim;
  const convDim = m.dInner + 2 * m.nGroups * m.dState;
  const dInProj = 2 * m.dInner + 2 * m.nGroups * m.dState + nHeads;
  const C = Math.min(videoTokens, o.chunkLen ?? DEFAULT_VIDEO_CHUNK);
  const mambaChunkBytes =
    C * (4 * t.hidden_size + dInProj + convDim + 2 * m.dInner) * b +
    3 * C * nHeads * 4 +
    Math.ceil(C / m.chunkSize) * nHeads * m.headDim * m.dState * 4;

  // A question: its KV cache, the text activations (MLP-dominated) and the f32 logits of the last position.
  const text = (o.textTokens ?? 64) + (o.newTokens ?? 512);
  const questionBytes =
    t.num_hidden_layers * text * kvPerToken * b +
    (o.textTokens ?? 64) * (4 * t.hidden_size + 3 * t.intermediate_size) * b +
    t.vocab_size * (4 + b);

  const phases = {
    vision: videoStreamBytes + visionChunkBytes,
    llm: videoStreamBytes + videoKVBytes + mambaChunkBytes,
    question: videoKVBytes + questionBytes,
  };
  const phase = (Object.keys(phases) as Array<keyof typeof phases>).reduce((a, k) =>
    phases[k] > phases[a] ? k : a,
  );
  return {
    parameters,
    videoTokens,
    weightBytes,
    videoKVBytes,
    videoStreamBytes,
    visionChunkBytes,
    mambaChunkBytes,
    questionBytes,
    phase,
    totalBytes: weightBytes + phases[phase],
  };
}

/**
 * The memory one conversation holds while it decodes (`ModelInfo.decodeCache`): Qwen2's (the text decoder's
 * K/V, a token's activations in a layer, the logits) and, per prompt token, what the text half of a Vamba layer
 * holds beyond it: the cross-attention's query (and its rotated copy with cross_attn_use_position_embeddings),
 * its output and its projection, and the prompt's i32 ids. The attention's scores stay inside its kernel, so a
 * question's peak does not grow with the video.
 */
export function vambaDecodeCache(config: Qwen2VLConfig, dtype: DType): DecodeCacheSize {
  const t = config.text;
  const qwen2 = decodeCacheOf(t, dtype);
  const q = t.num_attention_heads * t.head_dim;
  const cross =
    (q * (config.cross_attn_use_position_embeddings ? 3 : 2) + t.hidden_size) * BYTES_PER_ELEMENT[dtype];
  return { ...qwen2, activationBytesPerToken: (qwen2.activationBytesPerToken ?? 0) + cross + 4 };
}

export interface VambaEncodePlanOptions {
  grid: GridTHW;
  framesPerBatch: number;
  /** Chunked prefill's video tokens a piece; absent: at once. */
  pieceTokens?: number;
  /** Video tokens per Mamba chunk (default 4096). */
  chunkLen?: number;
  dtype: DType;
}

/**
 * The device memory of encoding a video as the facade does it (the server's admission): the vision tower
 * streams batches of frames into the video stream V [T, hidden], then every layer's Mamba block and
 * cross-attention K/V run over V, at once (chunks of `chunkLen`) or in pieces of whole temporal groups, whose
 * K/V are copied into buffers for the whole video. The peak is the larger phase:
 *
 *   vision: V + one vision call
 *   LLM:    V + every layer's K/V + a piece's K/V (in pieces) + one Mamba chunk
 *
 * and what stays is every layer's K/V.
 */
export function vambaEncodePlan(config: Qwen2VLConfig, o: VambaEncodePlanOptions): EncodePlan {
  const v = config.vision;
  const perGroup = (o.grid[1] * o.grid[2]) / v.spatial_merge_size ** 2;
  const step = o.pieceTokens ? Math.max(1, Math.floor(o.pieceTokens / perGroup)) : o.grid[0];
  const pieces = step < o.grid[0];
  const pieceTokens = Math.min(o.grid[0], step) * perGroup;
  const e = estimateVambaMemory(config, {
    frames: o.grid[0] * v.temporal_patch_size,
    grid: o.grid,
    chunkLen: Math.min(pieceTokens, o.chunkLen ?? DEFAULT_VIDEO_CHUNK),
    dtype: o.dtype,
  });
  const vision =
    e.videoStreamBytes + visionCallBytes(v, visionBatchPatches(v, o.grid, o.framesPerBatch), o.dtype);
  const pieceKV = pieces ? (e.videoKVBytes * pieceTokens) / e.videoTokens : 0;
  const llm = e.videoStreamBytes + e.videoKVBytes + pieceKV + e.mambaChunkBytes;
  return { videoTokens: e.videoTokens, stateBytes: e.videoKVBytes, peakBytes: Math.max(vision, llm) };
}
