/**
 * A live source without a camera: frames (e.g. a needle record's, needle/eval.ts renderedFrames) as one y4m
 * stream (yuv444p) cut into its header and frame ranges, so a test can write a growing file in parts.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { findTools } from '../../src/media/ffmpeg.js';

export function y4mParts(frames: { data: Uint8Array }[], width: number, height: number, fps: number) {
  const r = spawnSync(
    findTools().ffmpeg,
    [
      ...['-hide_banner', '-loglevel', 'error', '-f', 'rawvideo', '-pix_fmt', 'rgb24'],
      ...['-s', `${width}x${height}`, '-r', String(fps), '-i', 'pipe:0'],
      ...['-pix_fmt', 'yuv444p', '-f', 'yuv4mpegpipe', 'pipe:1'],
    ],
    { input: Buffer.concat(frames.map((f) => f.data)), maxBuffer: 64 << 20 },
  );
  assert.equal(r.status, 0, r.stderr.toString());
  const out = r.stdout as Buffer;
  const frameBytes = 6 + width * height * 3; // "FRAME\n" + Y, U, V planes
  const header = out.subarray(0, out.length - frames.length * frameBytes);
  const at = (i: number) => header.length + i * frameBytes;
  return { header, frames: (a: number, b: number) => out.subarray(at(a), at(b)) };
}
