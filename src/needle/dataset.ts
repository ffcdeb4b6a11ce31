import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import { Random } from '../util/random.js';
import { Canvas } from './canvas.js';
import { type Haystack, lavfiFrames } from './lavfi.js';
import type { Phrasing } from './phrasings.js';
import { drawNeedles, frames } from './render.js';
import type { Background } from './scene.js';
import { makeSample, type NeedleSample, type Task } from './tasks.js';
import type { Size } from './variety.js';

export interface DatasetOptions {
  out: string;
  count: number;
  seed: number;
  /** Video lengths in frames; each sample draws one. */
  lengths: readonly number[];
  fps: number;
  width: number;
  height: number;
  needleFrames: number;
  tasks?: readonly Task[];
  /** How questions are worded (default: the generator's sentences). */
  phrasing?: Phrasing;
  /** When set, answers may be "not shown" or 0, and this fraction of questions asks about something absent. */
  notShown?: number;
  /** Varied scenes over these backgrounds instead of the generator's. */
  backgrounds?: readonly Background[];
  /** ffmpeg test sources to draw the needles over instead of a scene; each video draws one. */
  haystacks?: readonly Haystack[];
  /** Frame sizes and rates each video draws one of (default: width×height at fps). */
  sizes?: readonly Size[];
  rates?: readonly number[];
  /** Write the MP4s (default); false: the records alone, for evaluation on frames drawn again from them. */
  video?: boolean;
  ffmpegPath: string;
  /** x264 constant rate factor: low keeps the needles' colours and strokes crisp. */
  crf?: number;
  onProgress?: (done: number, total: number) => void;
}

/** Encodes a sample's frames to H.264 MP4 through ffmpeg's stdin. */
export function writeVideo(s: NeedleSample, path: string, ffmpegPath: string, crf = 12): Promise<void> {
  return encodeRgb(frames(s), s, path, ffmpegPath, crf);
}

/** Encodes RGB24 frames of one size to H.264 MP4 through ffmpeg's stdin, with backpressure. */
export async function encodeRgb(
  rgb: Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
  o: { width: number; height: number; fps: number },
  path: string,
  ffmpegPath: string,
  crf = 12,
): Promise<void> {
  const args = ['-hide_banner', '-loglevel', 'error', '-y', '-f', 'rawvideo', '-pix_fmt', 'rgb24'];
  args.push('-s', `${o.width}x${o.height}`, '-r', String(o.fps), '-i', 'pipe:0');
  args.push(
    '-c:v',
    'libx264',
    '-preset',
    'veryfast',
    '-crf',
    String(crf),
    '-pix_fmt',
    'yuv420p',
    '-movflags',
    '+faststart',
    path,
  );
  const ff = spawn(ffmpegPath, args, { stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  ff.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = once(ff, 'close');
  try {
    for await (const f of rgb) if (!ff.stdin.write(f)) await once(ff.stdin, 'drain');
    ff.stdin.end();
  } catch (e) {
    ff.kill('SIGKILL');
    throw e;
  }
  const [code] = (await exited) as [number | null];
  if (code !== 0) throw new InputError(`ffmpeg could not write ${path} (exit ${code}): ${stderr.trim()}`);
}

/** The JSONL record of a sample (the scene is kept so the video can be re-rendered exactly; a `haystack` names the ffmpeg source drawn instead). */
export function record(s: NeedleSample, video: string, haystack?: Haystack) {
  return { ...s, ...(haystack && { haystack }), video };
}

/** A sample's frames over an ffmpeg test source. */
async function* overHaystack(s: NeedleSample, h: Haystack, ffmpegPath: string): AsyncGenerator<Uint8Array> {
  let t = 0;
  for await (const f of lavfiFrames(ffmpegPath, h, s))
    yield drawNeedles(new Canvas(s.width, s.height, f), s, t++).data;
}

/** Writes `count` samples as MP4 + one questions.jsonl, deterministic from the seed. */
export async function generateDataset(o: DatasetOptions): Promise<string> {
  mkdirSync(o.out, { recursive: true });
  const r = new Random(o.seed);
  // The newer options draw from their own stream, so the generator's datasets stay as they were.
  const v = new Random(o.seed ^ 0x68e31da4);
  const jsonl = join(o.out, 'questions.jsonl');
  const lines = createWriteStream(jsonl);
  for (let i = 0; i < o.count; i++) {
    const id = `needle-${String(i).padStart(5, '0')}`;
    const seed = r.int(0, 2 ** 31);
    const frameCount = r.pick(o.lengths);
    const task = o.tasks?.length ? r.pick(o.tasks) : undefined;
    const size = o.sizes?.length ? v.pick(o.sizes) : o;
    const open = o.notShown !== undefined;
    const s = makeSample(seed, id, {
      frames: frameCount,
      fps: o.rates?.length ? v.pick(o.rates) : o.fps,
      width: size.width,
      height: size.height,
      needleFrames: o.needleFrames,
      task,
      phrasing: o.phrasing,
      openAnswers: open,
      // An order question has no absent version.
      unanswerable: open && v.next() < (o.notShown ?? 0) && task !== undefined && task !== 'order',
      backgrounds: o.backgrounds,
    });
    const video = `${id}.mp4`;
    const haystack = o.haystacks?.length ? v.pick(o.haystacks) : undefined;
    const path = join(o.out, video);
    if (o.video === false) {
      if (haystack) throw new InputError('a haystack video exists only as its MP4: it cannot be left out');
    } else if (haystack)
      await encodeRgb(overHaystack(s, haystack, o.ffmpegPath), s, path, o.ffmpegPath, o.crf);
    else await writeVideo(s, path, o.ffmpegPath, o.crf);
    if (!lines.write(`${JSON.stringify(record(s, video, haystack))}\n`)) await once(lines, 'drain');
    o.onProgress?.(i + 1, o.count);
  }
  lines.end();
  await once(lines, 'finish');
  return jsonl;
}
