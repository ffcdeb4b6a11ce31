import { Random } from '../util/random.js';
import { COLOR_NAMES, DIGITS, describe, type Item, SHAPES, sameItem, WORDS } from './items.js';
import { type Phrasing, phrase, type Slots } from './phrasings.js';
import { type Background, randomScene, randomVariedScene, type Scene } from './scene.js';

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
  /** How the question is worded (default 'generator': one fixed sentence per task). */
  phrasing?: Phrasing;
  /** Seeds the wording's draws (default: the sample's seed); another value words the same video anew. */
  phrasingSeed?: number;
  /** Answer pools holding "not shown" and 0 (as options and answers), so a question may ask about something absent. */
  openAnswers?: boolean;
  /** Ask about something the video never shows: the answer is "not shown", or 0 for a count. Needs openAnswers; not for 'order'. */
  unanswerable?: boolean;
  /** Varied scenes over these backgrounds (randomVariedScene) rather than the generator's muted ones. */
  backgrounds?: readonly Background[];
}

/** The honest answer to a colour, word or number asked about when none was shown. */
export const NOT_SHOWN = 'not shown';

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
const COUNTS = ['1', '2', '3', '4', '5'];
const OPEN_COUNTS = ['0', ...COUNTS];

/** An item that is not `like`: another kind, or for a shape another shape (any colour). */
function otherItem(r: Random, avoid: (i: Item) => boolean): Item {
  let i = randomItem(r);
  while (avoid(i)) i = randomItem(r);
  return i;
}

/** The needles a video of these tasks must have room for: a count question's items, an order question's two, else one. */
export const neededNeedles = (tasks: readonly Task[]): number =>
  tasks.includes('count') ? MAX_COUNT : tasks.includes('order') ? 2 : 1;

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
  if (o.unanswerable && (!o.openAnswers || task === 'order'))
    throw new RangeError(`an unanswerable ${task} question needs openAnswers and a task other than 'order'`);
  const absent = o.unanswerable === true;
  const scene = o.backgrounds
    ? randomVariedScene(r.fork(), o.width, o.height, o.backgrounds)
    : randomScene(r.fork(), o.width, o.height);
  const open = (pool: readonly string[]) => (o.openAnswers ? [...pool, NOT_SHOWN] : pool);
  let items: Item[];
  let question: string;
  let answer: string;
  let pool: readonly string[];
  let slots: Slots = {};
  switch (task) {
    case 'color': {
      const item = randomItem(r, 'shape') as Extract<Item, { kind: 'shape' }>;
      // Absent: the video shows anything but a shape of that kind.
      items = [absent ? otherItem(r, (i) => i.kind === 'shape' && i.shape === item.shape) : item];
      question = `What colour was the ${item.shape}?`;
      slots = { shape: item.shape };
      answer = absent ? NOT_SHOWN : item.color;
      pool = open(COLOR_NAMES);
      break;
    }
    case 'word':
    case 'digit': {
      const item = randomItem(r, task);
      items = [absent ? otherItem(r, (i) => i.kind === task) : item];
      question = task === 'word' ? 'Which word appeared?' : 'Which number appeared?';
      answer = absent ? NOT_SHOWN : (item as { text: string }).text;
      pool = open(task === 'word' ? WORDS : DIGITS);
      break;
    }
    case 'count': {
      const target = randomItem(r, 'shape');
      const k = absent ? 0 : r.int(1, MAX_COUNT);
      const distractors: Item[] = [];
      // A short video holds fewer needles: drop distractors rather than fail to place them.
      const room = Math.floor(o.frames / (o.needleFrames + 1)) - k;
      // Absent: only other shapes, at least one.
      for (let i = Math.min(absent ? r.int(1, 3) : r.int(0, 2), room); i > 0; i--) {
        let d = randomItem(r, 'shape');
        while (sameItem(d, target)) d = randomItem(r, 'shape');
        distractors.push(d);
      }
      items = [...Array.from({ length: k }, () => target), ...distractors];
      question = `How many times did a ${describe(target)} appear?`;
      slots = { item: describe(target), items: `${describe(target)}s` };
      answer = String(k);
      pool = o.openAnswers ? OPEN_COUNTS : COUNTS;
      break;
    }
    case 'order': {
      const a = randomItem(r);
      let b = randomItem(r);
      while (sameItem(a, b)) b = randomItem(r);
      items = [a, b];
      question = `Which appeared first, the ${describe(a)} or the ${describe(b)}?`;
      slots = { a: describe(a), b: describe(b) };
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
  // The wording draws from its own stream: the generator's samples stay as they were.
  if (o.phrasing && o.phrasing !== 'generator')
    question = phrase(new Random((o.phrasingSeed ?? seed) ^ 0x2545f491), o.phrasing, task, slots, question);
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
