/**
 * A batch job as a user writes it (one JSON object per line of a jobs file) and its result. A job is one
 * video and one or many questions about it, with the same sampling and generation options as `longshot ask`.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { InputError } from '../errors.js';
import type { FinishReason, GenerationOptions, SamplingOptions, Usage } from '../facade/types.js';

export interface JobSpec extends SamplingOptions, GenerationOptions {
  /** Unique within the queue; the default is a digest of the line, so the same line is the same job. */
  id: string;
  /** A path every worker can read (relative paths are taken from the jobs file's folder) or a URL. */
  video: string;
  questions: string[];
  /** The checkpoint the job expects; a worker running another one refuses it (it is retried elsewhere). */
  model?: string;
}

export interface AnswerRecord {
  question: string;
  answer: string;
  finishReason: FinishReason;
  usage: Usage;
}

/** One line of `batch results`: answers, or the error that ended the job. */
export interface JobResult {
  id: string;
  video: string;
  answers?: AnswerRecord[];
  error?: { kind: string; message: string };
  /** The worker that wrote it. */
  worker: string;
  /** Attempts it took (1 unless a worker died or failed on it). */
  attempts: number;
}

const SAMPLING = ['frames', 'fps', 'sampling', 'maxEdge', 'minEdge'] as const;
const GENERATION = ['maxNewTokens', 'temperature', 'topK', 'topP', 'repetitionPenalty', 'seed'] as const;
const KNOWN = new Set<string>(['id', 'video', 'question', 'questions', 'model', ...SAMPLING, ...GENERATION]);

/** Reads a jobs file (JSONL); every problem names its line. Ids are unique in the file. */
export function readJobs(path: string): JobSpec[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new InputError(`cannot read the jobs file ${path}`);
  }
  const jobs: JobSpec[] = [];
  const seen = new Map<string, number>();
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    const where = `${path}:${i + 1}`;
    const job = parseJob(line, where, dirname(path));
    const first = seen.get(job.id);
    if (first !== undefined)
      throw new InputError(`${where}: job id '${job.id}' is already used on line ${first}`);
    seen.set(job.id, i + 1);
    jobs.push(job);
  });
  if (!jobs.length) throw new InputError(`${path} holds no jobs (one JSON object per line)`);
  return jobs;
}

function parseJob(line: string, where: string, base: string): JobSpec {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(line);
  } catch {
    throw new InputError(`${where}: not a JSON object`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new InputError(`${where}: not a JSON object`);
  const unknown = Object.keys(raw).filter((k) => !KNOWN.has(k));
  if (unknown.length) throw new InputError(`${where}: unknown field(s) ${unknown.join(', ')}`);
  if (typeof raw.video !== 'string' || !raw.video)
    throw new InputError(`${where}: "video" must be a path or URL`);
  const questions = raw.questions ?? (raw.question === undefined ? undefined : [raw.question]);
  if (
    !Array.isArray(questions) ||
    !questions.length ||
    !questions.every((q) => typeof q === 'string' && q.trim())
  )
    throw new InputError(`${where}: give "question" (a string) or "questions" (a list of non-empty strings)`);
  if (raw.id !== undefined && (typeof raw.id !== 'string' || !/^[\w.-]{1,200}$/.test(raw.id)))
    throw new InputError(`${where}: "id" must be a string of letters, digits, '_', '.' or '-'`);
  if (raw.model !== undefined && typeof raw.model !== 'string')
    throw new InputError(`${where}: "model" must be a string`);
  for (const k of [...SAMPLING, ...GENERATION]) {
    const v = raw[k];
    if (v === undefined) continue;
    if (
      k === 'sampling'
        ? !['middle', 'uniform', 'fps', 'first-seconds'].includes(v as string)
        : typeof v !== 'number'
    )
      throw new InputError(`${where}: "${k}" has a bad value ${JSON.stringify(v)}`);
  }
  const video =
    /^[a-z][a-z0-9+.-]*:/i.test(raw.video) || isAbsolute(raw.video) ? raw.video : resolve(base, raw.video);
  const { id, question: _, ...rest } = raw;
  const spec = { ...rest, video, questions } as Omit<JobSpec, 'id'>;
  return { id: (id as string | undefined) ?? `job-${digest(JSON.stringify(spec))}`, ...spec };
}

/** The options of a job that decide its video's encoding: jobs with the same key share one encoding. */
export function videoKey(job: JobSpec): string {
  return digest(JSON.stringify([job.video, ...SAMPLING.map((k) => job[k] ?? null)]));
}

export function samplingOfJob(job: JobSpec): SamplingOptions {
  return pick(job, SAMPLING);
}

export function generationOfJob(job: JobSpec): GenerationOptions {
  return pick(job, GENERATION);
}

function pick<K extends keyof JobSpec>(job: JobSpec, keys: readonly K[]): Pick<JobSpec, K> {
  return Object.fromEntries(keys.filter((k) => job[k] !== undefined).map((k) => [k, job[k]])) as Pick<
    JobSpec,
    K
  >;
}

const digest = (s: string): string => createHash('sha256').update(s).digest('hex').slice(0, 20);
