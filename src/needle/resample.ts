/**
 * Resizes an RGB24 frame the way a user's video reaches the tiny models: the media pipeline asks ffmpeg for
 * the model's frame size (src/media/resize.ts), so a 640×360 clip arrives squeezed to 112×112. Here a
 * separable triangle filter widened by the scale (antialiased bilinear, as PIL does) stands in for ffmpeg's
 * bicubic: the training data then sees frames downsampled from other resolutions without ffmpeg.
 */

interface Taps {
  start: Int32Array;
  taps: number;
  w: Float64Array;
}
/** The filters made so far, by "src→dst": a video resizes every frame with the same two. */
const made = new Map<string, Taps>();

/** Per output index: its first source index and its normalised weights (flattened: `taps` weights each). */
function weights(src: number, dst: number): Taps {
  const key = `${src}→${dst}`;
  const t = made.get(key) ?? makeWeights(src, dst);
  made.set(key, t);
  return t;
}

function makeWeights(src: number, dst: number): Taps {
  const scale = src / dst;
  const support = Math.max(1, scale);
  const rows = Array.from({ length: dst }, (_, i) => {
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
  // Padded to the longest row with zero weights at in-range indices (adding w·x = 0 changes no sum).
  const taps = Math.max(...rows.map((r) => r.w.length));
  const start = new Int32Array(dst);
  const w = new Float64Array(dst * taps);
  rows.forEach((r, i) => {
    start[i] = Math.min(r.start, src - taps);
    w.set(r.w, i * taps + r.start - start[i]);
  });
  return { start, taps, w };
}

export function resizeRgb(
  data: Uint8Array,
  width: number,
  height: number,
  toW: number,
  toH: number,
): Uint8Array {
  if (width === toW && height === toH) return data;
  const { start: xStart, taps: xTaps, w: xw } = weights(width, toW);
  const { start: yStart, taps: yTaps, w: yw } = weights(height, toH);
  const rows = new Float32Array(height * toW * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < toW; x++) {
      let p = (y * width + xStart[x]) * 3;
      let r = 0;
      let g = 0;
      let b = 0;
      for (let j = x * xTaps; j < (x + 1) * xTaps; j++, p += 3) {
        const wj = xw[j];
        r += wj * data[p];
        g += wj * data[p + 1];
        b += wj * data[p + 2];
      }
      const o = (y * toW + x) * 3;
      rows[o] = r;
      rows[o + 1] = g;
      rows[o + 2] = b;
    }
  const out = new Uint8Array(toW * toH * 3);
  const stride = toW * 3;
  for (let y = 0; y < toH; y++)
    for (let x = 0; x < toW; x++) {
      let p = yStart[y] * stride + x * 3;
      let r = 0;
      let g = 0;
      let b = 0;
      for (let j = y * yTaps; j < (y + 1) * yTaps; j++, p += stride) {
        const wj = yw[j];
        r += wj * rows[p];
        g += wj * rows[p + 1];
        b += wj * rows[p + 2];
      }
      const o = (y * toW + x) * 3;
      out[o] = clampRound(r);
      out[o + 1] = clampRound(g);
      out[o + 2] = clampRound(b);
    }
  return out;
}

const clampRound = (v: number) => Math.max(0, Math.min(255, Math.round(v)));
