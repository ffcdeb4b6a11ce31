/**
 * What makes a Qwen2-VL config a Vamba config (research/vamba.md §3.3): the five extra fields of the
 * official `Qwen2VLConfig`. A checkpoint is Vamba when its config enables the Mamba mixer or α balancing, or
 * when its tensors have cross-attention / vision-mixer / alpha names (configs saved by other tools may drop
 * the extras: the tensors then still tell).
 */

import type { JsonObject } from '../../io/json-fields.js';
import { type Mamba2Config, mamba2Config } from '../../nn/mamba2.js';
import { isQwen2VLConfigJson, parseQwen2VLConfig, type Qwen2VLConfig } from '../qwen2vl/config.js';

export function isVambaConfig(config: Qwen2VLConfig): boolean {
  return config.vision_mamba_mixer_config.enable || config.use_alpha_balancing;
}

export function hasVambaTensors(names: Iterable<string>): boolean {
  for (const n of names) if (/\.layers\.\d+\.(cross_attn\.|vision_mixer\.|alpha$)/.test(n)) return true;
  return false;
}

/** The one test of "is this checkpoint Vamba": a Qwen2-VL config with Vamba's fields, or Vamba's tensors. */
export function isVambaCheckpoint(json: JsonObject, tensorNames: readonly string[]): boolean {
  if (!isQwen2VLConfigJson(json)) return false;
  if (hasVambaTensors(tensorNames)) return true;
  try {
    return isVambaConfig(parseQwen2VLConfig(json));
  } catch {
    return false; // not a config this family reads; Qwen2-VL's family reports what is wrong with it
  }
}

/** The Mamba-2 mixer of the video blocks, from `vision_mamba_mixer_config` (mamba_ssm defaults otherwise). */
export function vambaMixerConfig(config: Qwen2VLConfig): Mamba2Config {
  const m = config.vision_mamba_mixer_config;
  const dInner = m.d_ssm ?? m.expand * config.text.hidden_size;
  return mamba2Config(config.text.hidden_size, {
    dInner,
    dState: m.d_state,
    dConv: m.d_conv,
    headDim: m.headdim,
    nGroups: m.ngroups,
    chunkSize: m.chunk_size,
    rmsnorm: m.rmsnorm,
    normBeforeGate: m.norm_before_gate,
    normGroupSize: dInner / m.ngroups,
    normEps: 1e-5,
    dtLimit: m.dt_limit,
  });
}

/** eps of the block's pre-norm (mamba_ssm `RMSNorm` default). */
export const VIDEO_NORM_EPS = 1e-5;
