/**
 * The options several commands share (model, device, frame sampling, generation, output), each parsed and
 * checked here so a bad value is a usage error (exit 2) that names the option.
 */
import { type Command, InvalidArgumentError, Option } from 'commander';
import { UsageError } from '../errors.js';
import { DEFAULT_MODEL_ID } from '../facade/default-model.js';
import type { GenerationOptions, SamplingOptions } from '../facade/types.js';
import { shippedModels } from '../hub/shipped.js';
import type { Clip, LossPolicy } from '../media/index.js';
import { parseReduction, tokenReductions } from '../models/reduction.js';
import type { DeviceName } from '../runtime/backend.js';

function number(name: string, check: (v: number) => boolean, what: string) {
  return (raw: string): number => {
    const v = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(v) || !check(v))
      throw new InvalidArgumentError(`${name} must be ${what}, got '${raw}'`);
    return v;
  };
}

export const positiveInt = (name: string) =>
  number(name, (v) => Number.isInteger(v) && v >= 1, 'a positive integer');
export const nonNegativeInt = (name: string) =>
  number(name, (v) => Number.isSafeInteger(v) && v >= 0, 'an integer ≥ 0');
/** Frames go in pairs (one temporal patch), so a video needs at least 2. */
const frameCount = (name: string) =>
  number(name, (v) => Number.isInteger(v) && v >= 2, 'an integer ≥ 2 (frames go in pairs)');
const nonNegative = (name: string) => number(name, (v) => v >= 0, 'a number ≥ 0');
export const positive = (name: string) => number(name, (v) => v > 0, 'a number > 0');
const unitInterval = (name: string) => number(name, (v) => v > 0 && v <= 1, 'a number in (0, 1]');

export interface ModelOptions {
  model?: string;
  revision?: string;
  device: DeviceName | 'auto';
}

/** --model's help: the shipped models are listed as the package holds them. */
export const MODEL_HELP = `checkpoint directory, shipped model (${shippedModels().join(', ')}) or Hugging Face id (default: the embedded ${DEFAULT_MODEL_ID})`;

export function addModelOptions(cmd: Command): Command {
  return cmd
    .option('-m, --model <dir|name|org/name>', MODEL_HELP)
    .option('--revision <rev>', 'hub branch, tag or commit (with a hub id)', 'main')
    .addOption(
      new Option('--device <device>', 'where to run; auto: cuda where an NVIDIA driver is present, else cpu')
        .choices(['auto', 'cpu', 'cuda'])
        .default('auto'),
    );
}

export function addSamplingOptions(cmd: Command): Command {
  return cmd
    .option(
      '--frames <n>',
      'frames to sample (with --sampling fps: at most); default: the model’s own (the embedded model: 1024; ' +
        'Vamba: 512, 1024 from 30 min; Qwen2-VL: 2 per second up to 768)',
      frameCount('--frames'),
    )
    .option('--fps <x>', 'frames per second to sample (implies --sampling fps)', positive('--fps'))
    .addOption(
      new Option(
        '--sampling <policy>',
        'which frames: middle of n equal spans, uniform, at a rate, or at a rate from the start (first-seconds)',
      ).choices(['middle', 'uniform', 'fps', 'first-seconds']),
    )
    .option('--max-edge <px>', 'longest frame side before the model’s resize', positiveInt('--max-edge'))
    .option('--min-edge <px>', 'shortest frame side before the model’s resize', positiveInt('--min-edge'));
}

/** `--reduce METHOD[:KEEP]`: a token reduction for the video (models/reduction.ts). */
export function addReduceOption(cmd: Command, what = 'fewer video tokens for the LLM'): Command {
  const choices = tokenReductions()
    .map((r) => r.name)
    .join(', ');
  return cmd.option(
    '--reduce <method[:keep]>',
    `${what}: ${choices}; KEEP is the fraction kept (default 0.5), e.g. uniform:0.25`,
    (raw: string) => {
      try {
        return parseReduction(raw);
      } catch (e) {
        throw new InvalidArgumentError((e as Error).message);
      }
    },
  );
}

/** `--clip START-END` (seconds): ask about one stretch of the video only. */
export function addClipOption(cmd: Command): Command {
  return cmd.option(
    '--clip <start-end>',
    'sample only this stretch of the video, in seconds (e.g. 60-90); the sampling rules apply to the clip',
    clipArg,
  );
}

function clipArg(text: string): Clip {
  const m = /^\s*(\d+(?:\.\d+)?)\s*-\s*(\d+(?:\.\d+)?)\s*$/.exec(text);
  const [startSec, endSec] = m ? [Number(m[1]), Number(m[2])] : [Number.NaN, Number.NaN];
  if (!(endSec > startSec))
    throw new InvalidArgumentError(
      `--clip must be START-END in seconds with START < END (e.g. 60-90), got '${text}'`,
    );
  return { startSec, endSec };
}

/** How many frames of a video may be lost to damage before it is refused (media's loss policy). */
export function addLossOptions(cmd: Command): Command {
  return cmd.option('--strict', 'refuse a video if any sampled frame cannot be decoded').option(
    '--max-lost <fraction>',
    'refuse a video when more than this fraction of its sampled frames cannot be decoded (default 0.25)',
    number('--max-lost', (v) => v >= 0 && v <= 1, 'a fraction from 0 to 1'),
  );
}

export function lossPolicyOf(o: Opts): LossPolicy {
  return dropUndefined({
    strict: o.strict as boolean | undefined,
    maxLostFraction: o.maxLost as number | undefined,
  });
}

export function addGenerationOptions(cmd: Command): Command {
  return cmd
    .option('--max-new-tokens <n>', 'longest answer in tokens', positiveInt('--max-new-tokens'), 512)
    .option('--temperature <t>', 'sampling temperature; 0 = greedy', nonNegative('--temperature'), 0)
    .option('--top-k <k>', 'sample among the k likeliest tokens', positiveInt('--top-k'))
    .option('--top-p <p>', 'sample within probability mass p', unitInterval('--top-p'))
    .option(
      '--repetition-penalty <x>',
      'penalise repeated tokens (1 = off)',
      positive('--repetition-penalty'),
    )
    .option('--seed <n>', 'random seed for sampling', number('--seed', Number.isInteger, 'an integer'));
}

export function addOutputOptions(cmd: Command, stream = true): Command {
  if (stream) cmd.option('--stream', 'print the answer as it is generated');
  return cmd.option('--json', 'print one JSON object (no progress bars)');
}

type Opts = Record<string, unknown>;

/** The sampling options given; `--fps` alone means `--sampling fps`, and contradicts any other policy. */
export function samplingOf(o: Opts): SamplingOptions {
  const s = pick(o, ['frames', 'fps', 'sampling', 'maxEdge', 'minEdge']) as SamplingOptions;
  if (s.fps === undefined) return s;
  if (s.sampling !== undefined && s.sampling !== 'fps')
    throw new UsageError(
      `--fps samples at a rate, --sampling ${s.sampling} a fixed number of frames: drop one of them`,
      'fps',
    );
  return { ...s, sampling: 'fps' };
}

export function generationOf(o: Opts): GenerationOptions {
  return pick(o, [
    'maxNewTokens',
    'temperature',
    'topK',
    'topP',
    'repetitionPenalty',
    'seed',
    'reasoningBudget',
  ]) as GenerationOptions;
}

function dropUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

function pick(o: Opts, keys: string[]): Opts {
  return Object.fromEntries(keys.filter((k) => o[k] !== undefined).map((k) => [k, o[k]]));
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
