/**
 * Video-MME as released: `videomme/test-*.parquet` (videoID, question_id, duration, domain, sub_category,
 * task_type, question, options "A. …", answer), videos `data/<videoID>.mp4`, subtitles
 * `subtitle/<videoID>.srt`. Prompt and scoring: lmms-eval `tasks/videomme` (research/benchmarks.md §1.2).
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { asyncBufferFromFile, parquetReadObjects } from 'hyparquet';
import { InputError } from '../../errors.js';
import { extractChoice } from '../answers.js';
import {
  accuracyScores,
  type BenchItem,
  type Benchmark,
  field,
  findVideo,
  MCQ_INSTRUCTION,
} from '../benchmark.js';

const OPTION_PROMPT =
  'Select the best answer to the following multiple-choice question based on the video and the subtitles. Respond with only the letter (A, B, C, or D) of the correct option.';

/** The subtitle lines lmms-eval keeps: those on screen at one of `frameNum` uniformly spaced frames. */
export const SUBTITLE_FRAMES = 32;

interface Cue {
  start: number;
  end: number;
  text: string;
}

const srtTime = (t: string) => {
  const [h, m, s] = t.replace(',', '.').split(':').map(Number);
  return h * 3600 + m * 60 + s;
};

/** An .srt file's cues, with Video-MME's `<font …>` wrapping removed. */
export function parseSrt(text: string): Cue[] {
  return text
    .replace(/\r/g, '')
    .split(/\n\s*\n/)
    .flatMap((block) => {
      const lines = block.trim().split('\n');
      const at = lines.findIndex((l) => l.includes('-->'));
      if (at < 0) return [];
      const [a, b] = lines[at].split('-->').map((s) => s.trim());
      const body = lines
        .slice(at + 1)
        .join(' ')
        .replace(/<[^>]+>/g, '')
        .trim();
      return [{ start: srtTime(a), end: srtTime(b), text: body }];
    });
}

/** The cues shown at `frameNum` uniformly spaced times over the video (np.linspace over [0, duration]). */
export function subtitlesAt(cues: readonly Cue[], durationSec: number, frameNum = SUBTITLE_FRAMES): string {
  const times = Array.from({ length: frameNum }, (_, i) => (durationSec * i) / Math.max(1, frameNum - 1));
  return cues
    .filter((c) => times.some((t) => t >= c.start && t <= c.end))
    .map((c) => c.text)
    .join('\n');
}

export function videommePrompt(question: string, options: readonly string[], subtitles?: string): string {
  const body = `${OPTION_PROMPT}\n${question}\n${options.join('\n')}`;
  if (subtitles === undefined) return `${body}\n\n${MCQ_INSTRUCTION}`;
  return `This video's subtitles are listed below: \n${subtitles}\n${body}\nThe best answer is:`;
}

async function readRows(dir: string): Promise<Record<string, unknown>[]> {
  const folder = join(dir, 'videomme');
  const files = (await readdir(folder).catch(() => [] as string[])).filter(
    (f) => f.startsWith('test') && f.endsWith('.parquet'),
  );
  if (!files.length)
    throw new InputError(`videomme: no videomme/test-*.parquet under ${dir}; download lmms-lab/Video-MME`);
  const rows: Record<string, unknown>[] = [];
  for (const f of files.sort())
    rows.push(...(await parquetReadObjects({ file: await asyncBufferFromFile(join(folder, f)) })));
  return rows;
}

/** `subtitles`: the w/ subtitles variant; `durationOf` gives a video's length to place the cues. */
export function videomme(
  subtitles = false,
  durationOf: (video: string) => Promise<number> = async () => 0,
): Benchmark {
  return {
    name: subtitles ? 'videomme_w_subtitle' : 'videomme',
    layout: 'videomme/test-*.parquet, data/<videoID>.mp4, subtitle/<videoID>.srt',
    maxNewTokens: 16,
    async read(dir) {
      const items: BenchItem[] = [];
      for (const [n, row] of (await readRows(dir)).entries()) {
        const where = `videomme row ${n}`;
        const id = field(row, 'videoID', where);
        const options = row.options;
        if (!Array.isArray(options)) throw new InputError(`${where}: missing field 'options'`);
        const video = findVideo([join(dir, 'data', `${id}.mp4`), join(dir, 'data', `${id}.MP4`)], 'videomme');
        let subs: string | undefined;
        if (subtitles) {
          const srt = await readFile(join(dir, 'subtitle', `${id}.srt`), 'utf8').catch(() => '');
          subs = srt ? subtitlesAt(parseSrt(srt), await durationOf(video)) : '';
        }
        const question = field(row, 'question', where);
        items.push({
          id: field(row, 'question_id', where),
          video,
          question,
          options: options.map((o: string) => String(o).replace(/^[A-D]\.\s*/, '')),
          answer: field(row, 'answer', where),
          groups: {
            duration: field(row, 'duration', where),
            domain: field(row, 'domain', where),
            sub_category: field(row, 'sub_category', where),
            task_type: field(row, 'task_type', where),
          },
          prompt: videommePrompt(question, options.map(String), subs),
        });
      }
      return items;
    },
    parse: (response) => extractChoice(response),
    score: (items, parsed) => accuracyScores(items, parsed),
  };
}
