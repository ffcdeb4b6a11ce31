import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { H264, makeVideo, scratch } from './fixtures.js';

const dir = scratch();
const video = join(dir, 'clip.mp4');

/** Runs the real CLI entry point in a child process (as a user would). */
function longshot(...args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/run.ts', ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

before(() => makeVideo(video, { width: 64, height: 48, frames: 30, fps: 10, encode: H264 }));

test('longshot probe prints the facts, as text and as JSON', () => {
  const text = longshot('probe', video);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /codec\s+h264/);
  assert.match(text.stdout, /size\s+64x48/);
  assert.match(text.stdout, /frames\s+30\n/);
  const json = longshot('probe', video, '--json');
  const info = JSON.parse(json.stdout);
  assert.equal(info.frameCount, 30);
  assert.equal(info.fps, 10);
  assert.equal(info.durationSec, 3);
});

test('longshot frames writes the sampled frames as PNG', () => {
  const out = join(dir, 'frames');
  const r = longshot('frames', video, '--frames', '3', '--out', out, '--size', '32x24');
  assert.equal(r.code, 0, r.stderr);
  // Vamba middle: intervals 0,10,20,30 → frames 4, 14, 24.
  assert.match(r.stdout, /frame-00000\.png\s+frame 4\s+0\.400 s\s+32x24/);
  assert.match(r.stdout, /frame-00002\.png\s+frame 24\s+2\.400 s/);
  assert.deepEqual(readdirSync(out).sort(), ['frame-00000.png', 'frame-00001.png', 'frame-00002.png']);
  const png = readFileSync(join(out, 'frame-00001.png'));
  assert.equal(png.subarray(1, 4).toString(), 'PNG');
  assert.equal(png.readUInt32BE(16), 32); // IHDR width
  assert.equal(png.readUInt32BE(20), 24); // IHDR height
});

test('bad input exits with code 3 and a one-line message', () => {
  const missing = longshot('probe', join(dir, 'missing.mp4'));
  assert.equal(missing.code, 3);
  assert.match(missing.stderr, /^longshot: no such file: .*missing\.mp4\n$/);
  const noCount = longshot('frames', video, '--policy', 'uniform', '--out', join(dir, 'x'));
  assert.equal(noCount.code, 3);
  assert.match(noCount.stderr, /--policy uniform needs --frames N/);
  const usage = longshot('frames', video, '--frames', 'many', '--out', join(dir, 'x'));
  assert.equal(usage.code, 2);
});
