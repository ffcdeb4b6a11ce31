/**
 * VNBench as released: `VNBench-main-4try.json` (video, question, options, gt, gt_option, needle_time, length,
 * type, try), videos beside it. Official prompt, `eval.py` parsing and circular scoring: a sample counts only
 * when all 4 tries are right; ret/ord/cnt are means of their subtasks, overall the mean of those three
 * (research/benchmarks.md §1.8, §2.4).
 */
import { basename, join } from 'node:path';
import { InputError } from '../../errors.js';
import { vnbenchChoice } from '../answers.js';
import {
  type BenchItem,
  type Benchmark,
  count,
  field,
  findVideo,
  lettered,
  MCQ_INSTRUCTION,
  readJson,
  type Tally,
} from '../benchmark.js';

export const VNBENCH_FILE = 'VNBench-main-4try.json';
export const VNBENCH_TASKS = [
  'ret_edit1',
  'ret_insert1',
  'ret_insert2',
  'ord_edit1',
  'ord_insert1',
  'ord_insert2',
  'cnt_edit1',
  'cnt_edit2',
  'cnt_insert1',
] as const;

export const vnbenchPrompt = (question: string, options: readonly string[]) =>
  `${question}\n${lettered(options)}\n${MCQ_INSTRUCTION}`;

export interface VNBenchOptions {
  /** The official `evaluation_utils.py` swaps the ret_insert1/ret_insert2 scores (their files are mislabelled). */
  swapInsertRetrieval: boolean;
}

export function vnbench(o: VNBenchOptions = { swapInsertRetrieval: true }): Benchmark {
  return {
    name: 'vnbench',
    layout: `${VNBENCH_FILE}, the videos at each entry's 'video' path (relative to it, or in videos/)`,
    maxNewTokens: 5,
    async read(dir) {
      const path = join(dir, VNBENCH_FILE);
      const rows = await readJson<Record<string, unknown>[]>(path, 'download videoniah/VNBench');
      return rows.map((row, n): BenchItem => {
        const where = `${VNBENCH_FILE}[${n}]`;
        const options = row.options;
        if (!Array.isArray(options) || options.length !== 4)
          throw new InputError(`${where}: 'options' must be a list of 4 strings`);
        const video = field(row, 'video', where);
        const type = field(row, 'type', where);
        if (!(VNBENCH_TASKS as readonly string[]).includes(type))
          throw new InputError(
            `${where}: unknown type '${type}' (expected one of ${VNBENCH_TASKS.join(', ')})`,
          );
        const question = field(row, 'question', where);
        const tryIndex = field(row, 'try', where);
        return {
          id: `${video}#${tryIndex}`,
          video: findVideo([join(dir, video), join(dir, 'videos', basename(video))], 'vnbench'),
          question,
          options: options.map(String),
          answer: field(row, 'gt_option', where),
          groups: { type },
          prompt: vnbenchPrompt(question, options.map(String)),
          extra: { sample: video, try: Number(tryIndex), generated: row.generator === 'longshot' ? 1 : 0 },
        };
      });
    },
    parse: (response) => vnbenchChoice(response),
    score(items, parsed) {
      const samples = new Map<string, { type: string; right: number; tries: number }>();
      for (const i of items) {
        const key = String(i.extra?.sample ?? i.id);
        const s = samples.get(key) ?? { type: String(i.groups.type), right: 0, tries: 0 };
        s.tries++;
        if (parsed.get(i.id) === i.answer) s.right++;
        samples.set(key, s);
      }
      // Our generator labels its videos truthfully: only the released file needs the swap.
      const swapped = o.swapInsertRetrieval && !items.some((i) => i.extra?.generated);
      const byType: Record<string, Tally> = {};
      for (const s of samples.values()) {
        const type = swapped ? swap(s.type) : s.type;
        count(byType, type, s.right === 4 && s.tries === 4);
      }
      const family = (prefix: string) => {
        const v = Object.entries(byType).filter(([k]) => k.startsWith(prefix));
        return v.length ? v.reduce((a, [, t]) => a + t.score, 0) / v.length : 0;
      };
      const ret = family('ret');
      const ord = family('ord');
      const cnt = family('cnt');
      return { metrics: { overall: (ret + ord + cnt) / 3, ret, ord, cnt }, breakdown: { type: byType } };
    },
  };
}

const swap = (type: string) =>
  type === 'ret_insert1' ? 'ret_insert2' : type === 'ret_insert2' ? 'ret_insert1' : type;
