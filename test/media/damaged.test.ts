/**
 * Truncated and corrupted videos: every requested frame is either decoded (and then exactly right) or
 * reported as skipped with its time, the skipped frames are merged into time ranges, and the lost-frame
 * policy refuses what it should.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { InputError } from '../../src/errors.js';
import { liveProcessCount } from '../../src/media/ffmpeg.js';
import { checkFrameLoss, type DecodeReport, describeFrameLoss, lostRanges } from '../../src/media/report.js';
import { decodeFrames } from '../../src/media/video.js';
import { collect, makeVideo, readFrame, scratch } from './fixtures.js';

const dir = scratch();
const whole = join(dir, 'whole.mp4');
const truncated = join(dir, 'truncated.mp4');
const corrupted = join(dir, 'corrupted.mp4');
const FRAMES = 300; // 10 s at 30 fps
const W = 64;
const H = 48;

before(async () => {
  // The index (moov) at the front, as streaming files have it, so a cut file still lists every frame.
  await makeVideo(whole, {
    width: W,
    height: H,
    frames: FRAMES,
    fps: 30,
    encode: [
      '-c:v',
      'libx264',
      '-preset',
      'ultrafast',
      '-g',
      '30',
      '-pix_fmt',
      'yuv420p',
      '-movflags',
      '+faststart',
    ],
  });
  const bytes = await readFile(whole);
  await writeFile(truncated, bytes.subarray(0, bytes.length >> 1));
  // Overwrite 15% of the bytes, a stretch in the middle of the media data, with a fixed pseudo-random sequence.
  const damaged = Buffer.from(bytes);
  const from = Math.floor(damaged.length * 0.45);
  let seed = 7;
  for (let k = from; k < from + Math.floor(damaged.length * 0.15); k++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    damaged[k] = seed >>> 24;
  }
  await writeFile(corrupted, damaged);
});

/** Vamba "middle" with n = 32 over 300 frames: interval edges trunc(i·9.375). */
const chosen = Array.from({ length: 32 }, (_, i) => {
  const edge = (k: number) => Math.trunc(k * (FRAMES / 32));
  return Math.floor((edge(i) + edge(i + 1) - 1) / 2);
});

test('a video cut in half: the second half is reported skipped as one time range', async () => {
  const stream = decodeFrames(truncated, { kind: 'middle', numFrames: 32 });
  const { frames } = await collect(stream);
  const report = stream.report();
  assert.equal(report.requested, 32);
  assert.equal(report.decoded, frames.length);
  // Half the bytes hold about half the frames: what came out is the first part, exactly.
  assert.ok(frames.length >= 10 && frames.length <= 22, `${frames.length} decoded`);
  assert.deepEqual(
    frames.map((f) => f.index),
    chosen.slice(0, frames.length),
  );
  for (const f of frames) assert.equal(readFrame(f, W, H).index, f.index);
  // The rest is skipped, each with its timestamp, merged into one range that runs to the end.
  const lost = chosen.slice(frames.length);
  assert.deepEqual(
    report.skipped.map((s) => [s.index, s.timestampSec.toFixed(6)]),
    lost.map((i) => [i, (i / 30).toFixed(6)]),
  );
  // Frames past the data are named as such; the last partial packets are what ffmpeg complained about.
  for (const s of report.skipped) assert.match(s.reason, /^ffmpeg: |before this frame \(truncated\)$/);
  assert.match(report.skipped[lost.length - 1].reason, /the file ends at \d+\.\d{3} s, before this frame/);
  assert.deepEqual(
    report.lostRanges.map((r) => [r.startSec.toFixed(6), r.endSec.toFixed(6), r.frames]),
    [[(lost[0] / 30).toFixed(6), (lost[lost.length - 1] / 30).toFixed(6), lost.length]],
  );
  // Over a quarter lost: refused by default, with the count, the range and what to do.
  assert.throws(
    () => checkFrameLoss('truncated.mp4', report),
    (e: unknown) =>
      e instanceof InputError &&
      e.message.startsWith(
        `truncated.mp4: ${lost.length} of 32 frames could not be decoded (${(lost[0] / 30).toFixed(3)}–${(lost[lost.length - 1] / 30).toFixed(3)} s)`,
      ) &&
      /over the allowed 25%.*--max-lost/.test(e.message) &&
      !e.message.includes('\n'),
  );
  // A caller that accepts losing most of the video gets no error.
  assert.doesNotThrow(() => checkFrameLoss('truncated.mp4', report, { maxLostFraction: 0.9 }));
  assert.equal(liveProcessCount(), 0);
});

test('15% of the bytes overwritten: every frame is decoded or reported, never silently dropped', async () => {
  const stream = decodeFrames(corrupted, { kind: 'middle', numFrames: 32 });
  const { frames } = await collect(stream);
  const report = stream.report();
  assert.ok(report.skipped.length > 0, 'some frames are lost');
  assert.equal(report.decoded + report.skipped.length, 32);
  // Decoded and skipped frames together are exactly the ones asked for, in order.
  const got = [...frames.map((f) => f.index), ...report.skipped.map((s) => s.index)].sort((a, b) => a - b);
  assert.deepEqual(got, chosen);
  assert.equal(
    report.lostRanges.reduce((n, r) => n + r.frames, 0),
    report.skipped.length,
  );
  for (const s of report.skipped) assert.ok(Math.abs(s.timestampSec - s.index / 30) < 1e-6);
  // strict refuses any loss.
  assert.throws(
    () => checkFrameLoss('corrupted.mp4', report, { strict: true }),
    /strict mode refuses any lost frame/,
  );
  assert.equal(liveProcessCount(), 0);
});

/** A report with `lost` of `requested` frames lost, in slots given by `slots`, one frame per second. */
function reportOf(requested: number, slots: number[]): DecodeReport {
  const skipped = slots.map((k) => ({ index: k * 30, timestampSec: k, reason: 'ffmpeg: damaged' }));
  return {
    kind: 'video',
    requested,
    decoded: requested - slots.length,
    skipped,
    lostRanges: lostRanges(skipped, slots),
  };
}

test('the lost-frame policy: a quarter is allowed by default, strict allows none, the threshold is checked', () => {
  const eight = reportOf(32, [0, 1, 2, 10, 11, 20, 30, 31]);
  assert.deepEqual(
    eight.lostRanges.map((r) => [r.startSec, r.endSec, r.frames]),
    [
      [0, 2, 3],
      [10, 11, 2],
      [20, 20, 1],
      [30, 31, 2],
    ],
  );
  assert.equal(
    describeFrameLoss(eight),
    '8 of 32 frames could not be decoded (0.000–2.000 s, 10.000–11.000 s, at 20.000 s, 30.000–31.000 s): ffmpeg: damaged',
  );
  assert.doesNotThrow(() => checkFrameLoss('v.mp4', eight)); // exactly a quarter
  assert.throws(
    () => checkFrameLoss('v.mp4', reportOf(32, [0, 1, 2, 10, 11, 20, 30, 31, 5])),
    /9 of 32 frames/,
  );
  assert.throws(
    () => checkFrameLoss('v.mp4', reportOf(32, [5]), { strict: true }),
    /^InputError: v.mp4: 1 of 32/,
  );
  assert.throws(
    () => checkFrameLoss('v.mp4', eight, { maxLostFraction: 0.2, advice: 'use --foo' }),
    /allowed 20%, use --foo$/,
  );
  assert.throws(
    () => checkFrameLoss('v.mp4', eight, { maxLostFraction: 1.5 }),
    /fraction from 0 to 1, got 1.5/,
  );
  const none = reportOf(32, []);
  assert.equal(describeFrameLoss(none), undefined);
  assert.doesNotThrow(() => checkFrameLoss('v.mp4', none, { strict: true }));
});
