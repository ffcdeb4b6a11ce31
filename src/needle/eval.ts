/**
 * Needle evaluation through the TypeScript stack: each video of a generated set (questions.jsonl + MP4s) is
 * decoded (src/media, every frame, at the size the model's sampling policy asks for, as `longshot ask` would)
 * and encoded by the model family that reads the checkpoint (models/registry.ts); each video is asked twice,
 * for the short answer (exact match) and for the option letter (lmms-eval's letter extraction), greedily.
 */
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { InputError, UsageError } from '../errors.js';
import { exactMatch, extractChoice } from '../eval/answers.js';
import { Answer } from '../facade/answer.js';
import { inspectModel } from '../facade/inspect.js';
import { samplingFor } from '../facade/video-defaults.js';
import type { Frame } from '../media/index.js';
import { decodeFrames } from '../media/index.js';
import type { Size } from '../media/resize.js';
import type { DeviceName } from '../runtime/backend.js';
import { getBackend } from '../runtime/device.js';
import { renderFrame } from './render.js';
import { resizeRgb } from './resample.js';
import { mcqPrompt, type NeedleSample, NOT_SHOWN, TASKS } from './tasks.js';

export type AnswerForm = 'short' | 'mcq';

export interface NeedleQuestion extends NeedleSample {
  /** The MP4, relative to questions.jsonl. */
  video: string;
  /** The ffmpeg test source the needles were drawn over (then the scene was not drawn). */
  haystack?: string;
}

export interface EvalItem {
  id: string;
  task: string;
  frames: number;
  form: AnswerForm;
  /** Whether the question asks about something the video never shows. */
  unanswerable: boolean;
  expected: string;
  output: string;
  correct: boolean;
}

export interface Tally {
  correct: number;
  total: number;
  accuracy: number;
}

export interface LengthRow extends Tally {
  videos: number;
  /** Wall time per video: decoding, vision, both questions. */
  secondsPerVideo: number;
  /** Largest resident set size seen after a video of this length (MiB, whole process). */
  peakRssMiB: number;
  /** Largest peak of live tensors on the model's device during a video of this length (MiB, weights included). */
  peakTensorMiB: number;
  /** Video tokens per video, as the model's usage reports them (mean over the videos of this length). */
  videoTokens: number;
}

export interface EvalReport {
  model: string;
  architecture: string;
  data: string;
  accuracy: number;
  correct: number;
  total: number;
  byTask: Record<string, Tally>;
  byForm: Record<AnswerForm, Tally>;
  /** The questions about something never shown ("not shown", or a count of 0). */
  unanswerable: Tally;
  byLength: Record<string, LengthRow>;
  items: EvalItem[];
}

/** The records of a questions.jsonl file, checked for the fields the evaluation reads. */
export async function readQuestions(path: string): Promise<NeedleQuestion[]> {
  const text = await readFile(path, 'utf8').catch(() => {
    throw new InputError(`cannot read ${path}; pass the directory written by 'longshot needle generate'`);
  });
  return text
    .split('\n')
    .filter((l) => l.trim())
    .map((line, i) => {
      let q: NeedleQuestion;
      try {
        q = JSON.parse(line);
      } catch {
        throw new InputError(`${path}:${i + 1}: not valid JSON`);
      }
      if (
        typeof q.video !== 'string' ||
        typeof q.question !== 'string' ||
        typeof q.answer !== 'string' ||
        !Array.isArray(q.options) ||
        !TASKS.includes(q.task)
      )
        throw new InputError(
          `${path}:${i + 1}: not a needle question (needs video, task, question, answer, options)`,
        );
      return q;
    });
}

/** Every frame of a video, at its own size or at `size` of it. */
export async function readAllFrames(path: string, size?: (source: Size) => Size): Promise<Frame[]> {
  const frames: Frame[] = [];
  for await (const batch of decodeFrames(path, { kind: 'all' }, { size })) frames.push(...batch);
  return frames;
}

/**
 * A record's frames drawn again from its scene and needles (what its MP4 holds, before compression), at their
 * own size or resized to `size` of it: no ffmpeg needed.
 */
export function renderedFrames(q: NeedleQuestion, size?: (source: Size) => Size): Frame[] {
  if (!q.scene || !Array.isArray(q.needles) || !(q.frames > 0) || !(q.width > 0) || !(q.height > 0))
    throw new InputError(
      `${q.id}: the record has no scene to render; write it with 'longshot needle generate'`,
    );
  if (q.haystack)
    throw new InputError(
      `${q.id}: its needles are drawn over ffmpeg's ${q.haystack}, which only the MP4 holds: evaluate without --render`,
    );
  const to = size?.({ width: q.width, height: q.height }) ?? q;
  return Array.from({ length: q.frames }, (_, t) => ({
    index: t,
    timestampSec: t / q.fps,
    width: to.width,
    height: to.height,
    data: resizeRgb(renderFrame(q, t).data, q.width, q.height, to.width, to.height),
  }));
}

/** A loaded model that encodes a video once and answers questions about it. */
interface Answerer extends Disposable {
  architecture: string;
  /** The frame size the model's sampling policy asks for, given a video's. */
  frameSize(source: Size): Size;
  /** Encodes these frames; the result answers questions about them (and releases what it holds when disposed). */
  open(
    frames: readonly Frame[],
  ): Promise<{ ask(question: string): Promise<{ text: string; videoTokens: number }> } & Disposable>;
}

const MAX_NEW_TOKENS = 8;

/** Loads a checkpoint directory with the model family that reads it. */
async function loadAnswerer(dir: string, device: DeviceName = 'cpu'): Promise<Answerer> {
  const { family, checkpoint, videoDefaults } = await inspectModel(dir);
  const policy = family.video;
  if (!policy)
    throw new UsageError(`${dir}: ${family.name} is a text model; the needle task needs a video model`);
  const runner = await checkpoint.load(await getBackend(device), dir);
  const sampling = samplingFor(policy, null, {}, videoDefaults);
  return {
    architecture: family.name,
    frameSize: (source) => policy.frameSize(source, sampling),
    async open(all) {
      const frames = evenFrames(all);
      const video = await runner.encode(oneBatch(frames), {
        kind: 'video',
        timestampsSec: frames.map((f) => f.timestampSec),
        // Every frame, at the policy's size (readAllFrames/renderedFrames resized them).
        sampling: { ...policy.defaults, sampling: 'uniform', frames: frames.length },
      });
      return {
        async ask(question) {
          // Greedy (the checkpoints' generation_config.json says do_sample false).
          const answer = new Answer(
            runner.generate([{ role: 'user', content: question }], video, { maxNewTokens: MAX_NEW_TOKENS }),
          );
          const { text, usage } = await answer.result();
          return { text, videoTokens: usage.videoTokens };
        },
        [Symbol.dispose]: () => video.dispose(),
      };
    },
    [Symbol.dispose]: () => runner.dispose(),
  };
}

async function* oneBatch(frames: Frame[]): AsyncGenerator<Frame[]> {
  yield frames;
}

/** The models take frames in pairs: an odd last frame is dropped, as Vamba's processor does. */
const evenFrames = (frames: readonly Frame[]): Frame[] => {
  if (frames.length < 2) throw new InputError('a video needs at least 2 frames');
  return frames.slice(0, frames.length - (frames.length % 2));
};

const tally = (items: readonly EvalItem[]): Tally => {
  const correct = items.filter((i) => i.correct).length;
  return { correct, total: items.length, accuracy: items.length ? correct / items.length : 0 };
};

function groupBy<K extends string>(items: readonly EvalItem[], key: (i: EvalItem) => K): Record<K, Tally> {
  const groups = new Map<K, EvalItem[]>();
  for (const i of items) groups.set(key(i), [...(groups.get(key(i)) ?? []), i]);
  return Object.fromEntries([...groups].map(([k, v]) => [k, tally(v)])) as Record<K, Tally>;
}

export interface EvalOptions {
  model: string;
  /** A directory holding questions.jsonl, or the file itself. */
  data: string;
  /** Evaluate only the first n videos. */
  limit?: number;
  device?: DeviceName;
  /** 'render': draw each video's frames again from its record instead of decoding the MP4 (`renderedFrames`). */
  frames?: 'decode' | 'render';
  onVideo?: (done: number, total: number, items: readonly EvalItem[]) => void;
}

export async function evaluateNeedle(o: EvalOptions): Promise<EvalReport> {
  const jsonl = o.data.endsWith('.jsonl') ? o.data : join(o.data, 'questions.jsonl');
  const questions = (await readQuestions(jsonl)).slice(0, o.limit ?? Number.POSITIVE_INFINITY);
  if (!questions.length) throw new InputError(`${jsonl} holds no questions`);
  using model = await loadAnswerer(o.model, o.device);
  const backend = await getBackend(o.device ?? 'cpu');
  const items: EvalItem[] = [];
  const perLength = new Map<
    number,
    { videos: number; seconds: number; rss: number; tensors: number; tokens: number }
  >();
  for (const [n, q] of questions.entries()) {
    backend.resetPeak();
    const t0 = performance.now();
    const size = (source: Size) => model.frameSize(source);
    const frames =
      o.frames === 'render'
        ? renderedFrames(q, size)
        : await readAllFrames(join(dirname(jsonl), q.video), size);
    using video = await model.open(frames);
    const { text: short, videoTokens } = await video.ask(q.question);
    const { text: mcq } = await video.ask(mcqPrompt(q));
    const unanswerable = q.answer === NOT_SHOWN || (q.task === 'count' && q.answer === '0');
    const base = { id: q.id, task: q.task, frames: q.frames, unanswerable };
    const done = [
      {
        ...base,
        form: 'short' as const,
        expected: q.answer,
        output: short,
        correct: exactMatch(short, q.answer),
      },
      {
        ...base,
        form: 'mcq' as const,
        expected: q.answerLetter,
        output: mcq,
        correct: extractChoice(mcq) === q.answerLetter,
      },
    ];
    items.push(...done);
    const row = perLength.get(q.frames) ?? { videos: 0, seconds: 0, rss: 0, tensors: 0, tokens: 0 };
    row.videos++;
    row.tokens += videoTokens;
    row.seconds += (performance.now() - t0) / 1000;
    row.rss = Math.max(row.rss, process.memoryUsage().rss / 2 ** 20);
    row.tensors = Math.max(row.tensors, backend.memory().peak / 2 ** 20);
    perLength.set(q.frames, row);
    o.onVideo?.(n + 1, questions.length, done);
  }
  const lengths = groupBy(items, (i) => String(i.frames));
  const all = tally(items);
  return {
    model: o.model,
    architecture: model.architecture,
    data: jsonl,
    ...all,
    byTask: groupBy(items, (i) => i.task),
    byForm: groupBy(items, (i) => i.form),
    unanswerable: tally(items.filter((i) => i.unanswerable)),
    byLength: Object.fromEntries(
      [...perLength].map(([frames, r]) => [
        String(frames),
        {
          ...lengths[String(frames)],
          videos: r.videos,
          secondsPerVideo: r.seconds / r.videos,
          peakRssMiB: Math.round(r.rss),
          peakTensorMiB: Math.round(r.tensors),
          videoTokens: r.tokens / r.videos,
        },
      ]),
    ),
    items,
  };
}

/** A plain-text table of a report. */
export function formatReport(r: EvalReport): string {
  const pct = (t: Tally) => `${(100 * t.accuracy).toFixed(1)}% (${t.correct}/${t.total})`;
  const lines = [`${r.architecture} ${r.model} on ${r.data}: ${pct(r)}`, '', 'by length:'];
  for (const [frames, row] of Object.entries(r.byLength).sort((a, b) => Number(a[0]) - Number(b[0])))
    lines.push(
      `  ${frames.padStart(5)} frames  ${pct(row).padEnd(18)} ${row.secondsPerVideo.toFixed(2)} s/video  ${row.videoTokens} video tokens  peak RSS ${row.peakRssMiB} MiB  tensors ${row.peakTensorMiB} MiB`,
    );
  lines.push('by task:');
  for (const [task, t] of Object.entries(r.byTask)) lines.push(`  ${task.padEnd(6)} ${pct(t)}`);
  lines.push('by answer form:');
  for (const [form, t] of Object.entries(r.byForm)) lines.push(`  ${form.padEnd(6)} ${pct(t)}`);
  if (r.unanswerable.total) lines.push(`not shown / 0: ${pct(r.unanswerable)}`);
  return lines.join('\n');
}

/** A Markdown table of several sets' reports for one model: overall, by answer form, unanswerable. */
export function formatSetTable(reports: readonly EvalReport[]): string {
  const pct = (t: Tally) => (t.total ? `${(100 * t.accuracy).toFixed(1)}% (${t.correct}/${t.total})` : '–');
  const rows = reports.map(
    (r) =>
      `| ${r.data} | ${pct(r)} | ${pct(r.byForm.short ?? tally([]))} | ${pct(r.byForm.mcq ?? tally([]))} | ${pct(r.unanswerable)} |`,
  );
  return [
    `${reports[0]?.architecture ?? ''} ${reports[0]?.model ?? ''}`,
    '',
    '| set | all questions | short answer | letter | not shown / 0 |',
    '|---|---|---|---|---|',
    ...rows,
  ].join('\n');
}
