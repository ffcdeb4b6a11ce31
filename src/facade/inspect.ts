/**
 * What a checkpoint is, read from its config.json and safetensors headers only (no weights loaded):
 * architecture, parameter count, and an estimate of the memory a video of N frames needs.
 */
import { Checkpoint } from '../io/checkpoint.js';
import { roundHalfEven } from '../media/sampling.js';
import { type Qwen2VLConfig, readQwen2VLConfig } from '../models/qwen2vl/config.js';
import { estimateMemory as estimateQwen2VL } from '../models/qwen2vl/size.js';
import { estimateVambaMemory } from '../models/vamba/size.js';
import type { Architecture } from './types.js';

export interface ModelSummary {
  dir: string;
  architecture: Architecture;
  config: Qwen2VLConfig;
  parameters: number;
  weightBytes: number;
  /** The dtype most of the weights are stored in. */
  dtype: string;
}

/**
 * Vamba is the Qwen2-VL class plus cross-attention and a Mamba mixer on the video tokens; its config keeps
 * model_type "qwen2_vl", so the Vamba fields (or Vamba weights) tell them apart.
 */
export function detectArchitecture(config: Qwen2VLConfig, tensorNames: readonly string[] = []): Architecture {
  if (config.vision_mamba_mixer_config.enable || config.use_alpha_balancing) return 'vamba';
  if (tensorNames.some((n) => n.includes('.cross_attn.') || n.includes('vision_mixer'))) return 'vamba';
  return 'qwen2_vl';
}

export async function inspectModel(dir: string): Promise<ModelSummary> {
  const config = await readQwen2VLConfig(dir);
  await using ckpt = await Checkpoint.open(dir);
  const names = ckpt.names();
  let parameters = 0;
  const bytesByDtype = new Map<string, number>();
  for (const name of names) {
    const t = ckpt.info(name);
    parameters += t.shape.reduce((a, d) => a * d, 1);
    bytesByDtype.set(t.dtype, (bytesByDtype.get(t.dtype) ?? 0) + t.end - t.begin);
  }
  const dtype = [...bytesByDtype].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 'none';
  return {
    dir,
    architecture: detectArchitecture(config, names),
    config,
    parameters,
    weightBytes: ckpt.bytes,
    dtype,
  };
}

export interface FrameGeometry {
  frames: number;
  /** Frame size fed to the model (after any pre-resize); default 640×360 (Vamba's paper setting). */
  width?: number;
  height?: number;
  /** The processor's smart_resize pixel bounds for videos (default Qwen2-VL's 128·28² … 768·28²). */
  minPixels?: number;
  maxPixels?: number;
  /** Bytes per activation element: 2 for bf16 on a GPU, 4 for the CPU backend's f32. */
  activationBytes?: number;
}

export interface MemoryEstimate {
  videoTokens: number;
  weights: number;
  /** Per-video state (Vamba: video hidden states + cross-attn K/V; Qwen2-VL: the KV cache of the whole sequence). */
  videoState: number;
  /** The largest transient working set (one layer / one vision chunk at a time). */
  working: number;
  total: number;
}

/** Vamba's video tokens: smart_resize to multiples of patch·merge (28), merged tokens per temporal patch (2 frames). */
export function videoTokens(config: Qwen2VLConfig, frames: number, width: number, height: number): number {
  const v = config.vision;
  const factor = v.patch_size * v.spatial_merge_size;
  const side = (x: number) => Math.max(factor, roundHalfEven(x / factor) * factor);
  const perGroup = (side(width) / factor) * (side(height) / factor);
  return Math.ceil(frames / v.temporal_patch_size) * perGroup;
}

/**
 * A planning estimate, not a measurement: weights as stored, the per-video state, and the biggest
 * transient buffer. Qwen2-VL uses its model's own estimate (models/qwen2vl/size.ts: the video is in the
 * KV cache). Vamba uses models/vamba/size.ts: state = the video stream V and every layer's cross-attention
 * K/V; working = the largest phase's chunk-sized temporaries (they do not grow with the video).
 */
export function estimateMemory(summary: ModelSummary, g: FrameGeometry): MemoryEstimate {
  const { config } = summary;
  const b = g.activationBytes ?? 2;
  const video = {
    minPixels: g.minPixels,
    maxPixels: g.maxPixels,
    frames: g.frames,
    width: g.width ?? 640,
    height: g.height ?? 360,
    dtype: b === 4 ? ('f32' as const) : ('bf16' as const),
  };
  if (summary.architecture === 'qwen2_vl') {
    const q = estimateQwen2VL(config, video);
    const videoState = q.kvCacheBytes;
    return {
      videoTokens: q.tokens.video,
      weights: summary.weightBytes,
      videoState,
      working: q.activationBytes,
      total: summary.weightBytes + videoState + q.activationBytes,
    };
  }
  // Vamba: the model's own estimate (models/vamba/size.ts), measured within ~1% on an H200.
  const e = estimateVambaMemory(config, video);
  const videoState = e.videoKVBytes + e.videoStreamBytes;
  const working = e.totalBytes - e.weightBytes - videoState;
  return {
    videoTokens: e.videoTokens,
    weights: summary.weightBytes,
    videoState,
    working,
    total: summary.weightBytes + videoState + working,
  };
}
