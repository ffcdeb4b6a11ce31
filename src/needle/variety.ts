/**
 * The mix of wordings, answerability, footage, frame sizes and needle durations that the second version of
 * the training data draws from (tools/needle/export_training_data.ts --data v2), and the narrower mixes of
 * the held-out sets. One place, so the exporter and `longshot needle generate` draw alike.
 */
import type { Random } from '../util/random.js';
import type { Phrasing } from './phrasings.js';
import { type Background, PATTERN_BACKGROUNDS, VARIED_BACKGROUNDS } from './scene.js';
import { fitsNeedles, neededNeedles, type SampleOptions, type Task } from './tasks.js';

export interface Size {
  width: number;
  height: number;
}

export interface Variety {
  /** 'mix': the training phrasings mostly, the generator's sentence sometimes. */
  phrasing: Phrasing | 'mix';
  /** Fraction of questions (other than 'order') about something the video never shows. */
  unanswerable: number;
  /** The generator's muted scenes, varied ones over these backgrounds, or a mix of both. */
  scenes: 'generator' | 'varied' | 'patterns' | 'mix';
  /** Frame sizes to render at before resizing to the model's (a long video draws from the small ones). */
  sizes: readonly Size[];
  /** Frames a needle stays on screen (only durations that leave room for the task's needles are drawn). */
  needleFrames: readonly number[];
}

const SQUARE: Size = { width: 112, height: 112 };
/** 4:3, 16:9 and square frames, squeezed to the model's square as the media pipeline does. */
const SIZES: readonly Size[] = [
  SQUARE,
  SQUARE,
  { width: 160, height: 120 },
  { width: 176, height: 144 },
  { width: 200, height: 112 },
  { width: 256, height: 144 },
  { width: 224, height: 224 },
  { width: 320, height: 180 },
  { width: 320, height: 240 },
  { width: 640, height: 360 },
];
/** The largest frame (in pixels) a video of this many frames is rendered at (rendering time). */
const maxPixels = (frames: number): number =>
  frames > 128 ? 176 * 144 : frames > 32 ? 320 * 240 : 640 * 360;

export const TRAINING_VARIETY: Variety = {
  phrasing: 'mix',
  unanswerable: 0.2,
  scenes: 'mix',
  sizes: SIZES,
  needleFrames: [1, 2, 2, 3, 4, 6],
};

/** The generator's sentences, scenes and frames, but with "not shown" and 0 among the answers. */
export const PLAIN_VARIETY: Variety = {
  phrasing: 'generator',
  unanswerable: 0,
  scenes: 'generator',
  sizes: [SQUARE],
  needleFrames: [2],
};

const backgroundsOf = (r: Random, scenes: Variety['scenes']): readonly Background[] | undefined => {
  if (scenes === 'patterns') return PATTERN_BACKGROUNDS;
  if (scenes === 'varied' || (scenes === 'mix' && r.next() < 0.8)) return VARIED_BACKGROUNDS;
  return undefined;
};

/** A sample's options drawn from a variety: `frames` and `task` already chosen. */
export function varietyOptions(
  r: Random,
  v: Variety,
  frames: number,
  task: Task,
  fps: number,
): SampleOptions {
  const sizes = v.sizes.filter((s) => s.width * s.height <= maxPixels(frames));
  const { width, height } = r.pick(sizes.length ? sizes : [SQUARE]);
  const durations = v.needleFrames.filter((n) => fitsNeedles(frames, neededNeedles([task]), n));
  return {
    frames,
    fps,
    width,
    height,
    needleFrames: r.pick(durations.length ? durations : [1]),
    task,
    phrasing: v.phrasing === 'mix' ? (r.next() < 0.85 ? 'varied' : 'generator') : v.phrasing,
    openAnswers: true,
    unanswerable: task !== 'order' && r.next() < v.unanswerable,
    backgrounds: backgroundsOf(r, v.scenes),
  };
}
