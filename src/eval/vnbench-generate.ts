/**
 * Our VNBench: VideoNIAH's 9 subtasks with needles put into the user's own haystack videos, written in the
 * released format (`VNBench-main-4try.json` + MP4s) so `longshot eval vnbench` scores it. The needles are drawn
 * with the synthetic needle task's renderer (src/needle): "edit" needles are captions (the secret-word
 * subtitles) or small item cards pasted into haystack frames; "insert" needles are full frames of an item card
 * inserted between haystack frames (the video gets longer). The official set's photos (landmarks, fruits, VOC
 * objects) become drawn words and coloured shapes. Each sample is asked 4 times with its options rotated, so the
 * answer stands once at every letter (circular evaluation). Positions: one needle in each of k equal spans of
 * the haystack, uniformly within it.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import { InputError } from '../errors.js';
import { openVideo } from '../media/index.js';
import { Canvas, type RGB } from '../needle/canvas.js';
import { encodeRgb } from '../needle/dataset.js';
import { drawText, GLYPH_H, textWidth } from '../needle/font.js';
import { COLOR_NAMES, drawItem, type Item, SHAPES, WORDS } from '../needle/items.js';
import { Random } from '../util/random.js';
import { VNBENCH_FILE, VNBENCH_TASKS } from './benchmarks/vnbench.js';

export type VNBenchTask = (typeof VNBENCH_TASKS)[number];

/** The official answer space of the secret-word tasks. */
export const NAMES = [
  'Alice',
  'Bob',
  'Carol',
  'Dave',
  'Eve',
  'Frank',
  'Grace',
  'Harry',
  'Ivy',
  'Jack',
  'Kate',
  'Leo',
  'Mary',
  'Nick',
  'Olivia',
  'Paul',
  'Quentin',
  'Rachel',
  'Sam',
  'Tom',
  'Uma',
  'Victor',
  'Wendy',
  'Xander',
  'Yvonne',
  'Zach',
];

export interface VNBenchGenerateOptions {
  haystack: string;
  out: string;
  seed: number;
  /** Frame rate of the written videos (the haystack is resampled to it). */
  fps: number;
  /** Height of the written videos (width keeps the haystack's aspect, rounded to even). */
  height: number;
  /** How long each needle stays on screen. */
  needleSec: number;
  tasks?: readonly VNBenchTask[];
  ffmpegPath: string;
  onProgress?: (done: number, total: number) => void;
}

/** One needle: where it goes (haystack frame) and what it shows. */
interface Needle {
  at: number;
  mode: 'caption' | 'paste' | 'insert';
  /** caption: the words; paste: the item and the positions of its copies; insert: the item. */
  text?: string;
  item?: Item;
  copies?: Array<[number, number]>;
}

interface Plan {
  needles: Needle[];
  question: string;
  answer: string;
  distractors: string[];
}

const plural = (item: Item) =>
  item.kind === 'shape' ? `${item.color} ${item.shape}s` : `word ${item.text} cards`;
const shape = (r: Random): Item => ({ kind: 'shape', shape: r.pick(SHAPES), color: r.pick(COLOR_NAMES) });
const word = (r: Random): Item => ({ kind: 'word', text: r.pick(WORDS) });
const label = (item: Item) => (item.kind === 'shape' ? `${item.color} ${item.shape}` : item.text);

/** `k` distinct items of a kind. */
function distinct(r: Random, k: number, make: (r: Random) => Item): Item[] {
  const out: Item[] = [];
  while (out.length < k) {
    const item = make(r);
    if (!out.some((o) => label(o) === label(item))) out.push(item);
  }
  return out;
}

/** 3 other permutations of an order, as comma-separated options. */
function otherOrders(r: Random, order: string[]): string[] {
  const seen = new Set([order.join(', ')]);
  while (seen.size < 4) seen.add(r.shuffle(order).join(', '));
  return [...seen].slice(1);
}

const otherNumbers = (r: Random, n: number, lo: number, hi: number) =>
  r.sample(
    Array.from({ length: hi - lo + 1 }, (_, i) => String(lo + i)).filter((v) => v !== String(n)),
    3,
  );

/** A start frame in each of k equal spans of `frames`, each leaving room for `len` frames. */
function spans(r: Random, frames: number, k: number, len: number): number[] {
  const span = Math.floor(frames / k);
  if (span < len + 1) throw new InputError(`too short for ${k} needle(s) of ${len} frame(s)`);
  return Array.from({ length: k }, (_, i) => i * span + r.int(0, span - len - 1));
}

function plan(
  r: Random,
  task: VNBenchTask,
  frames: number,
  len: number,
  size: { width: number; height: number },
): Plan {
  const at = (k: number) => spans(r, frames, k, len);
  const caption = (name: string) => `The secret word is ${name}`;
  const small = () => Math.round(Math.min(size.width, size.height) * 0.18);
  switch (task) {
    case 'ret_edit1': {
      const [name, ...others] = r.sample(NAMES, 4);
      return {
        needles: at(1).map((a) => ({ at: a, mode: 'caption', text: caption(name) })),
        question: 'What is the secret word?',
        answer: name,
        distractors: others,
      };
    }
    case 'ret_insert1': {
      const [item, ...others] = distinct(r, 4, word);
      return {
        needles: at(1).map((a) => ({ at: a, mode: 'insert', item })),
        question: 'What is the word in the picture?',
        answer: label(item),
        distractors: others.map(label),
      };
    }
    case 'ret_insert2': {
      const [item, ...others] = distinct(r, 4, shape);
      return {
        needles: at(1).map((a) => ({ at: a, mode: 'insert', item })),
        question: 'What kind of shape appears in this video?',
        answer: label(item),
        distractors: others.map(label),
      };
    }
    case 'ord_edit1': {
      const names = r.sample(NAMES, 4);
      return {
        needles: at(4).map((a, i) => ({ at: a, mode: 'caption', text: caption(names[i]) })),
        question: 'What is the order of the secret words that appeared in the video?',
        answer: names.join(', '),
        distractors: otherOrders(r, names),
      };
    }
    case 'ord_insert1':
    case 'ord_insert2': {
      const items = distinct(r, 4, task === 'ord_insert1' ? shape : word);
      const names = items.map(label);
      const what = task === 'ord_insert1' ? 'shapes' : 'images';
      return {
        needles: at(4).map((a, i) => ({ at: a, mode: 'insert', item: items[i] })),
        question: `What is the order of ${what} appearing in the video?`,
        answer: names.join(', '),
        distractors: otherOrders(r, names),
      };
    }
    case 'cnt_edit1': {
      const n = r.int(1, 6);
      return {
        needles: at(n).map((a) => ({ at: a, mode: 'caption', text: caption(r.pick(NAMES)) })),
        question: 'How many secret words appeared in the video?',
        answer: String(n),
        distractors: otherNumbers(r, n, 1, 6),
      };
    }
    case 'cnt_edit2': {
      const item = shape(r);
      const s = small();
      const copies = [0, 1, 2, 3].map(() => r.int(1, 4));
      const total = copies.reduce((a, b) => a + b, 0);
      return {
        needles: at(4).map((a, i) => ({
          at: a,
          mode: 'paste',
          item,
          // Side by side in one row, at a random height, so copies never overlap.
          copies: Array.from({ length: copies[i] }, (_, c): [number, number] => [
            Math.round(((c + 0.5) * size.width) / copies[i] - s / 2),
            r.int(0, size.height - s),
          ]),
        })),
        question: `Some ${plural(item)} were inserted into 4 small sections of the video. How many ${plural(item)} appeared in the video in total?`,
        answer: String(total),
        distractors: otherNumbers(r, total, 4, 16),
      };
    }
    case 'cnt_insert1': {
      const item = shape(r);
      const n = r.int(1, 6);
      return {
        needles: at(n).map((a) => ({ at: a, mode: 'insert', item })),
        question: `How many ${plural(item)} appeared in the video?`,
        answer: String(n),
        distractors: otherNumbers(r, n, 1, 6),
      };
    }
  }
}

const GREY: RGB = [90, 90, 90];
const WHITE: RGB = [255, 255, 255];

/** A caption in a grey box at the bottom centre, as VideoNIAH's subtitle needles. */
function drawCaption(c: Canvas, text: string): void {
  const words = text.toUpperCase().split(' ');
  const plain = words.join('') + 'X'.repeat(words.length - 1);
  const scale = Math.max(
    1,
    Math.floor(Math.min((c.width * 0.9) / textWidth(plain, 1), c.height / 10 / GLYPH_H)),
  );
  const w = textWidth(plain, scale);
  const h = GLYPH_H * scale;
  const x0 = Math.round((c.width - w) / 2);
  const y0 = Math.round(c.height * 0.85 - h);
  c.fillRect(x0 - 2 * scale, y0 - 2 * scale, w + 4 * scale, h + 4 * scale, GREY, 0.85);
  let x = x0;
  for (const word of words) {
    drawText(c, word, x, y0, scale, WHITE);
    x += textWidth(`${word}X`, scale) + scale;
  }
}

function insertFrame(width: number, height: number, item: Item): Uint8Array {
  const c = new Canvas(width, height);
  c.fillRect(0, 0, width, height, GREY);
  const s = Math.round(Math.min(width, height) * 0.8);
  drawItem(c, item, Math.round((width - s) / 2), Math.round((height - s) / 2), s);
  return c.data;
}

const VIDEO_EXT = new Set(['.mp4', '.mkv', '.webm', '.mov', '.avi', '.m4v']);

/** Writes every task for every haystack video; returns the path of the JSON. */
export async function generateVNBench(o: VNBenchGenerateOptions): Promise<string> {
  const haystacks = (
    await readdir(o.haystack).catch(() => {
      throw new InputError(`--haystack ${o.haystack}: not a readable directory`);
    })
  )
    .filter((f) => VIDEO_EXT.has(extname(f).toLowerCase()))
    .sort();
  if (!haystacks.length)
    throw new InputError(`--haystack ${o.haystack}: no videos (${[...VIDEO_EXT].join(' ')})`);
  const tasks = o.tasks ?? VNBENCH_TASKS;
  mkdirSync(o.out, { recursive: true });
  const r = new Random(o.seed);
  const rows: Record<string, unknown>[] = [];
  const len = Math.max(1, Math.round(o.needleSec * o.fps));
  let done = 0;
  for (const file of haystacks) {
    await using video = await openVideo(join(o.haystack, file));
    const height = o.height;
    const width = Math.max(2, Math.round(((video.info.width / video.info.height) * height) / 2) * 2);
    const sample = await video.sample({ kind: 'fps', fps: o.fps, maxFrames: Number.MAX_SAFE_INTEGER });
    const frames = sample.indices.length;
    for (const task of tasks) {
      const rt = r.fork();
      let p: Plan;
      try {
        p = plan(rt, task, frames, len, { width, height });
      } catch (e) {
        throw new InputError(
          `${file}: ${frames} frames at ${o.fps} fps is ${(e as Error).message} (${task}); use a longer haystack or a smaller --needle-sec`,
        );
      }
      const name = `${basename(file, extname(file))}_${task}.mp4`;
      const needleTimes: number[] = [];
      let inserted = 0;
      for (const n of p.needles) {
        needleTimes.push((n.at + inserted) / o.fps);
        if (n.mode === 'insert') inserted += len;
      }
      const position = new Map(sample.indices.map((index, t) => [index, t]));
      async function* output(): AsyncGenerator<Uint8Array> {
        for await (const batch of video.frames(sample, { size: { width, height } }))
          for (const f of batch) {
            const t = position.get(f.index) ?? -1;
            for (const n of p.needles)
              if (n.mode === 'insert' && n.at === t && n.item)
                for (let k = 0; k < len; k++) yield insertFrame(width, height, n.item);
            const active = p.needles.filter((n) => n.mode !== 'insert' && t >= n.at && t < n.at + len);
            if (!active.length) {
              yield f.data;
              continue;
            }
            const c = new Canvas(width, height);
            c.data.set(f.data);
            const s = Math.round(Math.min(width, height) * 0.18);
            for (const n of active)
              if (n.mode === 'caption' && n.text) drawCaption(c, n.text);
              else if (n.item) for (const [x, y] of n.copies ?? []) drawItem(c, n.item, x, y, s);
            yield c.data;
          }
      }
      await encodeRgb(output(), { width, height, fps: o.fps }, join(o.out, name), o.ffmpegPath);
      const options = rt.shuffle([p.answer, ...p.distractors]);
      for (let t = 0; t < 4; t++) {
        const rotated = options.map((_, i) => options[(i + t) % 4]);
        rows.push({
          video: name,
          question: p.question,
          options: rotated,
          gt: p.answer,
          gt_option: 'ABCD'[rotated.indexOf(p.answer)],
          needle_time: needleTimes,
          length: (frames + inserted) / o.fps,
          type: task,
          try: t,
          generator: 'longshot',
        });
      }
      o.onProgress?.(++done, haystacks.length * tasks.length);
    }
  }
  const path = join(o.out, VNBENCH_FILE);
  writeFileSync(path, `${JSON.stringify(rows, null, 1)}\n`);
  return path;
}
