/**
 * The second version of the needle training data streamed (a recipe's needle source with `"variety": "v2"`):
 * src/needle/variety.ts's mix — varied wordings, "not shown"/0 questions, varied and test-pattern footage,
 * frame sizes resized to the model's, needle durations, frame rates — as tools/needle/export_training_data.ts
 * --data v2 draws it, tokenized with tokenizer version 2. Each video is a pure function of one seed, so the
 * render pool's threads (render-pool.ts) give the same examples as the main thread.
 */
import type { Tokenizer } from '../io/tokenizer.js';
import { makeSample, type NeedleSample, NOT_SHOWN } from '../needle/tasks.js';
import type { TokenizerVersion } from '../needle/tokenizer.js';
import { needleAsking, needleFrames, needleTokenizer } from '../needle/training.js';
import { PLAIN_VARIETY, TRAINING_VARIETY, type Variety, varietyOptions } from '../needle/variety.js';
import { Random } from '../util/random.js';
import type { Example } from './data.js';
import type { DataSpec } from './recipe.js';

export type NeedleSpec = Extract<DataSpec, { kind: 'needle' }>;

/** Frame rates a v2 video is stamped with (the exporter's). */
const RATES = [2, 5, 10, 25, 30];

/** What a v2 example was drawn as, for tallies of the mix (test/train/needle-v2.test.ts). */
export interface NeedleMeta {
  task: string;
  background: string;
  unanswerable: boolean;
  width: number;
  height: number;
  needleFrames: number;
  phrasing: string;
}

/** A training example as a render worker hands it over: always with how it was drawn. */
export type RenderedExample = Example & { meta: NeedleMeta };

const tokenizers = new Map<TokenizerVersion, Tokenizer>();
const tokenizerOf = (v: TokenizerVersion): Tokenizer => {
  const t = tokenizers.get(v) ?? needleTokenizer(v);
  tokenizers.set(v, t);
  return t;
};

export const varietyOf = (spec: NeedleSpec): Variety => ({
  ...(spec.geometry === 'plain' ? PLAIN_VARIETY : TRAINING_VARIETY),
  phrasing: spec.phrasing,
  unanswerable: spec.unanswerable,
  scenes: spec.scenes,
});

/** What a v2 video of `frames` frames drawn from `seed` is, before rendering: its sample and how it was drawn. */
export function varietyPlan(spec: NeedleSpec, seed: number, frames: number, id: string) {
  const r = new Random(seed);
  const task = r.pickWeighted(spec.tasks, spec.taskWeights);
  const options = varietyOptions(
    r,
    varietyOf(spec),
    frames,
    task,
    r.pick(spec.geometry === 'plain' ? [2] : RATES),
  );
  const sampleSeed = r.int(0, 2 ** 31);
  const letterFirst = r.next() < 0.5;
  const s: NeedleSample = makeSample(sampleSeed, id, options);
  const meta: NeedleMeta = {
    task: s.task,
    background: options.backgrounds ? s.scene.background : 'generator',
    unanswerable: s.answer === NOT_SHOWN || (s.task === 'count' && s.answer === '0'),
    width: s.width,
    height: s.height,
    needleFrames: options.needleFrames,
    phrasing: options.phrasing ?? 'generator',
  };
  return { s, options, sampleSeed, letterFirst, meta };
}

/**
 * One v2 video of `frames` frames drawn from `seed`, rendered at spec.size, asked `askings` times: each asking
 * worded anew (as the exporter's variants), the first short or letter at random, then alternating.
 */
export function varietyExamples(
  spec: NeedleSpec,
  seed: number,
  frames: number,
  askings: number,
  id: string,
): RenderedExample[] {
  const { s, options, sampleSeed, letterFirst, meta } = varietyPlan(spec, seed, frames, id);
  const pixels = needleFrames(s, spec.size);
  const tok = tokenizerOf(spec.tokenizer);
  return Array.from({ length: askings }, (_, j) => {
    const q = j ? makeSample(sampleSeed, id, { ...options, phrasingSeed: sampleSeed + 7919 * j }) : s;
    const letter = letterFirst !== (j % 2 === 1);
    const { prompt, answer } = needleAsking(tok, q, letter, spec.tokenizer);
    return {
      frames: pixels,
      count: s.frames,
      width: spec.size,
      height: spec.size,
      prompt,
      answer,
      group: `${s.task}/${letter ? 'mcq' : 'short'}`,
      meta,
    };
  });
}
