/**
 * Live sources through ffmpeg: a pipe sampled at a target rate (frames at n / fps, the source's size, the
 * wall clock of arrival), a consumer that stops early stops ffmpeg, and sources that cannot be watched are
 * clear InputErrors.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { InputError } from '../../src/errors.js';
import { findTools, liveProcessCount } from '../../src/media/ffmpeg.js';
import { liveFrames, sourceKind, type TimedFrame } from '../../src/media/live-source.js';

/** A 64×48 test pattern at 10 fps for `seconds`, as a y4m stream. */
function y4m(seconds: number): Buffer {
  const r = spawnSync(findTools().ffmpeg, [
    ...['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc=size=64x48:rate=10'],
    ...['-t', String(seconds), '-pix_fmt', 'yuv420p', '-f', 'yuv4mpegpipe', 'pipe:1'],
  ]);
  assert.equal(r.status, 0, r.stderr?.toString());
  return r.stdout;
}

async function all(source: string, stdin: Buffer, fps: number): Promise<TimedFrame[]> {
  const out: TimedFrame[] = [];
  for await (const batch of liveFrames(source, { fps, stdin: Readable.from([stdin]) })) out.push(...batch);
  return out;
}

describe('live sources', () => {
  it('samples a pipe at the target rate, with stream times and arrival times', async () => {
    const t0 = Date.now();
    const frames = await all('-', y4m(3), 2);
    assert.equal(frames.length, 6);
    assert.deepEqual(
      frames.map((f) => f.timestampSec),
      [0, 0.5, 1, 1.5, 2, 2.5],
    );
    assert.deepEqual(
      frames.map((f) => f.index),
      [0, 1, 2, 3, 4, 5],
    );
    for (const f of frames) {
      assert.equal(f.width, 64);
      assert.equal(f.height, 48);
      assert.equal(f.data.length, 64 * 48 * 3);
      assert.ok(f.wallClockMs >= t0 && f.wallClockMs <= Date.now());
    }
    // The pattern moves: sampled frames differ.
    assert.notDeepEqual(frames[0].data, frames[5].data);
  });

  it('stops ffmpeg when the consumer stops early', async () => {
    for await (const batch of liveFrames('-', { fps: 10, stdin: Readable.from([y4m(2)]) })) {
      assert.ok(batch.length >= 1);
      break;
    }
    assert.equal(liveProcessCount(), 0);
  });

  it('names what it cannot watch', async () => {
    assert.equal(sourceKind('rtsp://cam/1'), 'url');
    assert.equal(sourceKind('device:/dev/video0'), 'device');
    assert.equal(sourceKind('-'), 'pipe');
    assert.equal(sourceKind('clips/a.ts'), 'file');
    assert.throws(() => sourceKind('gopher://x/y'), /unsupported URL scheme/);
    await assert.rejects(all('missing-file.ts', Buffer.alloc(0), 1), (e: Error) => {
      return e instanceof InputError && /missing-file\.ts: no such file/.test(e.message);
    });
    await assert.rejects(
      all('-', Buffer.from('this is not a video stream\n'.repeat(50)), 1),
      (e: Error) => e instanceof InputError && /^-: ffmpeg could not read it as video: /.test(e.message),
    );
    await assert.rejects(all('-', Buffer.alloc(0), 0), /fps must be a positive number/);
  });
});
