import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { H264, makeVideo, scratch, tools } from './fixtures.js';

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

test('--ffmpeg/--ffprobe pick the binaries, and probe names them with their versions', () => {
  const log = join(dir, 'calls.log');
  const wrap = (name: string, real: string) => {
    const path = join(dir, `my-${name}`);
    writeFileSync(path, `#!/bin/sh\necho ${name} >> ${log}\nexec ${real} "$@"\n`);
    chmodSync(path, 0o755);
    return path;
  };
  const ffmpeg = wrap('ffmpeg', tools.ffmpeg);
  const ffprobe = wrap('ffprobe', tools.ffprobe);
  const r = longshot('probe', video, '--json', '--ffmpeg', ffmpeg, '--ffprobe', ffprobe);
  assert.equal(r.code, 0, r.stderr);
  const json = JSON.parse(r.stdout);
  assert.equal(json.tools.ffmpeg.path, ffmpeg);
  assert.equal(json.tools.ffprobe.path, ffprobe);
  const real = spawnSync(tools.ffmpeg, ['-version'], { encoding: 'utf8' }).stdout.split('\n')[0];
  assert.ok(
    real.includes(` version ${json.tools.ffmpeg.version} `),
    `${real} vs ${json.tools.ffmpeg.version}`,
  );
  assert.deepEqual([...new Set(readFileSync(log, 'utf8').split('\n').filter(Boolean))].sort(), [
    'ffmpeg',
    'ffprobe',
  ]);
  const text = longshot('probe', video, '--ffprobe', ffprobe);
  assert.match(text.stdout, new RegExp(`ffprobe\\s+\\S+ \\(${ffprobe}\\)`));
  const bad = longshot('probe', video, '--ffmpeg', join(dir, 'no-ffmpeg'));
  assert.equal(bad.code, 3);
  assert.match(bad.stderr, /^longshot: ffmpeg path points to .*no-ffmpeg, which is not an executable file/);
});

test('longshot frames on a truncated file lists the missing frames on stderr', async () => {
  const whole = join(dir, 'whole.mp4');
  await makeVideo(whole, {
    width: 64,
    height: 48,
    frames: 60,
    fps: 10,
    encode: [...H264, '-movflags', '+faststart'],
  });
  const bytes = readFileSync(whole);
  const cut = join(dir, 'cut.mp4');
  writeFileSync(cut, bytes.subarray(0, bytes.length >> 1));
  const r = longshot('frames', cut, '--frames', '6', '--out', join(dir, 'cut-frames'));
  assert.equal(r.code, 0, r.stderr);
  // Vamba middle over 60 frames: 4, 14, …, 54; the last ones lie past the cut.
  assert.match(
    r.stderr,
    /skipped frame 54 at 5\.400 s: the file ends at \d\.\d{3} s, before this frame \(truncated\)/,
  );
  assert.match(longshot('probe', cut).stdout, /frames\s+60 \(\d+ missing: the file is truncated\)/);
});
