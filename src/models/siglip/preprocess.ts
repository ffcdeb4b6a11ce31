/**
 * TimeViper's image transform for SigLIP (`resize-naive`): each frame squashed to size×size with PIL's bicubic
 * filter (aspect ratio not kept), scaled to [0, 1] and normalised with mean 0.5, std 0.5 (timm's SigLIP config).
 */

import { resizeBicubic } from '../../media/bicubic.js';
import type { Frame } from '../../media/decode.js';

/** Frames → pixel values [frames, 3, size, size] (channels first), f32. */
export function siglipPixels(
  frames: readonly Pick<Frame, 'data' | 'width' | 'height'>[],
  size: number,
): Float32Array {
  const plane = size * size;
  const out = new Float32Array(frames.length * 3 * plane);
  frames.forEach((f, i) => {
    const rgb = resizeBicubic(f.data, f.width, f.height, size, size, 'pil');
    const base = i * 3 * plane;
    for (let p = 0; p < plane; p++)
      for (let c = 0; c < 3; c++) out[base + c * plane + p] = (rgb[p * 3 + c] / 255 - 0.5) / 0.5;
  });
  return out;
}
