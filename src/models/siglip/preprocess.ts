/**
 * TimeViper's image transform for SigLIP (`resize-naive`): each frame squashed to size×size with PIL's bicubic
 * filter (aspect ratio not kept), scaled to [0, 1] and normalised with mean 0.5, std 0.5 (timm's SigLIP config).
 */

import { InputError } from '../../errors.js';
import { resizeBicubic } from '../../media/bicubic.js';
import type { Frame } from '../../media/decode.js';
import type { Backend } from '../../runtime/backend.js';
import * as ops from '../../runtime/ops.js';
import type { Tensor } from '../../runtime/tensor.js';

/** Frames → pixel values [frames, 3, size, size] (channels first), f32, computed on the host. */
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

/**
 * siglipPixels' values made on `backend`: the bytes go up (a quarter of the floats' size; frames already at
 * size×size are not copied on the host) and are normalised there as (v − 127.5) / 127.5, which rounds to the same
 * f32 as (v / 255 − 0.5) / 0.5 for every byte v (checked in the tests).
 */
export function siglipPixelsOn(
  backend: Backend,
  frames: readonly Pick<Frame, 'data' | 'width' | 'height'>[],
  size: number,
): Tensor {
  const bytes = size * size * 3;
  const raw = ops.empty(backend, [frames.length, size, size, 3], 'u8');
  const put = (from: number, to: number, data: Uint8Array) => {
    const rows = raw.narrow(from, to);
    backend.upload(rows, data);
    rows.dispose();
  };
  try {
    // Runs of frames that lie one after another in one buffer (an example's do) go up in one upload each.
    for (let i = 0; i < frames.length; ) {
      const f = frames[i];
      if (f.data.length < f.width * f.height * 3)
        throw new InputError(
          `frame ${i}: ${f.data.length} bytes for ${f.width}×${f.height} RGB (needs ${f.width * f.height * 3})`,
        );
      if (f.width !== size || f.height !== size) {
        put(i, i + 1, resizeBicubic(f.data, f.width, f.height, size, size, 'pil'));
        i++;
        continue;
      }
      let j = i + 1;
      while (j < frames.length && follows(frames[j - 1].data, frames[j], size)) j++;
      put(i, j, new Uint8Array(f.data.buffer, f.data.byteOffset, (j - i) * bytes));
      i = j;
    }
  } catch (e) {
    raw.dispose();
    throw e;
  }
  // Each step's input goes as soon as its output is made: at most the bytes and one f32 copy, or two f32 copies,
  // at a time (siglipPixelsBytes' peak).
  using half = ops.tensor(backend, [127.5], [1]);
  const steps = [
    (x: Tensor) => ops.cast(x, 'f32'),
    (x: Tensor) => ops.sub(x, half),
    (x: Tensor) => ops.div(x, half),
    (x: Tensor) => ops.permute(x, [0, 3, 1, 2]),
  ];
  return steps.reduce((x, step) => {
    try {
      return step(x);
    } finally {
      x.dispose();
    }
  }, raw);
}

/** Whether frame g is at size×size and its bytes start where the size×size frame `prev` ends, in one buffer. */
function follows(prev: Uint8Array, g: Pick<Frame, 'data' | 'width' | 'height'>, size: number): boolean {
  const bytes = size * size * 3;
  return (
    g.width === size &&
    g.height === size &&
    g.data.length === bytes &&
    prev.length === bytes &&
    g.data.buffer === prev.buffer &&
    g.data.byteOffset === prev.byteOffset + bytes
  );
}
