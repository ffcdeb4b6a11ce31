/**
 * The long-video figure, drawn with a tiny rasteriser (src/needle's canvas and 5×7 font, src/media's PNG
 * encoder): peak memory and prefill time against frames (log₂ axis), one line per series, a cross where a
 * series ran out of memory (drawn at the top of the panel) and a ring where it was skipped for time.
 */
import { encodePng } from '../src/media/png.js';
import { Canvas, type RGB } from '../src/needle/canvas.js';
import { drawText, GLYPH_H, textWidth } from '../src/needle/font.js';
import type { Series } from './long_video.js';

const COLORS: RGB[] = [
  [214, 39, 40],
  [31, 119, 180],
  [44, 160, 44],
  [148, 103, 189],
];
const INK: RGB = [40, 40, 40];
const GRID: RGB = [225, 225, 225];

/** Text in the font's alphabet (capitals, digits, space); other characters become spaces. */
function label(canvas: Canvas, s: string, x: number, y: number, scale: number, c: RGB): void {
  let cx = x;
  for (const word of s
    .toUpperCase()
    .replace(/[^A-Z0-9]/g, ' ')
    .split(' ')) {
    if (word) drawText(canvas, word, cx, y, scale, c);
    cx += textWidth(`${word} `, scale) + scale;
  }
}

function line(c: Canvas, x0: number, y0: number, x1: number, y1: number, color: RGB, width = 2): void {
  const n = Math.ceil(Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0))) + 1;
  for (let i = 0; i <= n; i++) {
    const x = x0 + ((x1 - x0) * i) / n;
    const y = y0 + ((y1 - y0) * i) / n;
    c.fillRect(x - width / 2, y - width / 2, width, width, color);
  }
}

const niceStep = (max: number) => {
  const raw = max / 5;
  const p = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw)!;
};

function panel(
  c: Canvas,
  box: { x: number; y: number; w: number; h: number },
  title: string,
  all: Series[],
  value: (r: Series['rows'][number]) => number | undefined,
  frames: number[],
): void {
  const { x, y, w, h } = box;
  const vals = all.flatMap((s) => s.rows.map(value).filter((v): v is number => v !== undefined));
  const step = niceStep(Math.max(1e-9, ...vals) * 1.1);
  const yMax = Math.ceil((Math.max(1e-9, ...vals) * 1.1) / step) * step;
  const lo = Math.log2(Math.min(...frames));
  const hi = Math.log2(Math.max(...frames));
  const px = (f: number) => x + ((Math.log2(f) - lo) / (hi - lo || 1)) * w;
  const py = (v: number) => y + h - (v / yMax) * h;
  for (let v = 0; v <= yMax + 1e-9; v += step) {
    line(c, x, py(v), x + w, py(v), GRID, 1);
    const s = step < 1 ? v.toFixed(1) : String(Math.round(v));
    label(c, s, x - textWidth(s, 2) - 8, py(v) - GLYPH_H, 2, INK);
  }
  for (const f of frames) {
    line(c, px(f), y, px(f), y + h, GRID, 1);
    label(c, String(f), px(f) - textWidth(String(f), 2) / 2, y + h + 10, 2, INK);
  }
  line(c, x, y + h, x + w, y + h, INK, 2);
  line(c, x, y, x, y + h, INK, 2);
  label(c, title, x + w / 2 - textWidth(title, 3) / 2, y - 34, 3, INK);
  label(c, 'FRAMES', x + w / 2 - textWidth('FRAMES', 2) / 2, y + h + 34, 2, INK);
  all.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    let prev: [number, number] | null = null;
    for (const r of s.rows) {
      const v = value(r);
      const top = y + 12 + 22 * i; // one row of markers per series
      if (r.status === 'oom') {
        const cx = px(r.frames);
        line(c, cx - 9, top - 9, cx + 9, top + 9, color, 4);
        line(c, cx - 9, top + 9, cx + 9, top - 9, color, 4);
      } else if (r.status === 'skipped') {
        c.fillCircle(px(r.frames), top, 9, color);
        c.fillCircle(px(r.frames), top, 5, [255, 255, 255]);
      }
      if (v === undefined) continue;
      const p: [number, number] = [px(r.frames), py(v)];
      if (prev) line(c, prev[0], prev[1], p[0], p[1], color, 3);
      c.fillCircle(p[0], p[1], 6, color);
      prev = p;
    }
  });
}

/** Two panels side by side, a legend and a caption (device, settings); returns PNG bytes. */
export function drawFigure(all: Series[], caption: string): Buffer {
  const W = 1600;
  const H = 720;
  const c = new Canvas(W, H);
  c.fillRect(0, 0, W, H, [255, 255, 255]);
  const frames = [...new Set(all.flatMap((s) => s.rows.map((r) => r.frames)))].sort((a, b) => a - b);
  if (!frames.length) frames.push(1, 2);
  panel(c, { x: 120, y: 90, w: 600, h: 470 }, 'Peak memory GiB', all, (r) => r.peakGiB, frames);
  panel(c, { x: 920, y: 90, w: 600, h: 470 }, 'Prefill seconds', all, (r) => r.prefillS, frames);
  all.forEach((s, i) => {
    const lx = 120 + i * 480;
    c.fillRect(lx, 660, 30, 6, COLORS[i % COLORS.length]);
    label(c, s.name, lx + 40, 656, 2, INK);
  });
  label(c, 'X OUT OF MEMORY    O SKIPPED FOR TIME', 120, 692, 2, INK);
  label(c, caption, 920, 692, 2, INK);
  return encodePng(W, H, c.data);
}
