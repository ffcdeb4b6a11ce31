import assert from 'node:assert/strict';
import { test } from 'node:test';
import { renderScene, type Scene } from '../../src/needle/scene.js';

// renderScene draws the blend backgrounds from per-frame tables; each pixel must be the blend weight of the
// per-pixel formula (written out here) of a black-to-white scene without blobs or noise.
const hash = (x: number, y: number, t: number, seed: number) => {
  let h = Math.imul(x, 374761393) + Math.imul(y, 668265263) + Math.imul(t, 2147483647) + seed;
  h = Math.imul(h ^ (h >>> 13), 1274126177);
  return ((h ^ (h >>> 16)) >>> 0) / 4294967296;
};
const wrap = (v: number, n: number) => ((v % n) + n) % n;

const FORMULAS = {
  gradient: (x: number, y: number, t: number, s: Scene, w: number, h: number) =>
    wrap(x + y + s.drift * t * 4, w + h) / (w + h),
  checker: (x: number, y: number, t: number, s: Scene) =>
    (Math.floor(wrap(x + s.drift * t, 1e6) / s.period) + Math.floor(y / s.period)) % 2,
  stripes: (x: number, y: number, t: number, s: Scene) =>
    Math.floor(wrap(x + y * 0.5 + s.drift * t, 1e6) / s.period) % 2,
  noise: (x: number, y: number, t: number, s: Scene) =>
    hash(Math.floor(x / 4), Math.floor(y / 4), Math.floor(t / 3), s.noiseSeed),
  flat: () => 0,
};

test('the blend backgrounds equal their per-pixel formulas (odd sizes, drifting, several frames)', () => {
  for (const [background, weight] of Object.entries(FORMULAS)) {
    const scene: Scene = {
      background: background as Scene['background'],
      colors: [
        [0, 0, 0],
        [255, 255, 255],
      ],
      period: 7,
      drift: -1.37,
      blobs: [],
      noise: 0,
      noiseSeed: 12345,
    };
    const [w, h] = [37, 23];
    for (const t of [0, 1, 5, 40]) {
      const c = renderScene(scene, w, h, t);
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++) {
          const want = Math.round(255 * weight(x, y, t, scene, w, h));
          const i = (y * w + x) * 3;
          assert.deepEqual(
            [...c.data.subarray(i, i + 3)],
            [want, want, want],
            `${background} t ${t} (${x}, ${y})`,
          );
        }
    }
  }
});
