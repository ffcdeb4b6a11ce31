import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { ffmpegArgs, planRuns } from '../../src/media/decode.js';
import { liveProcessCount, startedProcessCount } from '../../src/media/ffmpeg.js';
import { encodePng } from '../../src/media/png.js';
import { decodeFrames, openVideo, probe } from '../../src/media/video.js';
import {
  collect,
  ffmpeg,
  H264,
  MJPEG,
  makeVideo,
  pattern,
  readFrame,
  scratch,
  tools,
  VP9,
} from './fixtures.js';

const dir = scratch();
const FPS = 10;
const videos = {
  mp4: { file: join(dir, 'h264.mp4'), width: 64, height: 48, encode: [...H264, '-g', '12'] },
  webm: { file: join(dir, 'vp9.webm'), width: 97, height: 61, encode: [...VP9, '-g', '12'] },
  avi: { file: join(dir, 'mjpeg.avi'), width: 75, height: 43, encode: MJPEG },
};
const FRAMES = 40;
/** Long-GOP H.264 with B-frames, for seeking. */
const gop = join(dir, 'gop.mp4');
const vfr = join(dir, 'vfr.mkv');
const rotated = join(dir, 'rotated.mp4');
/** VFR timestamps: 10 frames 0.1 s apart, then 10 frames 0.3 s apart. */
const vfrTime = (i: number) => (i < 10 ? 0.1 * i : 1 + 0.3 * (i - 10));

before(async () => {
  await Promise.all([
    ...Object.values(videos).map((v) => makeVideo(v.file, { ...v, frames: FRAMES, fps: FPS })),
    makeVideo(gop, {
      width: 64,
      height: 48,
      frames: 120,
      fps: 30,
      encode: [
        '-c:v',
        'libx264',
        '-preset',
        'veryfast',
        '-g',
        '10',
        '-keyint_min',
        '10',
        '-sc_threshold',
        '0',
        '-bf',
        '3',
        '-pix_fmt',
        'yuv420p',
      ],
    }),
    makeVideo(vfr, {
      width: 64,
      height: 48,
      frames: 20,
      fps: 10,
      filter: 'settb=1/1000,setpts=(if(lt(N\\,10)\\,N*0.1\\,1+(N-10)*0.3))/TB',
      encode: [...H264, '-vsync', 'vfr'],
    }),
    (async () => {
      const plain = join(dir, 'plain.mp4');
      await makeVideo(plain, { width: 64, height: 48, frames: 10, fps: FPS, encode: H264 });
      await ffmpeg(['-i', plain, '-c', 'copy', '-metadata:s:v:0', 'rotate=90', rotated]);
    })(),
  ]);
});

/** The numpy reference of Vamba "middle", written out as a loop. */
function middleReference(n: number, total: number): number[] {
  const edges = Array.from({ length: n + 1 }, (_, i) => (i === n ? total : Math.trunc(i * (total / n))));
  return Array.from({ length: n }, (_, i) => Math.floor((edges[i] + edges[i + 1] - 1) / 2));
}

for (const [name, v] of Object.entries(videos)) {
  test(`${name}: probe, Vamba middle sampling, timestamps and pixels`, async () => {
    const info = await probe(v.file, { scan: true });
    assert.equal(info.width, v.width);
    assert.equal(info.height, v.height);
    assert.equal(info.fps, FPS);
    assert.equal(info.frameCount, FRAMES);
    assert.equal(info.rotation, 0);
    assert.equal(info.variableFrameRate, false);
    assert.equal(info.kind, 'video');
    const { frames, batches } = await collect(
      decodeFrames(v.file, { kind: 'middle', numFrames: 7 }, { batchSize: 3 }),
    );
    assert.deepEqual(batches, [3, 3, 1]);
    const expected = middleReference(7, FRAMES);
    assert.deepEqual(
      frames.map((f) => f.index),
      expected,
    );
    for (const [k, f] of frames.entries()) {
      assert.ok(Math.abs(f.timestampSec - expected[k] / FPS) < 1e-6, `timestamp of ${f.index}`);
      assert.equal(f.width, v.width);
      assert.equal(f.height, v.height);
      assert.equal(f.data.length, v.width * v.height * 3);
      const read = readFrame(f, v.width, v.height);
      assert.equal(read.index, f.index, `pixels of frame ${f.index} show frame ${read.index}`);
      assert.ok(read.error < 60, `block colours off by ${read.error}`);
    }
    assert.equal(liveProcessCount(), 0);
  });
}

test('seeking lands on the exact frames in every container', async () => {
  const chosen = [1, 13, 14, 26, 39];
  for (const v of Object.values(videos)) {
    const video = await openVideo(v.file);
    try {
      const index = await video.index();
      const stream = video.frames({ kind: 'indices', indices: chosen }, { seekGainFrames: 1 });
      const { frames } = await collect(stream);
      assert.deepEqual(
        frames.map((f) => [f.index, readFrame(f, v.width, v.height).index]),
        chosen.map((i) => [i, i]),
        v.file,
      );
      // A seek wherever a keyframe lies past the frame after the previous chosen one (it saves decoding).
      const seeks = planRuns(index, chosen, { seekGainFrames: 1 }).length - 1;
      const keyframesBetween = chosen
        .slice(1)
        .filter((f, k) => index.keyframe.slice(chosen[k] + 2, f + 1).includes(1));
      assert.equal(seeks, keyframesBetween.length, v.file);
      assert.ok(seeks > 0, v.file);
    } finally {
      await video.close();
    }
  }
});

test('resize to an exact target size and with a function of the source size', async () => {
  const { frames } = await collect(
    decodeFrames(videos.webm.file, { kind: 'uniform', numFrames: 4 }, { size: { width: 40, height: 26 } }),
  );
  // Vamba eval rule by formula: splits floor(i·40/4) = 0,10,20,30,40 → midpoints 5,15,25,35.
  assert.deepEqual(
    frames.map((f) => f.index),
    [5, 15, 25, 35],
  );
  for (const f of frames) {
    assert.equal(f.data.length, 40 * 26 * 3);
    assert.equal(readFrame(f, 97, 61).index, f.index);
  }
  const halved = await collect(
    decodeFrames(
      videos.mp4.file,
      { kind: 'indices', indices: [9] },
      { size: ({ width, height }) => ({ width: width / 2, height: height / 2 }) },
    ),
  );
  assert.equal(halved.frames[0].width, 32);
  assert.equal(halved.frames[0].height, 24);
  assert.equal(readFrame(halved.frames[0], 64, 48).index, 9);
});

test('sparse frames from a long-GOP video with B-frames: seeks, and still the exact frames', async () => {
  const video = await openVideo(gop);
  try {
    const index = await video.index();
    assert.equal(index.count, 120);
    assert.deepEqual(
      [...index.keyframe.keys()].filter((i) => index.keyframe[i]),
      Array.from({ length: 12 }, (_, k) => 10 * k),
    );
    const chosen = [3, 37, 38, 75, 119];
    // 3 → run from 0; 37 → keyframe 30 skips 26 frames: seek; 38 continues; 75 → seek to 70; 119 → 110.
    assert.deepEqual(
      planRuns(index, chosen).map((r) => [r.seekFrame, r.frames]),
      [
        [0, [3]],
        [30, [37, 38]],
        [70, [75]],
        [110, [119]],
      ],
    );
    // Frames that are all keyframes are decoded alone (-skip_frame nokey), with no seeking between them.
    const keyChosen = [0, 10, 20, 50, 55];
    assert.deepEqual(
      planRuns(index, keyChosen).map((r) => [r.seekFrame, r.frames, r.keyframesOnly]),
      [
        [0, [0, 10, 20, 50], true],
        [50, [55], false],
      ],
    );
    const keyFrames = await collect(video.frames({ kind: 'indices', indices: keyChosen }));
    assert.deepEqual(
      keyFrames.frames.map((f) => readFrame(f, 64, 48).index),
      keyChosen,
    );
    const { frames } = await collect(video.frames({ kind: 'indices', indices: chosen }));
    assert.deepEqual(
      frames.map((f) => [f.index, readFrame(f, 64, 48).index]),
      chosen.map((i) => [i, i]),
    );
    for (const f of frames) assert.ok(Math.abs(f.timestampSec - f.index / 30) < 1e-6);
  } finally {
    await video.close();
  }
});

test('a seek lands on the keyframe of its run, not a GOP earlier (B-frames, 1 s GOP)', async () => {
  const file = join(dir, 'gop30.mp4');
  await makeVideo(file, {
    width: 64,
    height: 48,
    frames: 90,
    fps: 30,
    encode: [
      '-c:v',
      'libx264',
      '-preset',
      'veryfast',
      '-g',
      '30',
      '-keyint_min',
      '30',
      '-sc_threshold',
      '0',
      '-bf',
      '3',
      '-pix_fmt',
      'yuv420p',
    ],
  });
  const video = await openVideo(file);
  try {
    const index = await video.index();
    const [run] = planRuns(index, [75]);
    assert.equal(run.seekFrame, 60);
    const args = ffmpegArgs(
      {
        ffmpeg: '',
        path: file,
        label: file,
        info: video.info,
        index,
        size: { width: 8, height: 8 },
        stallTimeoutMs: 1,
        problems: [],
      },
      run,
    );
    const ss = args[args.indexOf('-ss') + 1];
    // Ask ffmpeg, with the same seek, for the first frame it decodes: it must be frame 60 (2.0 s).
    const first = await new Promise<string>((resolve) => {
      const child = spawn(tools.ffmpeg, [
        '-ss',
        ss,
        '-noaccurate_seek',
        '-copyts',
        '-i',
        file,
        '-frames:v',
        '1',
        '-vf',
        'showinfo',
        '-f',
        'null',
        '-',
      ]);
      let err = '';
      child.stderr.on('data', (d) => (err += d));
      child.once('close', () => resolve(err));
    });
    assert.equal(Number(/pts_time:([\d.]+)/.exec(first)?.[1]), index.pts[60] * index.timeBase);
  } finally {
    await video.close();
  }
});

test("accuracy 'keyframe': each chosen frame is replaced by the nearest keyframe, decoded alone", async () => {
  const { frames } = await collect(
    decodeFrames(gop, { kind: 'indices', indices: [3, 7, 37, 118] }, { accuracy: 'keyframe' }),
  );
  // Keyframes every 10 frames (0..110): nearest in time, ties to the earlier one.
  assert.deepEqual(
    frames.map((f) => f.index),
    [0, 10, 40, 110],
  );
  for (const f of frames) {
    assert.equal(readFrame(f, 64, 48).index, f.index);
    assert.ok(Math.abs(f.timestampSec - f.index / 30) < 1e-6);
  }
});

test('every frame, in batches, and padding repeats the last frame', async () => {
  const all = await collect(decodeFrames(videos.avi.file, { kind: 'all' }, { batchSize: 16 }));
  assert.deepEqual(all.batches, [16, 16, 8]);
  assert.deepEqual(
    all.frames.map((f) => readFrame(f, 75, 43).index),
    Array.from({ length: FRAMES }, (_, i) => i),
  );
  const padded = await collect(decodeFrames(videos.mp4.file, { kind: 'middle', numFrames: 43 }));
  assert.equal(padded.frames.length, 43);
  assert.deepEqual(padded.batches, [8, 8, 8, 8, 8, 3]);
  assert.deepEqual(
    padded.frames.slice(-4).map((f) => [f.index, readFrame(f, 64, 48).index]),
    [
      [39, 39],
      [39, 39],
      [39, 39],
      [39, 39],
    ],
  );
  // Repeated frames are distinct copies.
  assert.notEqual(padded.frames[41].data, padded.frames[42].data);
});

test('rotation metadata: frames come out turned, with the displayed size', async () => {
  const info = await probe(rotated);
  assert.equal(info.rotation, 270);
  assert.equal(info.codedWidth, 64);
  assert.equal(info.width, 48);
  assert.equal(info.height, 64);
  const { frames } = await collect(decodeFrames(rotated, { kind: 'indices', indices: [5, 6] }));
  for (const f of frames) {
    assert.equal(f.width, 48);
    assert.equal(f.height, 64);
    assert.equal(readFrame(f, 64, 48, 270).index, f.index);
  }
  // Read as if unturned, the pattern would not be the frame's index.
  assert.notEqual(readFrame(frames[0], 64, 48, 0).index, 5);
});

test('variable frame rate: real timestamps, and frames chosen by index', async () => {
  const info = await probe(vfr, { scan: true });
  assert.equal(info.variableFrameRate, true);
  assert.equal(info.frameCount, 20);
  const { frames } = await collect(decodeFrames(vfr, { kind: 'all' }));
  assert.equal(frames.length, 20);
  for (const f of frames) {
    assert.equal(readFrame(f, 64, 48).index, f.index);
    assert.ok(Math.abs(f.timestampSec - vfrTime(f.index)) < 1e-3, `frame ${f.index} at ${f.timestampSec}`);
  }
});

test('images (PNG, JPEG, WebP) from a path, bytes and a data: URL', async () => {
  const w = 40;
  const h = 30;
  const grey = pattern(0b1010_0110_1001_0101, w, h);
  const rgb = new Uint8Array(w * h * 3).map((_, i) => grey[Math.floor(i / 3)]);
  const png = join(dir, 'p.png');
  await writeFile(png, encodePng(w, h, rgb));
  await ffmpeg(['-i', png, '-q:v', '2', join(dir, 'p.jpg')]);
  await ffmpeg(['-i', png, '-lossless', '1', join(dir, 'p.webp')]);
  const pngBytes = encodePng(w, h, rgb);
  const inputs = [
    png,
    join(dir, 'p.jpg'),
    join(dir, 'p.webp'),
    pngBytes,
    `data:image/png;base64,${Buffer.from(pngBytes).toString('base64')}`,
  ];
  for (const input of inputs) {
    const info = await probe(input);
    assert.equal(info.kind, 'image');
    assert.equal(info.frameCount, 1);
    const stream = decodeFrames(input, { kind: 'middle', numFrames: 8 }, { size: { width: 20, height: 15 } });
    const { frames } = await collect(stream);
    assert.equal(frames.length, 1);
    // One frame, said to be an image: a model repeats it to make its frame pair.
    assert.deepEqual(stream.report(), {
      kind: 'image',
      requested: 1,
      decoded: 1,
      skipped: [],
      lostRanges: [],
    });
    assert.equal(frames[0].timestampSec, 0);
    assert.equal(frames[0].width, 20);
    assert.equal(readFrame(frames[0], w, h).index, 0b1010_0110_1001_0101);
  }
});

test('backpressure: ffmpeg waits while the consumer holds a batch', async () => {
  // 640×480 RGB frames (0.9 MB) do not fit in a pipe buffer, so ffmpeg can only run ahead by about one.
  let seen = 0;
  for await (const batch of decodeFrames(
    videos.mp4.file,
    { kind: 'all' },
    { batchSize: 1, size: { width: 640, height: 480 } },
  )) {
    seen += batch.length;
    await new Promise((r) => setTimeout(r, 400));
    // Were frames not held back, ffmpeg would have written all 40 and exited by now.
    assert.equal(liveProcessCount(), 1);
    if (seen === 3) break;
  }
  assert.equal(liveProcessCount(), 0);
});

test('the next run decodes ahead within its budget while the current one is held', async () => {
  // Two runs (frames 5–8, then a seek for 65–68) at 640×480: a frame (0.9 MB) does not fit in a pipe buffer.
  const hold = async (readAheadBytes: number) => {
    const video = await openVideo(gop);
    let live = -1;
    for await (const _ of video.frames(
      { kind: 'indices', indices: [5, 6, 7, 8, 65, 66, 67, 68] },
      { batchSize: 1, size: { width: 640, height: 480 }, readAheadBytes },
    )) {
      await new Promise((r) => setTimeout(r, 600));
      live = liveProcessCount();
      break;
    }
    await video.close();
    assert.equal(liveProcessCount(), 0);
    return live;
  };
  // With room for its 4 frames the next run finishes (its ffmpeg exits) while we hold the first run's frame.
  assert.equal(await hold(32 << 20), 1);
  // Without read-ahead it stops after its first frame, its ffmpeg blocked on the pipe.
  assert.equal(await hold(0), 2);
});

test('runs overlap (the next ffmpeg starts early) and a break stops both', async () => {
  const indices = [5, 35, 65, 95];
  let seen = 0;
  const video = await openVideo(gop);
  await video.index();
  const before = startedProcessCount();
  for await (const batch of video.frames({ kind: 'indices', indices }, { batchSize: 1 })) {
    assert.equal(readFrame(batch[0], 64, 48).index, indices[seen++]);
    // Four runs (a seek each): when we get frame 5, the run for frame 35 has been started too.
    assert.equal(startedProcessCount() - before, seen + 1);
    if (seen === 2) break;
  }
  await video.close();
  assert.equal(liveProcessCount(), 0);
  const controller = new AbortController();
  await assert.rejects(async () => {
    for await (const _ of decodeFrames(
      gop,
      { kind: 'indices', indices },
      { batchSize: 1, signal: controller.signal },
    ))
      controller.abort();
  }, /abort/i);
  assert.equal(liveProcessCount(), 0);
});

test('early break and abort leave no ffmpeg behind', async () => {
  for await (const batch of decodeFrames(videos.mp4.file, { kind: 'all' }, { batchSize: 2 })) {
    assert.equal(batch.length, 2);
    assert.equal(liveProcessCount(), 1);
    break;
  }
  assert.equal(liveProcessCount(), 0);
  const controller = new AbortController();
  const stream = decodeFrames(videos.webm.file, { kind: 'all' }, { batchSize: 2, signal: controller.signal });
  await assert.rejects(async () => {
    for await (const _ of stream) controller.abort();
  }, /abort/i);
  assert.equal(liveProcessCount(), 0);
});
