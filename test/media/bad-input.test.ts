import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { InputError } from '../../src/errors.js';
import { liveProcessCount } from '../../src/media/ffmpeg.js';
import { encodePng } from '../../src/media/png.js';
import { decodeFrames, openVideo, probe } from '../../src/media/video.js';
import { collect, ffmpeg, H264, MJPEG, makeVideo, readFrame, scratch } from './fixtures.js';

const dir = scratch();
const good = join(dir, 'good.mp4');
const avi = join(dir, 'good.avi');
let server: Server;
let base: string;
const stalled: Array<() => void> = [];

before(async () => {
  await makeVideo(good, { width: 64, height: 48, frames: 40, fps: 10, encode: [...H264, '-g', '10'] });
  await makeVideo(avi, { width: 64, height: 48, frames: 10, fps: 10, encode: MJPEG });
  const bytes = await readFile(good);
  server = createServer((req, res) => {
    if (req.url === '/video.mp4') {
      res.writeHead(200, { 'content-type': 'video/mp4', 'content-length': bytes.length });
      res.end(bytes);
    } else if (req.url === '/stall') {
      res.writeHead(200, { 'content-type': 'video/mp4' });
      res.write(bytes.subarray(0, 100));
      stalled.push(() => res.destroy());
    } else if (req.url === '/chunked') {
      res.writeHead(200, { 'content-type': 'video/mp4' }); // no content-length: the limit applies while streaming
      res.end(bytes);
    } else {
      res.writeHead(404);
      res.end('not found');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(() => {
  for (const stop of stalled) stop();
  server.close();
});

/** Asserts that `run` rejects with an InputError whose message matches `pattern`, leaving no ffmpeg. */
async function rejectsInput(run: () => Promise<unknown>, pattern: RegExp) {
  await assert.rejects(run, (e: unknown) => {
    assert.ok(e instanceof InputError, `expected InputError, got ${String(e)}`);
    assert.match(e.message, pattern);
    return true;
  });
  assert.equal(liveProcessCount(), 0);
}

const decodeAll = (input: string | Uint8Array, options = {}) =>
  collect(decodeFrames(input, { kind: 'middle', numFrames: 4 }, options));

test('missing file, directory, empty file, not a media file', async () => {
  await rejectsInput(() => probe(join(dir, 'nope.mp4')), /no such file: .*nope\.mp4/);
  await mkdir(join(dir, 'folder'));
  await rejectsInput(() => probe(join(dir, 'folder')), /is a directory/);
  await writeFile(join(dir, 'empty.mp4'), '');
  await rejectsInput(() => probe(join(dir, 'empty.mp4')), /is empty/);
  await rejectsInput(() => decodeAll(new Uint8Array(0)), /empty/);
  await writeFile(join(dir, 'notes.mp4'), 'these are my notes, not a video\n'.repeat(20));
  await rejectsInput(() => decodeAll(join(dir, 'notes.mp4')), /not a video or image file/);
  await rejectsInput(() => probe('ftp://example.invalid/x.mp4'), /unsupported URL scheme/);
  await rejectsInput(() => probe('data:video/mp4;base64,@@@'), /malformed data: URL/);
});

test('audio only', async () => {
  const audio = join(dir, 'tone.m4a');
  await ffmpeg(['-f', 'lavfi', '-i', 'sine=duration=0.5', '-c:a', 'aac', audio]);
  await rejectsInput(() => probe(audio), /has audio but no video stream/);
});

test('zero duration: a video stream without frames', async () => {
  // An AVI cut right after its headers: the stream is declared, no frame follows.
  const bytes = await readFile(avi);
  const zero = join(dir, 'zero.avi');
  await writeFile(zero, bytes.subarray(0, bytes.indexOf('movi') + 4));
  const info = await probe(zero);
  assert.equal(info.codec, 'mjpeg');
  await rejectsInput(() => decodeAll(zero), /no video frames \(zero duration\)/);
});

test('unsupported codec', async () => {
  // Same AVI with an unknown FourCC: ffprobe sees a video stream it cannot name.
  const bytes = await readFile(avi);
  const odd = join(dir, 'odd.avi');
  await writeFile(odd, Buffer.from(bytes.toString('latin1').replaceAll('MJPG', 'QQQQ'), 'latin1'));
  await rejectsInput(() => probe(odd), /unsupported video codec \(tag QQQQ\)/);
});

test('absurd resolution and absurd output sizes', async () => {
  const huge = join(dir, 'huge.png');
  await writeFile(huge, encodePng(20000, 1, new Uint8Array(20000 * 3)));
  await rejectsInput(() => probe(huge), /20000x1 is too large/);
  await rejectsInput(
    () => decodeAll(good, { size: { width: 0, height: 10 } }),
    /output frame size 0x10 is invalid/,
  );
  await rejectsInput(() => decodeAll(good, { size: { width: 100000, height: 10 } }), /invalid/);
  await rejectsInput(() => decodeAll(good, { batchSize: 0 }), /batchSize/);
  await rejectsInput(
    () => collect(decodeFrames(good, { kind: 'indices', indices: [10, 40] })),
    /frame index 40 is outside the video's 40 frames/,
  );
  const video = await openVideo(good);
  try {
    // A Sample made for another video is checked against this one.
    await rejectsInput(
      () => collect(video.frames({ indices: [3, 99], timestampsSec: [0.3, 9.9] })),
      /99 is outside/,
    );
  } finally {
    await video.close();
  }
});

test('a corrupt region in the middle: the rest is decoded, the lost frames are reported', async () => {
  const bytes = Buffer.from(await readFile(good));
  // Scramble the middle fifth of the file (inside the media data; the index at the end is intact).
  let seed = 1;
  for (let k = Math.floor(bytes.length * 0.4); k < Math.floor(bytes.length * 0.6); k++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    bytes[k] = seed >>> 24;
  }
  const corrupt = join(dir, 'corrupt.mp4');
  await writeFile(corrupt, bytes);
  const stream = decodeFrames(corrupt, { kind: 'all' });
  const { frames } = await collect(stream);
  assert.ok(stream.skipped.length > 0, 'some frames are reported skipped');
  assert.ok(stream.problems.length > 0, 'what ffmpeg said is kept');
  assert.match(stream.skipped[0].reason, /ffmpeg/);
  assert.equal(frames.length + stream.skipped.length, 40);
  // The frames before the damage are exactly right, and nothing skipped is also delivered.
  const skipped = new Set(stream.skipped.map((s) => s.index));
  for (const f of frames) assert.ok(!skipped.has(f.index));
  for (const f of frames.filter((f) => f.index < 10)) assert.equal(readFrame(f, 64, 48).index, f.index);
  assert.equal(liveProcessCount(), 0);
  // strict: fail clearly instead.
  await rejectsInput(
    () => collect(decodeFrames(corrupt, { kind: 'all' }, { strict: true })),
    /could not be decoded/,
  );
});

test('URLs: streamed download, 404, timeout, too large', async () => {
  const { frames } = await decodeAll(`${base}/video.mp4`);
  assert.deepEqual(
    frames.map((f) => readFrame(f, 64, 48).index),
    [4, 14, 24, 34],
  );
  await rejectsInput(() => probe(`${base}/missing.mp4`), /HTTP 404/);
  const t0 = Date.now();
  await rejectsInput(
    () => probe(`${base}/stall`, { timeoutMs: 300 }),
    /sent nothing for 0.3 s \(timed out\)/,
  );
  assert.ok(Date.now() - t0 < 5000);
  await rejectsInput(() => probe(`${base}/video.mp4`, { maxBytes: 1000 }), /over the 1000-byte limit/);
  await rejectsInput(() => probe(`${base}/chunked`, { maxBytes: 1000 }), /larger than the 1000-byte limit/);
  await rejectsInput(() => probe('http://127.0.0.1:1/x.mp4'), /cannot download/);
});

test('tool paths: a bad LONGSHOT_FFMPEG is named in the error', async () => {
  const saved = process.env.LONGSHOT_FFMPEG;
  process.env.LONGSHOT_FFMPEG = join(dir, 'no-ffmpeg-here');
  try {
    await rejectsInput(() => probe(good), /LONGSHOT_FFMPEG points to .*no-ffmpeg-here/);
  } finally {
    if (saved === undefined) delete process.env.LONGSHOT_FFMPEG;
    else process.env.LONGSHOT_FFMPEG = saved;
  }
  await rejectsInput(() => probe(good, { ffprobePath: '/nonexistent/ffprobe' }), /ffprobe path points to/);
});
