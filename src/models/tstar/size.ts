/**
 * TSTAR's tokens and memory for N frames of W×H without weights: the vision tower's tokens per frame group
 * (Qwen2-VL: the processor's grid, smart_resize within its pixel bounds, per 2 frames; SigLIP: its patches per
 * frame, whatever the frame size), the compressor's token count, the LLM's state for them (attention K/V per attention layer,
 * fixed Mamba states for Nemotron-H), and the working set while encoding (the clip's uncompressed vision tokens
 * are held until the compressor has run over them, plus the compressor's largest temporaries).
 */
import { BYTES_PER_ELEMENT, type DType } from '../../runtime/dtype.js';
import { MambaMiaCompressor } from '../mambamia/compressor.js';
import { nemotronHStateBytes } from '../nemotron_h/size.js';
import { smartResize } from '../qwen2vl/processor.js';
import { patchGrid } from '../siglip/config.js';
import type { TstarConfig } from './config.js';

interface TstarGeometry {
  frames: number;
  width: number;
  height: number;
  minPixels: number;
  maxPixels: number;
  dtype: DType;
}

/** Frame groups and vision tokens per group for N frames of W×H. */
function towerGrid(c: TstarConfig, g: TstarGeometry): { groups: number; perGroup: number } {
  const v = c.vision;
  if (v.kind === 'siglip') return { groups: g.frames, perGroup: patchGrid(v.config).tokens };
  const q = v.config;
  const [h, w] = smartResize(g.height, g.width, {
    factor: q.patch_size * q.spatial_merge_size,
    minPixels: g.minPixels,
    maxPixels: g.maxPixels,
  });
  return {
    groups: Math.ceil(g.frames / q.temporal_patch_size),
    perGroup: ((h / q.patch_size) * (w / q.patch_size)) / q.spatial_merge_size ** 2,
  };
}

export function estimateTstar(c: TstarConfig, g: TstarGeometry) {
  const p = c.projector;
  const bytes = BYTES_PER_ELEMENT[g.dtype];
  const { groups, perGroup } = towerGrid(c, g);
  const visionTokens = groups * perGroup;
  const videoTokens = MambaMiaCompressor.tokenCount(p, groups, perGroup);
  let videoState: number;
  if (c.text.kind === 'qwen2') {
    const t = c.text.config.text;
    videoState = 2 * t.num_hidden_layers * t.num_key_value_heads * t.head_dim * videoTokens * bytes;
  } else {
    const s = nemotronHStateBytes(c.text.config, videoTokens, g.dtype);
    videoState = s.kv + s.mamba;
  }
  // The sequence of patches and queries, the mixer's in_proj output and the scan's y (f32) over it.
  const seq = visionTokens + visionTokens / p.mambamia_chunk_size;
  const inner = p.num_heads * p.head_dim;
  const compressorWorking =
    seq * (2 * p.hidden_size + 2 * inner + 2 * p.n_groups * p.state_size) * bytes + seq * inner * 4;
  const working = visionTokens * c.vision.width * bytes + compressorWorking;
  return { visionTokens, videoTokens, videoState, working };
}
