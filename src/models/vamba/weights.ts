/**
 * The Vamba checkpoint layout (research/vamba.md §3.2): every Qwen2-VL tensor plus, per layer,
 * `cross_attn.{q,k,v,o}_proj`, `vision_mixer.norm.weight`, `vision_mixer.mixer.*` and `alpha`.
 */

import type { TensorSource } from '../../io/safetensors.js';
import { countParams, type ParamSpec, type ParamStore } from '../../nn/params.js';
import type { Backend } from '../../runtime/backend.js';
import type { DType } from '../../runtime/dtype.js';
import type { Qwen2VLConfig } from '../qwen2vl/config.js';
import { loadQwen2VLParams, qwen2vlSpecs, textAttentionConfig } from '../qwen2vl/weights.js';
import { vambaMixerConfig } from './config.js';
import { vambaLayerSpecs } from './layer.js';

export function vambaSpecs(config: Qwen2VLConfig): ParamSpec[] {
  const mixer = config.vision_mamba_mixer_config.enable ? vambaMixerConfig(config) : null;
  const attn = textAttentionConfig(config);
  const specs = qwen2vlSpecs(config);
  for (let i = 0; i < config.text.num_hidden_layers; i++)
    specs.push(...vambaLayerSpecs(`model.layers.${i}`, config, attn, mixer));
  return specs;
}

/** Parameters of a Vamba model built from `config` (11,309,837,020 for TIGER-Lab/Vamba-Qwen2-VL-7B). */
export const vambaParamCount = (config: Qwen2VLConfig): number => countParams(vambaSpecs(config));

/** Loads and checks every tensor (names and shapes); a missing or unexpected tensor is a ModelError listing them. */
export function loadVambaParams(
  source: TensorSource,
  config: Qwen2VLConfig,
  backend: Backend,
  dtype: DType,
  where: string,
): Promise<ParamStore> {
  return loadQwen2VLParams(source, config, backend, dtype, where, vambaSpecs(config), 'Vamba');
}
