/**
 * Charades-STA as released: `Charades_sta_test.txt` ("VIDEOID start end##sentence"), durations from
 * `Charades_v1_test.csv` (column `length`), videos `Charades_v1_480/<id>.mp4`. Prompt, time parsing and
 * metrics: lmms-eval `tasks/charades_sta` (research/benchmarks.md §1.7).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError } from '../../errors.js';
import { extractTimeSpan } from '../answers.js';
import { type BenchItem, type Benchmark, findVideo, readText } from '../benchmark.js';
import { parseCsv } from './mcq.js';

const PRE =
  "Please find the visual event described by a sentence in the video, determining its starting and ending times. The format should be: 'The event happens in the start time - end time'. For example, The event 'person turn a light on' happens in the 24.3 - 30.4 seonds. Now I will give you the textual sentence: ";
const POST = 'Please return its start time and end time.';

/** lmms-eval's IoU: intersection over (max end − min start), 0 when the spans do not overlap. */
export function iou(a: readonly [number, number], b: readonly [number, number]): number {
  const inter = Math.min(a[1], b[1]) - Math.max(a[0], b[0]);
  if (inter <= 0) return 0;
  return inter / (Math.max(a[1], b[1]) - Math.min(a[0], b[0]));
}

const span = (s: string): [number, number] | null => {
  const p = s.split(',').map(Number);
  return p.length === 2 && p.every(Number.isFinite) ? [p[0], p[1]] : null;
};

export const charades: Benchmark = {
  name: 'charades_sta',
  layout: 'Charades_sta_test.txt, Charades_v1_test.csv, Charades_v1_480/<id>.mp4',
  maxNewTokens: 50,
  async read(dir) {
    const path = join(dir, 'Charades_sta_test.txt');
    const text = await readText(path, 'charades_sta', 'download the Charades-STA annotations');
    const csv = await readFile(join(dir, 'Charades_v1_test.csv'), 'utf8').catch(() => '');
    const lengths = new Map(parseCsv(csv).map((r) => [String(r.id), Number(r.length)]));
    return text
      .split('\n')
      .filter((l) => l.trim())
      .map((line, n): BenchItem => {
        const m = line.trim().match(/^(\S+) ([\d.]+) ([\d.]+)##(.*)$/);
        if (!m) throw new InputError(`${path}:${n + 1}: expected 'VIDEOID start end##sentence'`);
        const [, vid, start, end, sentence] = m;
        return {
          id: `${vid}_${n}`,
          video: findVideo([join(dir, 'Charades_v1_480', `${vid}.mp4`)], 'charades_sta'),
          question: sentence,
          options: [],
          answer: `${Number(start)},${Number(end)}`,
          groups: {},
          prompt: `${PRE}${sentence}. ${POST}`,
          extra: lengths.has(vid) ? { duration: lengths.get(vid) as number } : undefined,
        };
      });
  },
  parse(response) {
    const s = extractTimeSpan(response);
    return s ? `${s[0]},${s[1]}` : '';
  },
  score(items, parsed) {
    const ious = items.map((i) => {
      const p = span(parsed.get(i.id) ?? '');
      const g = span(i.answer);
      return p && g ? iou(p, g) : 0;
    });
    const at = (t: number) => (100 * ious.filter((v) => v >= t).length) / Math.max(1, ious.length);
    return {
      metrics: {
        mIoU: (100 * ious.reduce((a, b) => a + b, 0)) / Math.max(1, ious.length),
        'R@0.3': at(0.3),
        'R@0.5': at(0.5),
        'R@0.7': at(0.7),
      },
      breakdown: {},
    };
  },
};
