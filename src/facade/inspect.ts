/**
 * What a checkpoint is, read from its config.json and safetensors headers only (no weights loaded):
 * architecture, parameter count, and an estimate of the memory a video of N frames needs.
 */
import { Checkpoint } from '../io/checkpoint.js';
import { type Qwen2VLConfig, readQwen2VLConfig } from '../io/qwen2vl-config.js';
import { roundHalfEven } from '../media/sampling.js';
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
  /** Bytes per activation element: 2 for bf16 on a GPU, 4 for the CPU backend's f32. */
  activationBytes?: number;
  /** Prompt + answer tokens (default 512). */
  textTokens?: number;
}

export interface MemoryEstimate {
  videoTokens: number;
  weights: number;
  /** Per-video state kept for follow-up questions (Vamba: video hidden states + cross-attn K/V; Qwen2-VL: the KV cache of the video tokens). */
  videoState: number;
  /** The largest transient working set (one layer / one vision chunk at a time). */
  working: number;
  total: number;
}

/** Qwen2-VL's smart_resize to multiples of patch·merge (28), then tokens per temporal patch (2 frames). */
export function videoTokens(config: Qwen2VLConfig, frames: number, width: number, height: number): number {
  const v = config.vision;
  const factor = v.patch_size * v.spatial_merge_size;
  const side = (x: number) => Math.max(factor, roundHalfEven(x / factor) * factor);
  const perGroup = (side(width) / factor) * (side(height) / factor);
  return Math.ceil(frames / v.temporal_patch_size) * perGroup;
}

/**
 * A planning estimate, not a measurement: weights as stored, the per-video state, and the biggest
 * transient buffer. Formulas (V video tokens, L layers, d hidden, kv·hd the K/V width, b activation bytes):
 *   Vamba     state = V·d·b (video hidden states) + L·V·2·kv·hd·b (cross-attention K/V, cached per video)
 *             working = V·(2·d_inner + 2·g·N + h)·4 (one Mamba in_proj output, f32)
 *   Qwen2-VL  state = L·(V+T)·2·kv·hd·b (KV cache: the video is in the sequence)
 *             working = (V+T)·(d + 2·ffn)·b (one decoder layer's MLP at prefill)
 */
export function estimateMemory(summary: ModelSummary, g: FrameGeometry): MemoryEstimate {
  const { config } = summary;
  const t = config.text;
  const b = g.activationBytes ?? 2;
  const T = g.textTokens ?? 512;
  const V = videoTokens(config, g.frames, g.width ?? 640, g.height ?? 360);
  const kvWidth = 2 * t.num_key_value_heads * t.head_dim;
  let videoState: number;
  let working: number;
  if (summary.architecture === 'vamba') {
    const m = config.vision_mamba_mixer_config;
    const dInner = m.expand * t.hidden_size;
    const heads = dInner / m.headdim;
    videoState = V * t.hidden_size * b + t.num_hidden_layers * V * kvWidth * b;
    working = V * (2 * dInner + 2 * m.ngroups * m.d_state + heads) * 4;
  } else {
    videoState = t.num_hidden_layers * (V + T) * kvWidth * b;
    working = (V + T) * (t.hidden_size + 2 * t.intermediate_size) * b;
  }
  return {
    videoTokens: V,
    weights: summary.weightBytes,
    videoState,
    working,
    total: summary.weightBytes + videoState + working,
  };
}
