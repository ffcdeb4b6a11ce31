/**
 * TSTAR's tokens and memory for N frames of W×H without weights: the vision tower's tokens per frame group
 * (Qwen2-VL: the processor's grid, smart_resize within its pixel bounds, per 2 frames; SigLIP: its patches per
 * frame, whatever the frame size), the compressor's token count, the LLM's state for them (attention K/V per
 * attention layer, fixed Mamba states for Nemotron-H), and the encode's memory as the runner allocates it
 * (`tstarEncodePlan`: the CLI's fit check and the server's admission).
 */
import { mamba2ForwardBytes } from '../../nn/mamba2-size.js';
import { BYTES_PER_ELEMENT, type DType } from '../../runtime/dtype.js';
import type { EncodePlan, QuestionCost } from '../family.js';
import { MambaMiaCompressor } from '../mambamia/compressor.js';
import { mixerConfig } from '../mambamia/config.js';
import { blockPeakBytes, nemotronHStateBytes } from '../nemotron_h/size.js';
import { smartResize } from '../qwen2vl/processor.js';
import { decodeCacheOf, visionBatchPatches, visionCallBytes } from '../qwen2vl/size.js';
import type { GridTHW } from '../qwen2vl/vision.js';
import { patchGrid } from '../siglip/config.js';
import { siglipForwardBytes, siglipPixelsBytes } from '../siglip/size.js';
import type { TstarConfig } from './config.js';

/** Frames the runner preprocesses and sends through the vision tower at a time (whole 2-frame groups). */
export const ENCODE_BATCH_FRAMES = 16;

export interface TstarGeometry {
  frames: number;
  width: number;
  height: number;
  minPixels: number;
  maxPixels: number;
  dtype: DType;
}

/** Frame groups, vision tokens per group and (Qwen2-VL) the patch grid [t, h, w] for N frames of W×H. */
function towerGrid(c: TstarConfig, g: TstarGeometry): { groups: number; perGroup: number; grid: GridTHW } {
  const v = c.vision;
  if (v.kind === 'siglip') {
    const { side, tokens } = patchGrid(v.config);
    return { groups: g.frames, perGroup: tokens, grid: [g.frames, side, side] };
  }
  const q = v.config;
  const [h, w] = smartResize(g.height, g.width, {
    factor: q.patch_size * q.spatial_merge_size,
    minPixels: g.minPixels,
    maxPixels: g.maxPixels,
  });
  const groups = Math.ceil(g.frames / q.temporal_patch_size);
  return {
    groups,
    perGroup: ((h / q.patch_size) * (w / q.patch_size)) / q.spatial_merge_size ** 2,
    grid: [groups, h / q.patch_size, w / q.patch_size],
  };
}

export function estimateTstar(c: TstarConfig, g: TstarGeometry) {
  const bytes = BYTES_PER_ELEMENT[g.dtype];
  const plan = tstarEncodePlan(c, g);
  const { groups, perGroup } = towerGrid(c, g);
  const visionTokens = groups * perGroup;
  const videoTokens = plan.videoTokens;
  let videoState: number;
  if (c.text.kind === 'qwen2') {
    const t = c.text.config.text;
    videoState = 2 * t.num_hidden_layers * t.num_key_value_heads * t.head_dim * videoTokens * bytes;
  } else {
    const s = nemotronHStateBytes(c.text.config, videoTokens, g.dtype);
    videoState = s.kv + s.mamba;
  }
  // The LLM's state for the compressed tokens stays; the encode's peak comes on top of it.
  return { visionTokens, videoTokens, videoState, working: plan.peakBytes };
}

/**
 * The device memory of encoding a video as the runner does it (runner.ts), in two phases:
 *
 *   vision:   the vision tokens so far (Qwen2-VL: one buffer for the whole video, filled batch by batch; SigLIP:
 *             the batches' outputs) + one tower call over ENCODE_BATCH_FRAMES frames
 *   compress: the whole clip's vision tokens (SigLIP: the batches and their concatenation) + the compressor
 *
 * and what stays is the compressed tokens [n, LLM width].
 */
export function tstarEncodePlan(c: TstarConfig, g: TstarGeometry): EncodePlan {
  const b = BYTES_PER_ELEMENT[g.dtype];
  const p = c.projector;
  const { groups, perGroup, grid } = towerGrid(c, g);
  const vision = groups * perGroup * c.vision.width * b;
  const videoTokens = MambaMiaCompressor.tokenCount(p, groups, perGroup);
  const stateBytes = videoTokens * p.output_size * b;
  const v = c.vision;
  let tower: number;
  let held: number;
  if (v.kind === 'qwen2_vl') {
    tower = visionCallBytes(v.config, visionBatchPatches(v.config, grid, ENCODE_BATCH_FRAMES), g.dtype);
    held = vision;
  } else {
    const frames = Math.min(g.frames, ENCODE_BATCH_FRAMES);
    const pixels = siglipPixelsBytes(v.config, frames);
    tower = Math.max(pixels.peak, pixels.held + siglipForwardBytes(v.config, frames, g.dtype));
    held = g.frames > ENCODE_BATCH_FRAMES ? 2 * vision : vision;
  }
  return {
    videoTokens,
    stateBytes,
    peakBytes: Math.max(vision + tower, held + compressorBytes(c, groups * perGroup, videoTokens, g.dtype)),
    questionBytes: tstarQuestionCost(c, videoTokens, g.dtype),
  };
}

/**
 * The compressor over `tokens` vision tokens (its input not counted): its scope keeps input_proj's output, the
 * queries, the interleaved sequence and every block's output until it returns; the last block adds its norm, the
 * aggregation's patch copy and per-group temporaries, and its mixer's working set (nn/mamba2-size.ts); then
 * the final norm, the query slots, the sampled rows and output_proj's output.
 */
function compressorBytes(c: TstarConfig, tokens: number, out: number, dtype: DType): number {
  const p = c.projector;
  const b = BYTES_PER_ELEMENT[dtype];
  const h = p.hidden_size;
  const k = p.mambamia_chunk_size;
  const n = tokens / k;
  const seq = n * (k + 1);
  const base = (p.input_size !== h ? tokens * h : 0) + 2 * n * h + seq * h;
  const aggregate = p.mambamia_gated_aggregation ? n * k * h + n * (5 * h + 2 * k + 4) : 0;
  const block = (seq * h + aggregate) * b + mamba2ForwardBytes(mixerConfig(p), seq, dtype);
  const tail = (2 * seq * h + n * h + out * (h + p.output_size)) * b;
  return (base + (p.num_hidden_layers - 1) * seq * h) * b + Math.max(block, tail);
}

/**
 * A question over `videoTokens` compressed tokens: the LLM's prefill over them and the prompt's text, at its
 * peak, with the session's cache for the prompt and the answer (TSTAR gives no decode cache of its own):
 *
 *   Qwen2:      the K/V, a prefill's activations per token (qwen2vl/size.ts `decodeCacheOf`), the f32 rotary
 *               tables and the last row's logits
 *   Nemotron-H: the K/V and Mamba states, the prompt's embeddings, the widest block (nemotron_h/size.ts) with
 *               three rows of the stream beside it (NemotronHModel.forward adds a block's output in the next
 *               block's norm pass: the stream, the previous block's output and their sum) and the last row's
 *               logits
 */
export function tstarQuestionCost(c: TstarConfig, videoTokens: number, dtype: DType): QuestionCost {
  const b = BYTES_PER_ELEMENT[dtype];
  return ({ textTokens, newTokens }) => {
    const prompt = textTokens + videoTokens;
    if (c.text.kind === 'qwen2') {
      const t = c.text.config.text;
      const d = decodeCacheOf(t, dtype);
      return (
        d.bytesPerToken * (prompt + newTokens) +
        (d.activationBytesPerToken ?? 0) * prompt +
        2 * prompt * t.head_dim * 4 +
        (d.logitsBytes ?? 0)
      );
    }
    const m = c.text.config;
    const state = nemotronHStateBytes(m, prompt + newTokens, dtype);
    let widest = 0;
    for (const kind of m.hybrid_override_pattern)
      widest = Math.max(widest, blockPeakBytes(m, kind, prompt, 3, dtype));
    return state.kv + state.mamba + prompt * m.hidden_size * b + widest + m.vocab_size * (b + 4);
  };
}
