/**
 * Device bytes of one SigLIP tower call (`SiglipVision.forward`) as the code allocates them, its input pixels not
 * counted, its output counted. The forward's own scope keeps the patch rows until it returns: the cropped
 * pixels (two f32 copies when the side is not a multiple of the patch), the permuted f32 rows, their copy in
 * the weights' dtype and the patch embedding's output. Each block then holds its input and, at its peak (the
 * MLP), the norm, the attention's projection, the residual sum, the second norm, fc1 and its activation, fc2
 * and the output (the attention's q, k, v and output are freed before the MLP, and are fewer).
 */
import { BYTES_PER_ELEMENT, type DType } from '../../runtime/dtype.js';
import { patchGrid, type SiglipVisionConfig } from './config.js';

export function siglipForwardBytes(c: SiglipVisionConfig, images: number, dtype: DType): number {
  const b = BYTES_PER_ELEMENT[dtype];
  const { side, tokens } = patchGrid(c);
  const S = c.image_size;
  const cropped = side * c.patch_size;
  const crops = cropped === S ? 0 : c.num_channels * cropped * (S + cropped) * 4;
  const rowLen = c.num_channels * c.patch_size ** 2;
  const rows = tokens * rowLen * (4 + b);
  const D = c.hidden_size;
  const block = (7 * D + 2 * c.intermediate_size) * b;
  return images * (crops + rows + tokens * (D * b + block));
}

/**
 * Device bytes of siglipPixelsOn for `images` frames: its f32 output (`held` through the tower) and its peak while
 * made (the bytes and the first f32 copy, then two f32 copies at a time).
 */
export function siglipPixelsBytes(c: SiglipVisionConfig, images: number): { held: number; peak: number } {
  const values = images * 3 * c.image_size ** 2;
  return { held: 4 * values, peak: 8 * values };
}
