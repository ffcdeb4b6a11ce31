/**
 * Resizes an RGB24 frame the way a user's video reaches the tiny models: the media pipeline asks ffmpeg for
 * the model's frame size (src/media/resize.ts), so a 640×360 clip arrives squeezed to 112×112. Here a
 * separable triangle filter widened by the scale (antialiased bilinear, as PIL does) stands in for ffmpeg's
 * bicubic: the training data then sees frames downsampled from other resolutions without ffmpeg.
 */

/** Per output index: the first source index and its normalised weights. */
function weights(src: number, dst: number): { start: number; w: Float32Array }[] {
  const scale = src / dst;
  const support = Math.max(1, scale);
  return Array.from({ length: dst }, (_, i) => {
    const centre = (i + 0.5) * scale;
    const start = Math.max(0, Math.floor(centre - support));
    const end = Math.min(src, Math.ceil(centre + support));
    const w = new Float32Array(end - start);
    let sum = 0;
    for (let j = start; j < end; j++) {
      const v = Math.max(0, 1 - Math.abs((j + 0.5 - centre) / support));
      w[j - start] = v;
      sum += v;
    }
    for (let k = 0; k < w.length; k++) w[k] /= sum;
    return { start, w };
  });
}

export function resizeRgb(
  data: Uint8Array,
  width: number,
  height: number,
  toW: number,
  toH: number,
): Uint8Array {
  if (width === toW && height === toH) return data;
  const wx = weights(width, toW);
  const wy = weights(height, toH);
  const rows = new Float32Array(height * toW * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < toW; x++) {
      const { start, w } = wx[x];
      for (let k = 0; k < 3; k++) {
        let v = 0;
        for (let j = 0; j < w.length; j++) v += w[j] * data[(y * width + start + j) * 3 + k];
        rows[(y * toW + x) * 3 + k] = v;
      }
    }
  const out = new Uint8Array(toW * toH * 3);
  for (let y = 0; y < toH; y++) {
    const { start, w } = wy[y];
    for (let x = 0; x < toW; x++)
      for (let k = 0; k < 3; k++) {
        let v = 0;
        for (let j = 0; j < w.length; j++) v += w[j] * rows[((start + j) * toW + x) * 3 + k];
        out[(y * toW + x) * 3 + k] = Math.max(0, Math.min(255, Math.round(v)));
      }
  }
  return out;
}
