import type { Canvas, RGB } from './canvas.js';
import { drawText, GLYPH_H, textWidth } from './font.js';

/** What a needle shows. Answers and descriptions are lower-case words a tiny word-level tokenizer can hold. */
export type Item =
  | { kind: 'shape'; shape: ShapeName; color: ColorName }
  | { kind: 'digit'; text: string }
  | { kind: 'word'; text: string };

export const COLORS = {
  red: [230, 30, 30],
  green: [20, 190, 40],
  blue: [30, 60, 235],
  yellow: [245, 220, 20],
  purple: [150, 40, 200],
  orange: [255, 130, 0],
} as const satisfies Record<string, RGB>;
export type ColorName = keyof typeof COLORS;
export const COLOR_NAMES = Object.keys(COLORS) as ColorName[];

export const SHAPES = ['circle', 'square', 'triangle', 'star'] as const;
export type ShapeName = (typeof SHAPES)[number];

export const DIGITS = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'] as const;
export const WORDS = [
  'apple',
  'river',
  'stone',
  'cloud',
  'tiger',
  'lemon',
  'piano',
  'robot',
  'house',
  'ocean',
  'train',
  'zebra',
] as const;

/** How questions and options name an item. */
export function describe(item: Item): string {
  switch (item.kind) {
    case 'shape':
      return `${item.color} ${item.shape}`;
    case 'digit':
      return `number ${item.text}`;
    case 'word':
      return `word ${item.text}`;
  }
}

export const sameItem = (a: Item, b: Item): boolean => describe(a) === describe(b);

const WHITE: RGB = [255, 255, 255];
const BLACK: RGB = [0, 0, 0];

/** Draws the needle: a white card with a black border holding the item, at (x, y) with side `size`. */
export function drawItem(c: Canvas, item: Item, x: number, y: number, size: number): void {
  c.fillRect(x, y, size, size, BLACK);
  const pad = Math.max(1, Math.round(size * 0.04));
  c.fillRect(x + pad, y + pad, size - 2 * pad, size - 2 * pad, WHITE);
  const cx = x + size / 2;
  const cy = y + size / 2;
  const r = size * 0.36;
  if (item.kind === 'shape') {
    const col = COLORS[item.color];
    switch (item.shape) {
      case 'circle':
        c.fillCircle(cx, cy, r, col);
        break;
      case 'square':
        c.fillRect(cx - r * 0.85, cy - r * 0.85, r * 1.7, r * 1.7, col);
        break;
      case 'triangle':
        c.fillPolygon(
          [
            [cx, cy - r],
            [cx + r, cy + r * 0.8],
            [cx - r, cy + r * 0.8],
          ],
          col,
        );
        break;
      case 'star': {
        const pts: [number, number][] = [];
        for (let i = 0; i < 10; i++) {
          const ang = -Math.PI / 2 + (i * Math.PI) / 5;
          const rr = i % 2 ? r * 0.45 : r;
          pts.push([cx + rr * Math.cos(ang), cy + rr * Math.sin(ang)]);
        }
        c.fillPolygon(pts, col);
        break;
      }
    }
    return;
  }
  const inner = size - 2 * pad - 2;
  const scale = Math.max(1, Math.floor(Math.min(inner / textWidth(item.text, 1), inner / GLYPH_H)));
  const w = textWidth(item.text, scale);
  drawText(c, item.text, Math.round(cx - w / 2), Math.round(cy - (GLYPH_H * scale) / 2), scale, BLACK);
}
