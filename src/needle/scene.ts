import type { Random } from '../util/random.js';
import { Canvas, type RGB } from './canvas.js';

/**
 * The haystack: a procedural scene (background pattern + drifting blobs + noise), fully described by a
 * JSON-able `Scene`, so a video can be re-rendered from its record. The generator's scenes (`randomScene`)
 * are muted, so that the saturated, boxed needles are the only salient events; the varied scenes
 * (`randomVariedScene`) add footage unlike that: saturated colour bars and moving shapes in the manner of
 * ffmpeg's testsrc2 and smptebars, plasma and fractal-like swirls, full-range colour noise, flat colours and
 * marble-like textures.
 */
export type Background =
  | 'gradient'
  | 'checker'
  | 'stripes'
  | 'noise'
  | 'bars'
  | 'smpte'
  | 'plasma'
  | 'rgbnoise'
  | 'flat'
  | 'texture';
/** Test-card-like footage: saturated bars, swirls, colour noise, a flat colour. */
export const PATTERN_BACKGROUNDS: readonly Background[] = ['bars', 'smpte', 'plasma', 'rgbnoise', 'flat'];
export const VARIED_BACKGROUNDS: readonly Background[] = [
  'gradient',
  'checker',
  'stripes',
  'noise',
  'bars',
  'smpte',
  'plasma',
  'rgbnoise',
  'flat',
  'texture',
];

export interface Blob {
  shape: 'circle' | 'rect';
  color: RGB;
  x: number;
  y: number;
  vx: number;
  vy: number;
  size: number;
}

export interface Scene {
  background: Background;
  colors: [RGB, RGB];
  period: number;
  drift: number;
  blobs: Blob[];
  noise: number;
  noiseSeed: number;
}

/** A muted colour: mid lightness, low saturation. */
function muted(r: Random): RGB {
  const grey = r.int(60, 190);
  const tint = () => Math.max(0, Math.min(255, grey + r.int(-35, 35)));
  return [tint(), tint(), tint()];
}

export function randomScene(r: Random, width: number, height: number): Scene {
  const nBlobs = r.int(1, 4);
  return {
    background: r.pick(['gradient', 'checker', 'stripes', 'noise'] as const),
    colors: [muted(r), muted(r)],
    period: r.int(6, 24),
    drift: r.uniform(-1.5, 1.5),
    blobs: Array.from({ length: nBlobs }, () => ({
      shape: r.pick(['circle', 'rect'] as const),
      color: muted(r),
      x: r.uniform(0, width),
      y: r.uniform(0, height),
      vx: r.uniform(-3, 3),
      vy: r.uniform(-3, 3),
      size: r.uniform(0.08, 0.22) * Math.min(width, height),
    })),
    noise: r.int(0, 12),
    noiseSeed: r.int(0, 2 ** 30),
  };
}

/** A saturated colour: one channel high, one low, one anywhere. */
function vivid(r: Random): RGB {
  const c = r.shuffle([r.int(200, 255), r.int(0, 60), r.int(0, 255)]);
  return [c[0], c[1], c[2]];
}

/** A scene of one of these backgrounds, muted or saturated, with blobs that move from slowly to fast. */
export function randomVariedScene(
  r: Random,
  width: number,
  height: number,
  backgrounds: readonly Background[] = VARIED_BACKGROUNDS,
): Scene {
  const background = r.pick(backgrounds);
  const loud = r.next() < 0.5;
  const colour = () => (loud ? vivid(r) : muted(r));
  const side = Math.min(width, height);
  const speed = r.uniform(0, 0.04) * side;
  return {
    background,
    colors: [colour(), colour()],
    period: Math.max(2, Math.round(side * r.uniform(0.03, 0.25))),
    drift: r.uniform(-0.02, 0.02) * side,
    blobs: Array.from({ length: r.int(0, 5) }, () => ({
      shape: r.pick(['circle', 'rect'] as const),
      color: colour(),
      x: r.uniform(0, width),
      y: r.uniform(0, height),
      vx: r.uniform(-speed, speed),
      vy: r.uniform(-speed, speed),
      size: r.uniform(0.08, 0.3) * side,
    })),
    noise: r.pick([0, 0, 4, 12, 30]),
    noiseSeed: r.int(0, 2 ** 30),
  };
}

/** Cheap deterministic hash noise in [0, 1). */
function hash(x: number, y: number, t: number, seed: number): number {
  let h = Math.imul(x, 374761393) + Math.imul(y, 668265263) + Math.imul(t, 2147483647) + seed;
  h = Math.imul(h ^ (h >>> 13), 1274126177);
  return ((h ^ (h >>> 16)) >>> 0) / 4294967296;
}

const wrap = (v: number, n: number) => ((v % n) + n) % n;

/** testsrc2's bar colours: white, yellow, cyan, green, magenta, red, blue, black. */
const BARS: readonly RGB[] = [
  [255, 255, 255],
  [255, 255, 0],
  [0, 255, 255],
  [0, 255, 0],
  [255, 0, 255],
  [255, 0, 0],
  [0, 0, 255],
  [0, 0, 0],
];
/** SMPTE bars: 75% bars over reversed blue bars over a black/white/dark strip. */
const SMPTE_TOP: readonly RGB[] = [
  [191, 191, 191],
  [191, 191, 0],
  [0, 191, 191],
  [0, 191, 0],
  [191, 0, 191],
  [191, 0, 0],
  [0, 0, 191],
];
const SMPTE_MID: readonly RGB[] = [
  [0, 0, 191],
  [19, 19, 19],
  [191, 0, 191],
  [19, 19, 19],
  [0, 191, 191],
  [19, 19, 19],
  [191, 191, 191],
];
const SMPTE_LOW: readonly RGB[] = [
  [0, 33, 76],
  [255, 255, 255],
  [50, 0, 106],
  [19, 19, 19],
  [19, 19, 19],
  [19, 19, 19],
  [19, 19, 19],
];

/** Smooth value noise in [0, 1): hash noise on a lattice of `cell` pixels, bilinearly interpolated. */
function valueNoise(x: number, y: number, cell: number, seed: number): number {
  const gx = x / cell;
  const gy = y / cell;
  const x0 = Math.floor(gx);
  const y0 = Math.floor(gy);
  const fx = gx - x0;
  const fy = gy - y0;
  // No closures here: this runs three times per pixel, and a closure per call costs more than the maths.
  const top = hash(x0, y0, 0, seed) * (1 - fx) + hash(x0 + 1, y0, 0, seed) * fx;
  const bottom = hash(x0, y0 + 1, 0, seed) * (1 - fx) + hash(x0 + 1, y0 + 1, 0, seed) * fx;
  return top * (1 - fy) + bottom * fy;
}

/**
 * The blend weight of every pixel of frame t (row-major) for the backgrounds whose weight is a function of one
 * or two small tables (the same arithmetic per pixel as written out, so the same bytes), else null.
 */
function blendWeights(s: Scene, width: number, height: number, t: number): Float64Array | null {
  const shift = s.drift * t;
  const w = new Float64Array(width * height);
  switch (s.background) {
    case 'gradient': {
      // A function of x + y.
      const n = width + height;
      const bySum = Float64Array.from({ length: n }, (_, k) => wrap(k + shift * 4, n) / n);
      for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) w[y * width + x] = bySum[x + y];
      return w;
    }
    case 'checker': {
      const col = Float64Array.from({ length: width }, (_, x) => Math.floor(wrap(x + shift, 1e6) / s.period));
      for (let y = 0; y < height; y++) {
        const row = Math.floor(y / s.period);
        for (let x = 0; x < width; x++) w[y * width + x] = (col[x] + row) % 2;
      }
      return w;
    }
    case 'stripes': {
      // A function of x + y/2 = k/2 with k = 2x + y (exact halves).
      const byK = Float64Array.from(
        { length: 2 * width + height },
        (_, k) => Math.floor(wrap(k * 0.5 + shift, 1e6) / s.period) % 2,
      );
      for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) w[y * width + x] = byK[2 * x + y];
      return w;
    }
    case 'noise': {
      // Constant over 4×4 blocks.
      const bt = Math.floor(t / 3);
      for (let y = 0; y < height; y++)
        for (let x = 0; x < width; x++)
          w[y * width + x] =
            x % 4 === 0 ? hash(Math.floor(x / 4), Math.floor(y / 4), bt, s.noiseSeed) : w[y * width + x - 1];
      return w;
    }
    case 'flat':
      return w;
    default:
      return null;
  }
}

/** Backgrounds drawn by ownColor rather than as a blend of the scene's two colours. */
const OWN_COLOR = new Set<Background>(['bars', 'smpte', 'plasma', 'rgbnoise']);

const setRgb = (out: number[], r: number, g: number, b: number): true => {
  out[0] = r;
  out[1] = g;
  out[2] = b;
  return true;
};

/**
 * A pixel of the backgrounds that are not a blend of the scene's two colours, written into `out` (true), or
 * false for those that are. Writes into a caller's array: it runs once per pixel of every frame.
 */
function ownColor(
  s: Scene,
  x: number,
  y: number,
  t: number,
  width: number,
  height: number,
  out: number[],
): boolean {
  const shift = s.drift * t;
  switch (s.background) {
    case 'bars': {
      // testsrc2-like: eight bars, a band of moving grey ramp below them.
      if (y > height * 0.7) {
        const v = Math.round(wrap((x + shift * 4) / width, 1) * 255);
        return setRgb(out, v, v, v);
      }
      const c = BARS[Math.min(7, Math.floor((x / width) * 8))];
      return setRgb(out, c[0], c[1], c[2]);
    }
    case 'smpte': {
      const i = Math.min(6, Math.floor((x / width) * 7));
      const c = y < height * 0.67 ? SMPTE_TOP[i] : y < height * 0.75 ? SMPTE_MID[i] : SMPTE_LOW[i];
      return setRgb(out, c[0], c[1], c[2]);
    }
    case 'plasma': {
      const u = x / s.period;
      const v = y / s.period;
      const k = t * 0.15 * Math.sign(s.drift || 1);
      const w =
        Math.sin(u + k) + Math.sin(v - k) + Math.sin((u + v) * 0.7 + k) + Math.sin(Math.hypot(u, v) * 0.8);
      return setRgb(
        out,
        Math.round(127.5 + 127.5 * Math.sin(w)),
        Math.round(127.5 + 127.5 * Math.sin(w + 2.1)),
        Math.round(127.5 + 127.5 * Math.sin(w + 4.2)),
      );
    }
    case 'rgbnoise':
      return setRgb(
        out,
        Math.floor(hash(x, y, t, s.noiseSeed) * 256),
        Math.floor(hash(x, y, t, s.noiseSeed + 1) * 256),
        Math.floor(hash(x, y, t, s.noiseSeed + 2) * 256),
      );
    default:
      return false;
  }
}

export function renderScene(s: Scene, width: number, height: number, t: number): Canvas {
  const c = new Canvas(width, height);
  const [a, b] = s.colors;
  const shift = s.drift * t;
  const own: number[] = [0, 0, 0];
  const ownBackground = OWN_COLOR.has(s.background);
  const table = ownBackground ? null : blendWeights(s, width, height, t);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      const n = s.noise ? (hash(x, y, t, s.noiseSeed) - 0.5) * 2 * s.noise : 0;
      if (ownBackground && ownColor(s, x, y, t, width, height, own)) {
        for (let k = 0; k < 3; k++) c.data[i + k] = Math.max(0, Math.min(255, Math.round(own[k] + n)));
        continue;
      }
      let w: number;
      if (table) w = table[y * width + x];
      else {
        // 'texture': marble-like veins of three octaves of value noise, drifting.
        const xs = x + shift;
        const f =
          valueNoise(xs, y, s.period * 4, s.noiseSeed) * 0.55 +
          valueNoise(xs, y, s.period * 2, s.noiseSeed + 7) * 0.3 +
          valueNoise(xs, y, s.period, s.noiseSeed + 13) * 0.15;
        w = 0.5 + 0.5 * Math.sin((x + y) / (s.period * 2) + f * 12);
      }
      for (let k = 0; k < 3; k++)
        c.data[i + k] = Math.max(0, Math.min(255, Math.round(a[k] * (1 - w) + b[k] * w + n)));
    }
  for (const blob of s.blobs) {
    const x = wrap(blob.x + blob.vx * t, width);
    const y = wrap(blob.y + blob.vy * t, height);
    if (blob.shape === 'circle') c.fillCircle(x, y, blob.size / 2, blob.color, 0.8);
    else c.fillRect(x - blob.size / 2, y - blob.size / 2, blob.size, blob.size, blob.color, 0.8);
  }
  return c;
}
