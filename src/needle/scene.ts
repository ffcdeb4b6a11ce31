import type { Random } from '../util/random.js';
import { Canvas, type RGB } from './canvas.js';

/**
 * The haystack: a procedural scene (background pattern + drifting blobs + noise) in muted colours, so that
 * the saturated, boxed needles are the only salient events. Fully described by a JSON-able `Scene`, so a
 * video can be re-rendered from its record.
 */
export type Background = 'gradient' | 'checker' | 'stripes' | 'noise';

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

/** Cheap deterministic hash noise in [0, 1). */
function hash(x: number, y: number, t: number, seed: number): number {
  let h = Math.imul(x, 374761393) + Math.imul(y, 668265263) + Math.imul(t, 2147483647) + seed;
  h = Math.imul(h ^ (h >>> 13), 1274126177);
  return ((h ^ (h >>> 16)) >>> 0) / 4294967296;
}

const wrap = (v: number, n: number) => ((v % n) + n) % n;

export function renderScene(s: Scene, width: number, height: number, t: number): Canvas {
  const c = new Canvas(width, height);
  const [a, b] = s.colors;
  const shift = s.drift * t;
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      let w: number;
      switch (s.background) {
        case 'gradient':
          w = wrap(x + y + shift * 4, width + height) / (width + height);
          break;
        case 'checker':
          w = (Math.floor(wrap(x + shift, 1e6) / s.period) + Math.floor(y / s.period)) % 2;
          break;
        case 'stripes':
          w = Math.floor(wrap(x + y * 0.5 + shift, 1e6) / s.period) % 2;
          break;
        case 'noise':
          w = hash(Math.floor(x / 4), Math.floor(y / 4), Math.floor(t / 3), s.noiseSeed);
          break;
      }
      const i = (y * width + x) * 3;
      const n = s.noise ? (hash(x, y, t, s.noiseSeed) - 0.5) * 2 * s.noise : 0;
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
