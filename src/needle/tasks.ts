import { Random } from '../util/random.js';
import { COLOR_NAMES, DIGITS, describe, type Item, SHAPES, sameItem, WORDS } from './items.js';
import { randomScene, type Scene } from './scene.js';

/**
 * One synthetic long-video question in the spirit of VideoNIAH: a haystack scene with needles inserted at
 * random depths, a question of retrieval, counting or ordering, its short answer and 4 options.
 */
export type Task = 'color' | 'word' | 'digit' | 'count' | 'order';
export const TASKS: readonly Task[] = ['color', 'word', 'digit', 'count', 'order'];

export interface Needle {
  item: Item;
  /** First and last frame (inclusive) showing it. */
  startFrame: number;
  endFrame: number;
  startSec: number;
  endSec: number;
  /** Where in the card the needle sits (pixels) and its side. */
  x: number;
  y: number;
  size: number;
}

export interface NeedleSample {
  id: string;
  task: Task;
  frames: number;
  fps: number;
  width: number;
  height: number;
  scene: Scene;
  needles: Needle[];
  question: string;
  options: string[];
  answer: string;
  answerLetter: 'A' | 'B' | 'C' | 'D';
}

export interface SampleOptions {
  frames: number;
  fps: number;
  width: number;
  height: number;
  /** Frames each needle stays on screen. */
  needleFrames: number;
  task?: Task;
}

const LETTERS = ['A', 'B', 'C', 'D'] as const;

function randomItem(r: Random, kind: Item['kind'] = r.pick(['shape', 'digit', 'word'] as const)): Item {
  if (kind === 'shape') return { kind, shape: r.pick(SHAPES), color: r.pick(COLOR_NAMES) };
  if (kind === 'digit') return { kind, text: r.pick(DIGITS) };
  return { kind, text: r.pick(WORDS) };
}

/** 3 distinct distractor strings from `pool`, none equal to `answer`. */
function optionsFor(
  r: Random,
  answer: string,
  pool: readonly string[],
): { options: string[]; letter: (typeof LETTERS)[number] } {
  const options = r.shuffle([
    answer,
    ...r.sample(
      pool.filter((p) => p !== answer),
      3,
    ),
  ]);
  return { options, letter: LETTERS[options.indexOf(answer)] };
}

/** The most times a count question's item appears. */
const MAX_COUNT = 4;

/** The needles a video of these tasks must have room for: a count question's items, else one. */
export const neededNeedles = (tasks: readonly Task[]): number => (tasks.includes('count') ? MAX_COUNT : 1);

/** Whether `frames` frames hold `n` needles of `len` frames, each followed by a gap frame. */
export const fitsNeedles = (frames: number, n: number, len: number): boolean =>
  Math.floor(frames / (len + 1)) >= n;

/** n non-overlapping start frames (with a gap of ≥ 1 frame) for needles of `len` frames, in random order of depth. */
function placements(r: Random, n: number, len: number, frames: number): number[] {
  const slots = Math.floor(frames / (len + 1));
  if (!fitsNeedles(frames, n, len))
    throw new RangeError(`a ${frames}-frame video cannot hold ${n} needles of ${len} frames`);
  const chosen = r.sample(
    Array.from({ length: slots }, (_, i) => i),
    n,
  );
  const slack = frames - slots * (len + 1);
  return chosen.map((s) => s * (len + 1) + Math.min(slack, r.int(0, slack)));
}

export function makeSample(seed: number, id: string, o: SampleOptions): NeedleSample {
  const r = new Random(seed);
  const task = o.task ?? r.pick(TASKS);
  const scene = randomScene(r.fork(), o.width, o.height);
  let items: Item[];
  let question: string;
  let answer: string;
  let pool: readonly string[];
  switch (task) {
    case 'color': {
      const item = randomItem(r, 'shape') as Extract<Item, { kind: 'shape' }>;
      items = [item];
      question = `What colour was the ${item.shape}?`;
      answer = item.color;
      pool = COLOR_NAMES;
      break;
    }
    case 'word':
    case 'digit': {
      const item = randomItem(r, task);
      items = [item];
      question = task === 'word' ? 'Which word appeared?' : 'Which number appeared?';
      answer = (item as { text: string }).text;
      pool = task === 'word' ? WORDS : DIGITS;
      break;
    }
    case 'count': {
      const target = randomItem(r, 'shape');
      const k = r.int(1, MAX_COUNT);
      const distractors: Item[] = [];
      // A short video holds fewer needles: drop distractors rather than fail to place them.
      const room = Math.floor(o.frames / (o.needleFrames + 1)) - k;
      for (let i = Math.min(r.int(0, 2), room); i > 0; i--) {
        let d = randomItem(r, 'shape');
        while (sameItem(d, target)) d = randomItem(r, 'shape');
        distractors.push(d);
      }
      items = [...Array.from({ length: k }, () => target), ...distractors];
      question = `How many times did a ${describe(target)} appear?`;
      answer = String(k);
      pool = ['1', '2', '3', '4', '5'];
      break;
    }
    case 'order': {
      const a = randomItem(r);
      let b = randomItem(r);
      while (sameItem(a, b)) b = randomItem(r);
      items = [a, b];
      question = `Which appeared first, the ${describe(a)} or the ${describe(b)}?`;
      answer = '';
      pool = [];
      break;
    }
  }
  const starts = placements(r, items.length, o.needleFrames, o.frames);
  const size = Math.round(Math.min(o.width, o.height) * r.uniform(0.62, 0.75));
  const needles: Needle[] = items.map((item, i) => ({
    item,
    startFrame: starts[i],
    endFrame: starts[i] + o.needleFrames - 1,
    startSec: starts[i] / o.fps,
    endSec: (starts[i] + o.needleFrames) / o.fps,
    x: r.int(0, o.width - size),
    y: r.int(0, o.height - size),
    size,
  }));
  if (task === 'order') {
    const first = needles[0].startFrame < needles[1].startFrame ? needles[0] : needles[1];
    answer = describe(first.item);
    const others = new Set<string>();
    while (others.size < 2) {
      const d = describe(randomItem(r));
      if (d !== describe(needles[0].item) && d !== describe(needles[1].item)) others.add(d);
    }
    pool = [describe(needles[0].item), describe(needles[1].item), ...others];
  }
  needles.sort((p, q) => p.startFrame - q.startFrame);
  const { options, letter } = optionsFor(r, answer, pool);
  return {
    id,
    task,
    frames: o.frames,
    fps: o.fps,
    width: o.width,
    height: o.height,
    scene,
    needles,
    question,
    options,
    answer,
    answerLetter: letter,
  };
}

/** The lmms-eval style multiple-choice prompt for a sample. */
export function mcqPrompt(s: NeedleSample): string {
  const opts = s.options.map((o, i) => `${LETTERS[i]}. ${o}`).join('\n');
  return `${s.question}\n${opts}\nAnswer with the option's letter from the given choices directly.`;
}
