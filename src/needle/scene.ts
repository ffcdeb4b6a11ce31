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

/**
 * Smooth value noise in [0, 1) over a frame: hash noise on a lattice of `cell` pixels, bilinearly interpolated.
 * The lattice points' hashes and each column's and row's cell and fraction are computed once per frame.
 */
class ValueNoise {
  readonly #x0: Int32Array;
  readonly #fx: Float64Array;
  readonly #y0: Int32Array;
  readonly #fy: Float64Array;
  readonly #lattice: Float64Array;
  readonly #nx: number;
  readonly #xMin: number;
  readonly #yMin: number;

  /** For pixels (x + shift, y), x in [0, width), y in [0, height). */
  constructor(width: number, height: number, shift: number, cell: number, seed: number) {
    this.#x0 = new Int32Array(width);
    this.#fx = new Float64Array(width);
    for (let x = 0; x < width; x++) {
      const gx = (x + shift) / cell;
      this.#x0[x] = Math.floor(gx);
      this.#fx[x] = gx - this.#x0[x];
    }
    this.#y0 = new Int32Array(height);
    this.#fy = new Float64Array(height);
    for (let y = 0; y < height; y++) {
      const gy = y / cell;
      this.#y0[y] = Math.floor(gy);
      this.#fy[y] = gy - this.#y0[y];
    }
    this.#xMin = this.#x0[0];
    this.#yMin = this.#y0[0];
    this.#nx = this.#x0[width - 1] - this.#xMin + 2;
    const ny = this.#y0[height - 1] - this.#yMin + 2;
    this.#lattice = new Float64Array(this.#nx * ny);
    for (let j = 0; j < ny; j++)
      for (let i = 0; i < this.#nx; i++)
        this.#lattice[j * this.#nx + i] = hash(this.#xMin + i, this.#yMin + j, 0, seed);
  }

  at(x: number, y: number): number {
    const fx = this.#fx[x];
    const fy = this.#fy[y];
    const i = (this.#y0[y] - this.#yMin) * this.#nx + this.#x0[x] - this.#xMin;
    const l = this.#lattice;
    const top = l[i] * (1 - fx) + l[i + 1] * fx;
    const bottom = l[i + this.#nx] * (1 - fx) + l[i + this.#nx + 1] * fx;
    return top * (1 - fy) + bottom * fy;
  }
}

/** The blend weight between the scene's two colours of every pixel of frame t (row-major). */
function blendWeights(s: Scene, width: number, height: number, t: number): Float64Array {
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
    case 'texture': {
      // Marble-like veins of three octaves of value noise, drifting.
      const [o1, o2, o3] = [
        new ValueNoise(width, height, shift, s.period * 4, s.noiseSeed),
        new ValueNoise(width, height, shift, s.period * 2, s.noiseSeed + 7),
        new ValueNoise(width, height, shift, s.period, s.noiseSeed + 13),
      ];
      for (let y = 0; y < height; y++)
        for (let x = 0; x < width; x++) {
          const f = o1.at(x, y) * 0.55 + o2.at(x, y) * 0.3 + o3.at(x, y) * 0.15;
          w[y * width + x] = 0.5 + 0.5 * Math.sin((x + y) / (s.period * 2) + f * 12);
        }
      return w;
    }
    default: // 'flat'
      return w;
  }
}

/** An RGB row of `width` pixels. */
function row(width: number, colour: (x: number) => RGB): Uint8Array {
  const out = new Uint8Array(width * 3);
  for (let x = 0; x < width; x++) out.set(colour(x), 3 * x);
  return out;
}

/**
 * Draws the backgrounds that are not a blend of the scene's two colours into `data` (true), or returns false
 * for those that are. Bars and SMPTE are a few distinct rows; plasma's terms of one coordinate are tables.
 */
function drawOwnColors(s: Scene, width: number, height: number, t: number, data: Uint8Array): boolean {
  switch (s.background) {
    case 'bars': {
      // testsrc2-like: eight bars, a band of moving grey ramp below them.
      const shift = s.drift * t;
      const bars = row(width, (x) => BARS[Math.min(7, Math.floor((x / width) * 8))]);
      const ramp = row(width, (x) => {
        const v = Math.round(wrap((x + shift * 4) / width, 1) * 255);
        return [v, v, v];
      });
      for (let y = 0; y < height; y++) data.set(y > height * 0.7 ? ramp : bars, y * width * 3);
      return true;
    }
    case 'smpte': {
      const band = (colours: readonly RGB[]) =>
        row(width, (x) => colours[Math.min(6, Math.floor((x / width) * 7))]);
      const [top, mid, low] = [band(SMPTE_TOP), band(SMPTE_MID), band(SMPTE_LOW)];
      for (let y = 0; y < height; y++)
        data.set(y < height * 0.67 ? top : y < height * 0.75 ? mid : low, y * width * 3);
      return true;
    }
    case 'plasma': {
      // sin(w + 2.1) and sin(w + 4.2) by rotating (sin w, cos w), and √(u² + v²) for Math.hypot: two sines a
      // pixel fewer and no hypot (the bytes of the direct form but where a value lands within ~1e-13 of a
      // rounding edge: none in the frames compared).
      const k = t * 0.15 * Math.sign(s.drift || 1);
      const u = Float64Array.from({ length: width }, (_, x) => x / s.period);
      const v = Float64Array.from({ length: height }, (_, y) => y / s.period);
      const sinU = u.map((ux) => Math.sin(ux + k));
      const sinV = v.map((vy) => Math.sin(vy - k));
      const [c1, s1, c2, s2] = [Math.cos(2.1), Math.sin(2.1), Math.cos(4.2), Math.sin(4.2)];
      for (let y = 0; y < height; y++) {
        const vy = v[y];
        for (let x = 0; x < width; x++) {
          const ux = u[x];
          const w =
            sinU[x] + sinV[y] + Math.sin((ux + vy) * 0.7 + k) + Math.sin(Math.sqrt(ux * ux + vy * vy) * 0.8);
          const sw = Math.sin(w);
          const cw = Math.cos(w);
          const i = (y * width + x) * 3;
          data[i] = Math.round(127.5 + 127.5 * sw);
          data[i + 1] = Math.round(127.5 + 127.5 * (sw * c1 + cw * s1));
          data[i + 2] = Math.round(127.5 + 127.5 * (sw * c2 + cw * s2));
        }
      }
      return true;
    }
    case 'rgbnoise':
      for (let y = 0; y < height; y++)
        for (let x = 0; x < width; x++) {
          const i = (y * width + x) * 3;
          data[i] = Math.floor(hash(x, y, t, s.noiseSeed) * 256);
          data[i + 1] = Math.floor(hash(x, y, t, s.noiseSeed + 1) * 256);
          data[i + 2] = Math.floor(hash(x, y, t, s.noiseSeed + 2) * 256);
        }
      return true;
    default:
      return false;
  }
}

const toByte = (v: number) => {
  const r = Math.round(v);
  return r < 0 ? 0 : r > 255 ? 255 : r;
};

export function renderScene(s: Scene, width: number, height: number, t: number): Canvas {
  const c = new Canvas(width, height);
  const d = c.data;
  const { noise, noiseSeed } = s;
  // Per-pixel noise n is added to the background before rounding.
  if (drawOwnColors(s, width, height, t, d)) {
    if (noise)
      for (let y = 0; y < height; y++)
        for (let x = 0; x < width; x++) {
          const i = (y * width + x) * 3;
          const n = (hash(x, y, t, noiseSeed) - 0.5) * 2 * noise;
          d[i] = toByte(d[i] + n);
          d[i + 1] = toByte(d[i + 1] + n);
          d[i + 2] = toByte(d[i + 2] + n);
        }
  } else {
    const [[a0, a1, a2], [b0, b1, b2]] = s.colors;
    const w = blendWeights(s, width, height, t);
    for (let y = 0, p = 0; y < height; y++)
      for (let x = 0; x < width; x++, p++) {
        const n = noise ? (hash(x, y, t, noiseSeed) - 0.5) * 2 * noise : 0;
        const wp = w[p];
        const vp = 1 - wp;
        const i = 3 * p;
        d[i] = toByte(a0 * vp + b0 * wp + n);
        d[i + 1] = toByte(a1 * vp + b1 * wp + n);
        d[i + 2] = toByte(a2 * vp + b2 * wp + n);
      }
  }
  for (const blob of s.blobs) {
    const x = wrap(blob.x + blob.vx * t, width);
    const y = wrap(blob.y + blob.vy * t, height);
    if (blob.shape === 'circle') c.fillCircle(x, y, blob.size / 2, blob.color, 0.8);
    else c.fillRect(x - blob.size / 2, y - blob.size / 2, blob.size, blob.size, blob.color, 0.8);
  }
  return c;
}
