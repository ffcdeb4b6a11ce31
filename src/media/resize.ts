/**
 * Output frame sizes. Decoding resizes to an exact width×height (ffmpeg `scale`, bicubic), so a model's
 * processor asks for exactly what it wants: a fixed size, or a function of the source size such as
 * Vamba's pre-resize below or Qwen2-VL's smart_resize.
 */
import { InputError } from '../errors.js';
import { MAX_SIDE } from './probe.js';

export interface Size {
  width: number;
  height: number;
}

/** A fixed output size, or a function from the displayed source size to the output size. */
export type TargetSize = Size | ((source: Size) => Size);

/**
 * Vamba `train/data.py::get_resize_output_image_size`: if the longer side exceeds `longestEdge`, scale it
 * to `longestEdge` (the other side truncated, aspect kept); then raise each side to at least
 * `shortestEdge` (which can change the aspect ratio). Never upscales otherwise. Returns [height, width].
 */
export function getResizeOutputImageSize(
  height: number,
  width: number,
  shortestEdge: number | null,
  longestEdge: number | null,
): [number, number] {
  if (shortestEdge === null && longestEdge === null) return [height, width];
  const aspectRatio = width / height;
  if (longestEdge !== null) {
    if (width >= height && width > longestEdge) {
      width = longestEdge;
      height = Math.trunc(width / aspectRatio);
    } else if (height > width && height > longestEdge) {
      height = longestEdge;
      width = Math.trunc(height * aspectRatio);
    }
  }
  if (shortestEdge !== null) {
    height = Math.max(height, shortestEdge);
    width = Math.max(width, shortestEdge);
  }
  return [height, width];
}

/** A pre-resize within edge bounds (longest side ≤ longestEdge, each side ≥ shortestEdge) as a TargetSize. */
export function boundEdges(shortestEdge: number, longestEdge: number): (source: Size) => Size {
  return ({ width, height }) => {
    const [h, w] = getResizeOutputImageSize(height, width, shortestEdge, longestEdge);
    return { width: w, height: h };
  };
}

/** Resolves a TargetSize against the source size and checks that the result is a sane picture size. */
export function resolveSize(target: TargetSize | undefined, source: Size): Size {
  const size = target === undefined ? source : typeof target === 'function' ? target(source) : target;
  for (const side of [size.width, size.height])
    if (!Number.isInteger(side) || side < 1 || side > MAX_SIDE)
      throw new InputError(
        `output frame size ${size.width}x${size.height} is invalid: each side must be an integer from 1 to ${MAX_SIDE}`,
      );
  return size;
}
