/**
 * The loss curve as a PNG: training loss per logged step (blue, with a smoothed line in dark blue) against
 * steps on the left axis from 0, held-out accuracy (green dots) on the right axis from 0 to 1. Drawn with
 * the needle canvas and its bitmap font (digits and capitals only: the labels are words and integers).
 */
import { encodePng } from '../media/png.js';
import { Canvas, type RGB } from '../needle/canvas.js';
import { drawText, GLYPH_H, textWidth } from '../needle/font.js';

const W = 640;
const H = 400;
const PAD = { left: 56, right: 56, top: 28, bottom: 40 };
const GRID: RGB = [225, 225, 225];
const AXIS: RGB = [60, 60, 60];
const LOSS: RGB = [150, 180, 235];
const SMOOTH: RGB = [20, 60, 170];
const ACC: RGB = [20, 150, 60];

function line(c: Canvas, x0: number, y0: number, x1: number, y1: number, color: RGB): void {
  const n = Math.max(1, Math.ceil(Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0))));
  for (let i = 0; i <= n; i++) {
    const x = Math.round(x0 + ((x1 - x0) * i) / n);
    const y = Math.round(y0 + ((y1 - y0) * i) / n);
    c.fillRect(x, y, 2, 2, color);
  }
}

/** Exponential moving average (as train_needle.py logs its loss: 0.98 · ema + 0.02 · loss). */
export function smooth(values: readonly number[], keep = 0.98): number[] {
  const out: number[] = [];
  let ema: number | null = null;
  for (const v of values) {
    ema = ema === null ? v : keep * ema + (1 - keep) * v;
    out.push(ema);
  }
  return out;
}

/** PNG bytes of the curve of `losses` ([step, loss]) and `evals` ([step, accuracy]). */
export function lossCurvePng(
  losses: readonly [number, number][],
  evals: readonly [number, number][],
): Buffer {
  const c = new Canvas(W, H);
  c.fillRect(0, 0, W, H, [255, 255, 255]);
  const x0 = PAD.left;
  const x1 = W - PAD.right;
  const y0 = H - PAD.bottom;
  const y1 = PAD.top;
  const lastStep = Math.max(1, ...losses.map((l) => l[0]), ...evals.map((e) => e[0]));
  const finite = losses.map((l) => l[1]).filter(Number.isFinite);
  const top = Math.max(1, Math.ceil(Math.max(0, ...finite)));
  const px = (step: number) => x0 + ((x1 - x0) * step) / lastStep;
  const py = (v: number, max: number) => y0 - ((y0 - y1) * Math.min(Math.max(v, 0), max)) / max;
  for (let k = 1; k <= 4; k++) {
    const y = Math.round(py((top * k) / 4, top));
    c.fillRect(x0, y, x1 - x0, 1, GRID);
  }
  c.fillRect(x0, y1, 1, y0 - y1, AXIS);
  c.fillRect(x1, y1, 1, y0 - y1, AXIS);
  c.fillRect(x0, y0, x1 - x0, 1, AXIS);
  const points = losses.filter((l) => Number.isFinite(l[1]));
  const sm = smooth(points.map((p) => p[1]));
  for (let i = 1; i < points.length; i++)
    line(c, px(points[i - 1][0]), py(points[i - 1][1], top), px(points[i][0]), py(points[i][1], top), LOSS);
  for (let i = 1; i < points.length; i++)
    line(c, px(points[i - 1][0]), py(sm[i - 1], top), px(points[i][0]), py(sm[i], top), SMOOTH);
  for (const [s, a] of evals) c.fillRect(px(s) - 3, py(a, 1) - 3, 7, 7, ACC);
  drawText(c, 'LOSS', 8, y1 - GLYPH_H * 2 - 4, 2, SMOOTH);
  drawText(c, String(top), x0 - textWidth(String(top), 2) - 6, y1, 2, AXIS);
  drawText(c, '0', x0 - textWidth('0', 2) - 6, y0 - GLYPH_H * 2, 2, AXIS);
  drawText(c, 'ACC', W - textWidth('ACC', 2) - 8, y1 - GLYPH_H * 2 - 4, 2, ACC);
  drawText(c, '1', x1 + 6, y1, 2, ACC);
  drawText(c, 'STEP', x0, y0 + 10, 2, AXIS);
  const last = String(lastStep);
  drawText(c, last, x1 - textWidth(last, 2), y0 + 10, 2, AXIS);
  return encodePng(W, H, c.data);
}
