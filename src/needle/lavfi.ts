/**
 * Haystacks from ffmpeg's own test sources (lavfi): footage that neither the generator nor the training data
 * drew, for the held-out "other footage" set. ffmpeg renders the source as raw RGB; the needles are drawn
 * over it here and the result is encoded like any generated video.
 */
import { spawn } from 'node:child_process';
import { InputError } from '../errors.js';

export const HAYSTACKS = ['testsrc2', 'smptebars', 'mandelbrot', 'noise', 'grey'] as const;
export type Haystack = (typeof HAYSTACKS)[number];

/** The lavfi graph of a haystack at a size and rate. */
function lavfiGraph(h: Haystack, width: number, height: number, fps: number): string {
  const at = `s=${width}x${height}:r=${fps}`;
  switch (h) {
    case 'testsrc2':
    case 'smptebars':
    case 'mandelbrot':
      return `${h}=${at}`;
    case 'noise':
      return `color=c=gray:${at},noise=alls=100:allf=t+u`;
    case 'grey':
      return `color=c=gray:${at}`;
  }
}

/** `frames` RGB24 frames of a haystack, one buffer per frame. */
export async function* lavfiFrames(
  ffmpegPath: string,
  h: Haystack,
  o: { width: number; height: number; fps: number; frames: number },
): AsyncGenerator<Uint8Array> {
  const args = [
    '-hide_banner',
    '-loglevel',
    'error',
    '-f',
    'lavfi',
    '-i',
    lavfiGraph(h, o.width, o.height, o.fps),
  ];
  args.push('-frames:v', String(o.frames), '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1');
  const ff = spawn(ffmpegPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  ff.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => ff.once('close', resolve));
  const size = o.width * o.height * 3;
  let pending = Buffer.alloc(0);
  let n = 0;
  for await (const chunk of ff.stdout as AsyncIterable<Buffer>) {
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= size && n < o.frames) {
      yield new Uint8Array(pending.subarray(0, size));
      pending = pending.subarray(size);
      n++;
    }
  }
  const code = await exited;
  if (code !== 0 || n < o.frames)
    throw new InputError(
      `ffmpeg could not render the ${h} haystack (exit ${code}, ${n}/${o.frames} frames): ${stderr.trim()}`,
    );
}
