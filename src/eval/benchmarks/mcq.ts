/**
 * The multiple-choice sets whose annotation files are JSON/JSONL/CSV: MLVU (dev), LongVideoBench (val),
 * LVBench, MVBench and NExT-QA (MC), each read as released and prompted, parsed and scored as lmms-eval does
 * (research/benchmarks.md §1.1, §1.3–§1.6).
 */
import { existsSync, statSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { InputError } from '../../errors.js';
import type { Clip } from '../../media/index.js';
import { extractChoice, firstLetter, mmmuChoice, mvbenchChoice } from '../answers.js';
import {
  accuracyScores,
  type BenchItem,
  type Benchmark,
  field,
  findVideo,
  lettered,
  letterOf,
  MCQ_INSTRUCTION,
  meanOf,
  randomLetter,
  readJson,
  readText,
} from '../benchmark.js';

type Row = Record<string, unknown>;

const parenthesized = (options: readonly string[]) =>
  options.map((o, i) => `(${letterOf(i)}) ${o}`).join('\n');

function list(row: Row, key: string, where: string): string[] {
  const v = row[key];
  if (!Array.isArray(v)) throw new InputError(`${where}: missing list field '${key}'`);
  return v.map(String);
}

/** The gold letter of an answer given as option text. */
function letterOfText(options: readonly string[], answer: string, where: string): string {
  const i = options.indexOf(answer);
  if (i < 0) throw new InputError(`${where}: the answer '${answer}' is not one of the candidates`);
  return letterOf(i);
}

/** MLVU's multiple-choice task folders; the raw `question_type` names `findNeedle` what lmms-eval calls needle. */
const MLVU_TASKS = [
  '1_plotQA',
  '2_needle',
  '3_ego',
  '4_count',
  '5_order',
  '6_anomaly_reco',
  '7_topic_reasoning',
];

export const mlvu: Benchmark = {
  name: 'mlvu_dev',
  layout: 'MLVU/json/<task>.json, MLVU/video/<task>/<video>',
  maxNewTokens: 16,
  async read(dir) {
    const root = join(dir, 'MLVU');
    const files = (await readdir(join(root, 'json')).catch(() => [] as string[])).filter((f) =>
      f.endsWith('.json'),
    );
    if (!files.length) throw new InputError(`mlvu_dev: no MLVU/json/*.json under ${dir}; download MLVU/MVLU`);
    const items: BenchItem[] = [];
    for (const file of files.sort()) {
      const task = basename(file, '.json');
      if (!MLVU_TASKS.includes(task)) continue; // 8_sub_scene, 9_summary: generation tasks
      const rows = await readJson<Row[]>(join(root, 'json', file), 'an MLVU task file');
      for (const [n, row] of rows.entries()) {
        const where = `MLVU/json/${file}[${n}]`;
        if (!Array.isArray(row.candidates)) continue;
        const options = list(row, 'candidates', where);
        const question = field(row, 'question', where);
        const video = field(row, 'video', where);
        const type = field(row, 'question_type', where);
        items.push({
          id: `${task}/${n}`,
          video: findVideo([join(root, 'video', task, video)], 'mlvu_dev'),
          question,
          options,
          answer: letterOfText(options, field(row, 'answer', where), where),
          groups: { task_type: type === 'findNeedle' ? 'needle' : type },
          prompt: `Question: ${question}\nOptions:\n${parenthesized(options)}\nOnly give the best option.\nBest option: (`,
        });
      }
    }
    return items;
  },
  parse: (response) => extractChoice(response),
  score(items, parsed) {
    const s = accuracyScores(items, parsed);
    // M-avg: the unweighted mean of the per-task accuracies.
    return {
      metrics: { 'm-avg': meanOf(s.breakdown.task_type ?? {}), ...s.metrics },
      breakdown: s.breakdown,
    };
  },
};

export const longvideobench: Benchmark = {
  name: 'longvideobench_val_v',
  layout: 'lvb_val.json, videos/<video_path>',
  maxNewTokens: 32,
  async read(dir) {
    const rows = await readJson<Row[]>(join(dir, 'lvb_val.json'), 'download longvideobench/LongVideoBench');
    return rows.map((row, n) => {
      const where = `lvb_val.json[${n}]`;
      const options = list(row, 'candidates', where);
      const question = field(row, 'question', where);
      return {
        id: field(row, 'id', where),
        video: findVideo([join(dir, 'videos', field(row, 'video_path', where))], 'longvideobench'),
        question,
        options,
        answer: letterOf(Number(field(row, 'correct_choice', where))),
        groups: {
          duration_group: field(row, 'duration_group', where),
          question_category: field(row, 'question_category', where),
        },
        prompt: `${question}\n${lettered(options)}\n${MCQ_INSTRUCTION}\n`,
      };
    });
  },
  parse: (response, item) => firstLetter(response, 'ABCDE') || randomLetter(item.id, item.options.length),
  score: (items, parsed) => accuracyScores(items, parsed),
};

export const lvbench: Benchmark = {
  name: 'lvbench',
  layout: 'video_info.meta.jsonl, videos/<key>.mp4',
  maxNewTokens: 16,
  async read(dir) {
    const path = join(dir, 'video_info.meta.jsonl');
    const text = await readText(path, 'lvbench', 'download THUDM/LVBench');
    const items: BenchItem[] = [];
    for (const [n, line] of text.split('\n').entries()) {
      if (!line.trim()) continue;
      let row: Row;
      try {
        row = JSON.parse(line);
      } catch {
        throw new InputError(`${path}:${n + 1}: not valid JSON`);
      }
      const key = field(row, 'key', `${path}:${n + 1}`);
      const video = findVideo([join(dir, 'videos', `${key}.mp4`), join(dir, `${key}.mp4`)], 'lvbench');
      const qa = row.qa;
      if (!Array.isArray(qa)) throw new InputError(`${path}:${n + 1}: missing list field 'qa'`);
      for (const q of qa as Row[]) {
        const where = `${path}:${n + 1} qa`;
        const question = field(q, 'question', where);
        // The options are lines 2–5 of `question`: "(A) …".
        const [stem, ...opts] = question.split('\n');
        const types = Array.isArray(q.question_type)
          ? q.question_type.map(String)
          : [field(q, 'question_type', where)];
        items.push({
          id: field(q, 'uid', where),
          video,
          question: stem,
          options: opts.map((o) => o.replace(/^\([A-D]\)\s*/, '')),
          answer: field(q, 'answer', where),
          groups: { question_type: types },
          prompt: `${question}\nAnswer the question with the option letter`,
        });
      }
    }
    return items;
  },
  parse: (response) => extractChoice(response),
  score: (items, parsed) => accuracyScores(items, parsed),
};

/**
 * MVBench's task files: the folder (under video/) each one's videos live in, and whether its items carry
 * `start`/`end` bounds (the official `data_list`'s last field). episodic_reasoning's "videos" are folders of
 * TVQA frames at 3 fps.
 */
const MVBENCH_TASKS: Record<string, { folder: string; bound?: true; frameFolderFps?: number }> = {
  action_sequence: { folder: 'star/Charades_v1_480', bound: true },
  action_prediction: { folder: 'star/Charades_v1_480', bound: true },
  action_antonym: { folder: 'ssv2_video' },
  fine_grained_action: { folder: 'Moments_in_Time_Raw/videos' },
  unexpected_action: { folder: 'FunQA_test/test' },
  object_existence: { folder: 'clevrer/video_validation' },
  object_interaction: { folder: 'star/Charades_v1_480', bound: true },
  object_shuffle: { folder: 'perception/videos' },
  moving_direction: { folder: 'clevrer/video_validation' },
  action_localization: { folder: 'sta/sta_video', bound: true },
  scene_transition: { folder: 'scene_qa/video' },
  action_count: { folder: 'perception/videos' },
  moving_count: { folder: 'clevrer/video_validation' },
  moving_attribute: { folder: 'clevrer/video_validation' },
  state_change: { folder: 'perception/videos' },
  fine_grained_pose: { folder: 'nturgbd' },
  character_order: { folder: 'perception/videos' },
  egocentric_navigation: { folder: 'vlnqa' },
  episodic_reasoning: { folder: 'tvqa/frames_fps3_hq', bound: true, frameFolderFps: 3 },
  counterfactual_inference: { folder: 'clevrer/video_validation' },
};

/** A frame folder that must exist (its frames are checked when it is made into a video). */
function frameFolder(path: string): string {
  if (!statSync(path, { throwIfNoEntry: false })?.isDirectory())
    throw new InputError(
      `mvbench: frame folder not found at ${path}; check --data points at the extracted release (video/tvqa/frames_fps3_hq)`,
    );
  return path;
}

/** An item's `start`/`end` seconds (both numbers, start before end), as a clip. */
function clipOf(row: Row, where: string): Clip {
  const [startSec, endSec] = [row.start, row.end].map(Number);
  if (!(Number.isFinite(startSec) && Number.isFinite(endSec) && startSec >= 0 && endSec > startSec))
    throw new InputError(
      `${where}: start/end must be seconds with start < end, got ${JSON.stringify(row.start)}/${JSON.stringify(row.end)}`,
    );
  return { startSec, endSec };
}

export const mvbench: Benchmark = {
  name: 'mvbench',
  layout: 'json/<task>.json, video/<source folder>/<video>',
  maxNewTokens: 16,
  async read(dir) {
    const items: BenchItem[] = [];
    for (const [task, { folder, bound, frameFolderFps }] of Object.entries(MVBENCH_TASKS)) {
      const path = join(dir, 'json', `${task}.json`);
      if (!existsSync(path)) continue; // a partial download: score the tasks that are there
      const rows = await readJson<Row[]>(path, 'an MVBench task file');
      for (const [n, row] of rows.entries()) {
        const where = `json/${task}.json[${n}]`;
        const options = list(row, 'candidates', where);
        const question = field(row, 'question', where);
        items.push({
          id: `${task}/${n}`,
          video: frameFolderFps
            ? frameFolder(join(dir, 'video', folder, field(row, 'video', where)))
            : findVideo([join(dir, 'video', folder, field(row, 'video', where))], 'mvbench'),
          ...(bound && { clip: clipOf(row, where) }),
          ...(frameFolderFps && { frameFolderFps }),
          question,
          options,
          answer: letterOfText(options, field(row, 'answer', where), where),
          groups: { task },
          prompt: `Question:${question}\nOption:\n${parenthesized(options)}\nOnly give the best option.\n`,
        });
      }
    }
    if (!items.length)
      throw new InputError(`mvbench: no json/<task>.json under ${dir}; download OpenGVLab/MVBench`);
    return items;
  },
  parse: (response) => mvbenchChoice(response),
  score(items, parsed, raw) {
    // lmms-eval's quirk: answers that were empty strings are left out of the mean.
    return accuracyScores(
      items.filter((i) => (raw.get(i.id) ?? '').trim() !== ''),
      parsed,
    );
  },
};

/** The CSV reader NExT-QA's files need (quoted fields with commas). */
export function parseCsv(text: string): Row[] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') cell += text[++i];
      else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(cell);
      cell = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(cell);
      if (row.some((x) => x !== '')) rows.push(row);
      row = [];
      cell = '';
    } else cell += c;
  }
  if (cell !== '' || row.length) rows.push([...row, cell]);
  const [head, ...body] = rows;
  return body.map((r) => Object.fromEntries(head.map((h, i) => [h.trim(), r[i] ?? ''])));
}

export const nextqa: Benchmark = {
  name: 'nextqa_mc_test',
  layout: 'test.csv, map_vid_vidorID.json, NExTVideo/<folder>/<video>.mp4',
  maxNewTokens: 16,
  async read(dir) {
    const path = join(dir, 'test.csv');
    const text = await readText(path, 'nextqa', 'download NExT-QA (doc-doc/NExT-QA)');
    const map = await readJson<Record<string, string>>(
      join(dir, 'map_vid_vidorID.json'),
      'NExT-QA video map',
    );
    return parseCsv(text).map((row, n) => {
      const where = `test.csv row ${n + 2}`;
      const vid = field(row, 'video', where);
      const options = [0, 1, 2, 3, 4].map((k) => field(row, `a${k}`, where));
      const question = field(row, 'question', where).trim();
      const folder = map[vid];
      if (!folder) throw new InputError(`${where}: video ${vid} is not in map_vid_vidorID.json`);
      return {
        id: `${vid}_${field(row, 'qid', where)}`,
        video: findVideo([join(dir, 'NExTVideo', `${folder}.mp4`)], 'nextqa'),
        question,
        options,
        answer: letterOf(Number(field(row, 'answer', where))),
        groups: { type: field(row, 'type', where) },
        prompt: `${question}\n${lettered(options)}`,
      };
    });
  },
  parse: (response, item) => mmmuChoice(response, item.options) || randomLetter(item.id, item.options.length),
  score: (items, parsed) => accuracyScores(items, parsed),
};
