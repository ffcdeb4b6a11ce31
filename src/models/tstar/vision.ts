/**
 * TSTAR's vision tower, either kind (config.ts `TstarVision`): its parameters under the checkpoint's names, and
 * the tokens it gives the compressor as [groups, perGroup, width] — Qwen2-VL's merged tokens per temporal group
 * of 2 frames, or SigLIP's patches per frame (one frame is one group; the chosen block, no final norm).
 */
import type { ParamSpec, ParamStore } from '../../nn/params.js';
import { Qwen2VisionTransformer } from '../qwen2vl/vision.js';
import { visionSpecs } from '../qwen2vl/weights.js';
import { patchGrid } from '../siglip/config.js';
import { SiglipVision, siglipSpecs, siglipUnused } from '../siglip/model.js';
import type { TstarVision } from './config.js';

/** Where a SigLIP tower's parameters live (LLaVA's name; transformers' layout adds `vision_model.`). */
export const SIGLIP_PREFIX = 'vision_tower.';

export type TstarTower = Qwen2VisionTransformer | SiglipVision;

const siglipPrefix = (v: Extract<TstarVision, { kind: 'siglip' }>): string =>
  v.layout === 'hf' ? `${SIGLIP_PREFIX}vision_model.` : SIGLIP_PREFIX;

export function towerSpecs(v: TstarVision): ParamSpec[] {
  return v.kind === 'qwen2_vl'
    ? visionSpecs({ vision: v.config })
    : siglipSpecs(v.config, v.layout, v.featureBlock, siglipPrefix(v));
}

/** Whether a checkpoint tensor is one of the tower's that its features never read (final norm, head, later blocks). */
export function towerUnused(v: TstarVision, name: string): boolean {
  if (v.kind !== 'siglip') return false;
  const prefix = siglipPrefix(v);
  return name.startsWith(prefix) && siglipUnused(name.slice(prefix.length), v.layout, v.featureBlock);
}

export function loadTower(p: ParamStore, v: TstarVision): TstarTower {
  return v.kind === 'qwen2_vl'
    ? Qwen2VisionTransformer.load(p, v.config)
    : SiglipVision.load(p, v.config, v.layout, v.featureBlock, siglipPrefix(v));
}

/** Vision tokens per frame group (a SigLIP frame; Qwen2-VL: per 2-frame group at `grid` h×w patches). */
export function tokensPerGroup(v: TstarVision, grid?: { h: number; w: number }): number {
  if (v.kind === 'siglip') return patchGrid(v.config).tokens;
  if (!grid) throw new Error('tokensPerGroup: a Qwen2-VL tower needs the grid');
  return (grid.h * grid.w) / v.config.spatial_merge_size ** 2;
}
