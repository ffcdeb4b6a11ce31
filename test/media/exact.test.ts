/**
 * Frame exactness at the sizes users ask for, with whichever ffmpeg LONGSHOT_FFMPEG selects (CI runs this
 * file with the shipped 4.1 and with Debian's 5.1): a 2-minute 30 fps 640×360 H.264 clip (long GOP,
 * B-frames) whose every frame carries its index in pixels, sampled at 300, 700 and 1024 frames.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { ffmpegArgs, MAX_SELECT_TERMS, planRuns, type RunContext } from '../../src/media/decode.js';
import { liveProcessCount } from '../../src/media/ffmpeg.js';
import { openVideo } from '../../src/media/video.js';
import { collect, makeVideo, readFrame, scratch } from './fixtures.js';

const dir = scratch();
const clip = join(dir, 'two-minutes.mp4');
const FRAMES = 3600;

before(async () => {
  // The index pattern is drawn at 64×36 and scaled up with hard edges, so each block is 160×90 pixels.
  await makeVideo(clip, {
    width: 64,
    height: 36,
    frames: FRAMES,
    fps: 30,
    filter: 'scale=640:360:flags=neighbor',
    encode: [
      '-c:v',
      'libx264',
      '-preset',
      'ultrafast',
      '-bf',
      '2',
      '-g',
      '250',
      '-b:v',
      '300k',
      '-pix_fmt',
      'yuv420p',
    ],
  });
});

/** Vamba "middle" by its formula: edges trunc(i·total/n), the middle frame of each interval. */
function middle(n: number, total: number): number[] {
  const edge = (i: number) => (i === n ? total : Math.trunc(i * (total / n)));
  return Array.from({ length: n }, (_, i) => Math.floor((edge(i) + edge(i + 1) - 1) / 2));
}

for (const n of [300, 700, 1024]) {
  test(`2-minute 640x360 clip at ${n} frames: every frame is the one asked for, none skipped`, async () => {
    const video = await openVideo(clip);
    try {
      assert.equal(video.info.width, 640);
      assert.equal(video.info.height, 360);
      const stream = video.frames({ kind: 'middle', numFrames: n }, { size: { width: 64, height: 36 } });
      const { frames } = await collect(stream);
      const expected = middle(n, FRAMES);
      assert.deepEqual(
        frames.map((f) => f.index),
        expected,
      );
      for (const f of frames) {
        assert.equal(readFrame(f, 64, 36).index, f.index, `pixels of frame ${f.index}`);
        assert.ok(Math.abs(f.timestampSec - f.index / 30) < 1e-3, `timestamp of frame ${f.index}`);
      }
      assert.deepEqual(stream.report(), {
        kind: 'video',
        requested: n,
        decoded: n,
        skipped: [],
        lostRanges: [],
      });
      assert.equal(liveProcessCount(), 0);
    } finally {
      await video.close();
    }
  });
}

test('no run selects more than MAX_SELECT_TERMS frames, and each run ends at the frame after its last', async () => {
  const video = await openVideo(clip);
  try {
    const index = await video.index();
    const chosen = middle(1024, FRAMES);
    const runs = planRuns(index, chosen, {}, 64 * 36 * 3);
    assert.deepEqual(
      runs.flatMap((r) => r.frames),
      chosen,
    );
    const ctx: RunContext = {
      ffmpeg: 'ffmpeg',
      path: clip,
      label: clip,
      info: video.info,
      index,
      size: { width: 64, height: 36 },
      stallTimeoutMs: 1000,
      problems: [],
    };
    for (const run of runs) {
      const vf = ffmpegArgs(ctx, run)[ffmpegArgs(ctx, run).indexOf('-vf') + 1];
      const terms = vf.split('between(').length - 1;
      assert.equal(terms, run.frames.length);
      assert.ok(terms <= MAX_SELECT_TERMS, `${terms} terms`);
      const last = run.frames[run.frames.length - 1];
      assert.ok(vf.startsWith(`trim=end_pts=${index.pts[last + 1]},`), vf.slice(0, 40));
    }
  } finally {
    await video.close();
  }
});

test('a stream without timestamps (raw H.264): one pass over every frame, the chosen ones exact', async () => {
  const raw = await makeVideo(join(dir, 'raw.h264'), {
    width: 64,
    height: 48,
    frames: 90,
    fps: 30,
    encode: ['-c:v', 'libx264', '-preset', 'ultrafast', '-g', '30', '-f', 'h264'],
  });
  const video = await openVideo(raw);
  try {
    const index = await video.index();
    assert.equal(index.hasTimestamps, false);
    const chosen = [3, 40, 41, 89];
    assert.equal(planRuns(index, chosen).length, 1);
    const stream = video.frames({ kind: 'indices', indices: chosen });
    const { frames } = await collect(stream);
    assert.deepEqual(
      frames.map((f) => [f.index, readFrame(f, 64, 48).index]),
      chosen.map((i) => [i, i]),
    );
    assert.equal(stream.report().decoded, 4);
  } finally {
    await video.close();
  }
});
