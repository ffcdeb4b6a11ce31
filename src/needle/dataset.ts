import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import { Random } from '../util/random.js';
import { frames } from './render.js';
import { makeSample, type NeedleSample, type Task } from './tasks.js';

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

/** The JSONL record of a sample (the scene is kept so the video can be re-rendered exactly). */
export function record(s: NeedleSample, video: string) {
  return { ...s, video };
}

/** Writes `count` samples as MP4 + one questions.jsonl, deterministic from the seed. */
export async function generateDataset(o: DatasetOptions): Promise<string> {
  mkdirSync(o.out, { recursive: true });
  const r = new Random(o.seed);
  const jsonl = join(o.out, 'questions.jsonl');
  const lines = createWriteStream(jsonl);
  for (let i = 0; i < o.count; i++) {
    const id = `needle-${String(i).padStart(5, '0')}`;
    const s = makeSample(r.int(0, 2 ** 31), id, {
      frames: r.pick(o.lengths),
      fps: o.fps,
      width: o.width,
      height: o.height,
      needleFrames: o.needleFrames,
      task: o.tasks?.length ? r.pick(o.tasks) : undefined,
    });
    const video = `${id}.mp4`;
    await writeVideo(s, join(o.out, video), o.ffmpegPath, o.crf);
    if (!lines.write(`${JSON.stringify(record(s, video))}\n`)) await once(lines, 'drain');
    o.onProgress?.(i + 1, o.count);
  }
  lines.end();
  await once(lines, 'finish');
  return jsonl;
}
