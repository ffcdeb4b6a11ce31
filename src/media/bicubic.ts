/**
 * Antialiased bicubic resampling of 8-bit RGB images, as PIL (`Image.resize(..., BICUBIC)`) and
 * torchvision's native uint8 path (`resize(uint8 tensor, BICUBIC, antialias=True)` on the CPU, which the
 * Hugging Face Qwen2-VL image/video processors use by default in transformers 5.x) compute it:
 * separable, horizontal pass first; each output pixel a normalised window of the cubic kernel (a = −0.5)
 * widened by the downscale factor; weights in fixed point; intermediate rows rounded and clamped to uint8.
 * The two libraries differ only in the fixed-point precision: PIL uses 22 fraction bits, torchvision the
 * most bits that keep the largest weight of a pass within int16.
 */
export type BicubicPrecision = 'torchvision' | 'pil';

const A = -0.5;

function cubic(x: number): number {
  x = Math.abs(x);
  if (x < 1) return ((A + 2) * x - (A + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * A;
  return 0;
}

interface Taps {
  /** First input index of each output's window. */
  start: Int32Array;
  /** Window length of each output. */
  size: Int32Array;
  /** Fixed-point weights, `stride` per output. */
  weights: Int32Array;
  stride: number;
  bits: number;
}

function taps(inSize: number, outSize: number, precision: BicubicPrecision): Taps {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = 2 * filterScale;
  const stride = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const size = new Int32Array(outSize);
  const real = new Float64Array(outSize * stride);
  let maxWeight = 0;
  for (let o = 0; o < outSize; o++) {
    const center = (o + 0.5) * scale;
    const lo = Math.max(Math.trunc(center - support + 0.5), 0);
    const hi = Math.min(Math.trunc(center + support + 0.5), inSize);
    start[o] = lo;
    size[o] = hi - lo;
    let total = 0;
    for (let i = 0; i < hi - lo; i++) {
      const w = cubic((i + lo - center + 0.5) / filterScale);
      real[o * stride + i] = w;
      total += w;
    }
    for (let i = 0; i < hi - lo; i++) {
      if (total !== 0) real[o * stride + i] /= total;
      maxWeight = Math.max(maxWeight, real[o * stride + i]);
    }
  }
  let bits = 22;
  if (precision === 'torchvision') {
    bits = 0;
    while (bits < 22 && Math.trunc(0.5 + maxWeight * 2 ** (bits + 1)) < 1 << 15) bits++;
  }
  const weights = new Int32Array(outSize * stride);
  for (let i = 0; i < real.length; i++) {
    const w = real[i] * 2 ** bits;
    weights[i] = Math.trunc(w < 0 ? w - 0.5 : w + 0.5);
  }
  return { start, size, weights, stride, bits };
}

const clamp8 = (v: number) => Math.min(Math.max(v, 0), 255);

/** Σ px·w over a window, rounded back from fixed point (the shift floors, as C's >> on the sum does). */
function dot(src: Uint8Array, at: number, step: number, t: Taps, o: number): number {
  let acc = 2 ** (t.bits - 1);
  const w = o * t.stride;
  for (let i = 0; i < t.size[o]; i++) acc += src[at + i * step] * t.weights[w + i];
  return clamp8(Math.floor(acc / 2 ** t.bits));
}

function horizontal(src: Uint8Array, width: number, height: number, outWidth: number, t: Taps): Uint8Array {
  const dst = new Uint8Array(height * outWidth * 3);
  for (let y = 0; y < height; y++)
    for (let o = 0; o < outWidth; o++)
      for (let c = 0; c < 3; c++)
        dst[(y * outWidth + o) * 3 + c] = dot(src, (y * width + t.start[o]) * 3 + c, 3, t, o);
  return dst;
}

function vertical(src: Uint8Array, width: number, outHeight: number, t: Taps): Uint8Array {
  const dst = new Uint8Array(outHeight * width * 3);
  for (let o = 0; o < outHeight; o++)
    for (let x = 0; x < width; x++)
      for (let c = 0; c < 3; c++)
        dst[(o * width + x) * 3 + c] = dot(src, (t.start[o] * width + x) * 3 + c, width * 3, t, o);
  return dst;
}

/** Resizes an RGB24 HWC image to outWidth × outHeight. */
export function resizeBicubic(
  src: Uint8Array,
  width: number,
  height: number,
  outWidth: number,
  outHeight: number,
  precision: BicubicPrecision = 'torchvision',
): Uint8Array {
  let img = src;
  if (outWidth !== width) img = horizontal(img, width, height, outWidth, taps(width, outWidth, precision));
  if (outHeight !== height) img = vertical(img, outWidth, outHeight, taps(height, outHeight, precision));
  return img === src ? src.slice() : img;
}
