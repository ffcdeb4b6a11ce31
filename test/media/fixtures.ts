/**
 * Test videos made on the spot with ffmpeg. Every frame carries its own index as a 4×4 grid of black and
 * white blocks (bit b of the index in cell b, row-major), which survives compression and resizing, so a
 * test can read back *which* frame it got without OCR.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Frame } from '../../src/media/decode.js';
import { findTools } from '../../src/media/ffmpeg.js';

export const tools = findTools();
export const GRID = 4;

/** A fresh temporary folder, removed when the process exits. */
export function scratch(): string {
  const dir = mkdtempSync(join(tmpdir(), 'longshot-media-test-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Grey frame (0 or 255 per block) encoding `index`. */
export function pattern(index: number, width: number, height: number): Uint8Array {
  const out = new Uint8Array(width * height);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const cell = Math.floor((y * GRID) / height) * GRID + Math.floor((x * GRID) / width);
      out[y * width + x] = (index >> cell) & 1 ? 255 : 0;
    }
  return out;
}

/** Runs ffmpeg to completion (tests only), feeding `input` on stdin. */
export function ffmpeg(args: string[], input?: Uint8Array[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(tools.ffmpeg, ['-hide_banner', '-loglevel', 'error', '-y', ...args], {
      stdio: [input ? 'pipe' : 'ignore', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr!.on('data', (d) => (err += d));
    child.once('error', reject);
    child.once('close', (code) =>
      code === 0 ? resolve() : reject(new Error(`ffmpeg ${args.join(' ')}: ${err}`)),
    );
    if (input) {
      (async () => {
        for (const frame of input)
          if (!child.stdin!.write(frame)) await new Promise((r) => child.stdin!.once('drain', r));
        child.stdin!.end();
      })().catch(reject);
    }
  });
}

export interface VideoSpec {
  width: number;
  height: number;
  frames: number;
  fps: number;
  /** Encoder and container arguments, e.g. ['-c:v', 'libx264', '-pix_fmt', 'yuv420p']. */
  encode: string[];
  /** Extra output filters, e.g. setpts for variable frame rate. */
  filter?: string;
}

/** Encodes frames 0..frames−1 carrying their index pattern. */
export async function makeVideo(path: string, spec: VideoSpec): Promise<string> {
  const frames = Array.from({ length: spec.frames }, (_, i) => pattern(i, spec.width, spec.height));
  await ffmpeg(
    [
      '-f',
      'rawvideo',
      '-pix_fmt',
      'gray',
      '-s',
      `${spec.width}x${spec.height}`,
      '-r',
      String(spec.fps),
      '-i',
      '-',
      ...(spec.filter ? ['-vf', spec.filter] : []),
      ...spec.encode,
      path,
    ],
    frames,
  );
  return path;
}

export const H264 = ['-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p'];
export const VP9 = ['-c:v', 'libvpx-vp9', '-deadline', 'realtime', '-cpu-used', '8', '-pix_fmt', 'yuv420p'];
export const MJPEG = ['-c:v', 'mjpeg', '-pix_fmt', 'yuvj420p', '-q:v', '3'];

/**
 * Where a point (x, y) of the stored picture (size w×h) ends up after turning it clockwise by `rotation`
 * degrees, in the turned picture's coordinates.
 */
function turn(x: number, y: number, w: number, h: number, rotation: number): [number, number] {
  switch (rotation) {
    case 90:
      return [h - y, x];
    case 180:
      return [w - x, h - y];
    case 270:
      return [y, w - x];
    default:
      return [x, y];
  }
}

/**
 * Reads the index pattern back from a decoded frame of a source of size w×h turned by `rotation`, and
 * the largest distance of any block centre from pure black/white (how faithful the pixels are).
 */
export function readFrame(
  frame: Frame,
  w: number,
  h: number,
  rotation = 0,
): { index: number; error: number } {
  const turned = rotation === 90 || rotation === 270;
  const dw = turned ? h : w;
  const dh = turned ? w : h;
  let index = 0;
  let error = 0;
  for (let cell = 0; cell < GRID * GRID; cell++) {
    const sx = ((cell % GRID) + 0.5) * (w / GRID);
    const sy = (Math.floor(cell / GRID) + 0.5) * (h / GRID);
    const [dx, dy] = turn(sx, sy, w, h, rotation);
    const x = Math.min(frame.width - 1, Math.floor((dx * frame.width) / dw));
    const y = Math.min(frame.height - 1, Math.floor((dy * frame.height) / dh));
    const o = (y * frame.width + x) * 3;
    const grey = (frame.data[o] + frame.data[o + 1] + frame.data[o + 2]) / 3;
    const bit = grey > 127 ? 1 : 0;
    index |= bit << cell;
    for (let c = 0; c < 3; c++) error = Math.max(error, Math.abs(frame.data[o + c] - bit * 255));
  }
  return { index, error };
}

/** Collects every frame of an async stream of batches, with the batch sizes. */
export async function collect(
  stream: AsyncIterable<Frame[]>,
): Promise<{ frames: Frame[]; batches: number[] }> {
  const frames: Frame[] = [];
  const batches: number[] = [];
  for await (const batch of stream) {
    batches.push(batch.length);
    frames.push(...batch);
  }
  return { frames, batches };
}
