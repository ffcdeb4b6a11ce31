import type { Canvas } from './canvas.js';
import { drawItem } from './items.js';
import { renderScene } from './scene.js';
import type { NeedleSample } from './tasks.js';

/** Frame t of a sample: the haystack scene with the needles that are on screen at t. */
export function renderFrame(s: NeedleSample, t: number): Canvas {
  return drawNeedles(renderScene(s.scene, s.width, s.height, t), s, t);
}

/** Draws the needles of `s` that are on screen at frame t onto a haystack frame. */
export function drawNeedles(c: Canvas, s: NeedleSample, t: number): Canvas {
  for (const n of s.needles) if (t >= n.startFrame && t <= n.endFrame) drawItem(c, n.item, n.x, n.y, n.size);
  return c;
}

/** All frames in order, one at a time (a long video is never held whole). */
export function* frames(s: NeedleSample): Generator<Uint8Array> {
  for (let t = 0; t < s.frames; t++) yield renderFrame(s, t).data;
}
