/**
 * The SigLIP vision tower's shape, under transformers' `SiglipVisionConfig` names. Two parameter layouts hold it:
 * timm's `VisionTransformer` (what TimeViper loads: fused qkv, exact GELU) and transformers'
 * `SiglipVisionModel` (separate q/k/v, tanh-GELU `gelu_pytorch_tanh`).
 */
import { ModelError } from '../../errors.js';

export type SiglipLayout = 'timm' | 'hf';

export interface SiglipVisionConfig {
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  image_size: number;
  patch_size: number;
  num_channels: number;
  layer_norm_eps: number;
  /** `gelu` (exact erf: timm's nn.GELU) or `gelu_pytorch_tanh` (transformers' SigLIP). */
  hidden_act: string;
}

/** `vit_so400m_patch14_siglip_384` (timm) = `google/siglip-so400m-patch14-384`'s vision tower; 27×27 = 729 patches. */
export function so400m(layout: SiglipLayout): SiglipVisionConfig {
  return {
    hidden_size: 1152,
    intermediate_size: 4304,
    num_hidden_layers: 27,
    num_attention_heads: 16,
    image_size: 384,
    patch_size: 14,
    num_channels: 3,
    layer_norm_eps: 1e-6,
    hidden_act: layout === 'timm' ? 'gelu' : 'gelu_pytorch_tanh',
  };
}

/** Patches per side and per image. */
export function patchGrid(c: SiglipVisionConfig): { side: number; tokens: number } {
  const side = Math.floor(c.image_size / c.patch_size);
  return { side, tokens: side * side };
}

/** A `vision_config` object from a config.json, with transformers' defaults for absent keys. */
export function parseSiglipVisionConfig(
  raw: Record<string, unknown>,
  layout: SiglipLayout,
): SiglipVisionConfig {
  const base = so400m(layout);
  const out = { ...base };
  for (const key of Object.keys(base) as (keyof SiglipVisionConfig)[]) {
    const v = raw[key];
    if (v === undefined) continue;
    if (typeof v !== typeof base[key])
      throw new ModelError(
        `SigLIP vision_config.${key} must be a ${typeof base[key]}, got ${JSON.stringify(v)}`,
      );
    (out as Record<string, unknown>)[key] = v;
  }
  if (out.hidden_size % out.num_attention_heads !== 0)
    throw new ModelError(
      `SigLIP vision_config: hidden_size ${out.hidden_size} is not a multiple of num_attention_heads ${out.num_attention_heads}`,
    );
  return out;
}
