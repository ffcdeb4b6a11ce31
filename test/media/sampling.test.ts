import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InputError } from '../../src/errors.js';
import { boundEdges, getResizeOutputImageSize } from '../../src/media/resize.js';
import {
  clipFrames,
  qwenFrameCount,
  roundHalfEven,
  sampleClip,
  sampleIndices,
} from '../../src/media/sampling.js';

// Fixtures below were computed with numpy running the reference code (Vamba train/data.py
// get_frame_indices "middle"; qwen-vl-utils smart_nframes + linspace().round()).
test('Vamba "middle": middle frame of n equal intervals, padded with the last frame', () => {
  const t = (n: number, total: number) =>
    sampleIndices({ kind: 'middle', numFrames: n }, { frameCount: total, fps: 30 });
  assert.deepEqual(t(5, 30), [2, 8, 14, 20, 26]);
  assert.deepEqual(t(8, 100), [5, 18, 30, 43, 55, 68, 80, 93]);
  assert.deepEqual(t(7, 1000), [70, 213, 356, 499, 642, 785, 928]);
  assert.deepEqual(t(4, 3), [0, 1, 2, 2]);
  assert.deepEqual(
    t(16, 108000),
    [
      3374, 10124, 16874, 23624, 30374, 37124, 43874, 50624, 57374, 64124, 70874, 77624, 84374, 91124, 97874,
      104624,
    ],
  );
});

test('Vamba eval uniform: midpoints of linspace(0, total, n+1); all frames when n ≥ total', () => {
  const t = (n: number, total: number) =>
    sampleIndices({ kind: 'uniform', numFrames: n }, { frameCount: total, fps: 30 });
  // Formula: s_i = floor(i·total/n) (exact here), index = (s_i + s_{i+1}) // 2.
  for (const [n, total] of [
    [4, 100],
    [8, 64],
    [512, 108000],
  ]) {
    const s = Array.from({ length: n + 1 }, (_, i) => Math.floor((i * total) / n));
    assert.deepEqual(
      t(n, total),
      Array.from({ length: n }, (_, i) => Math.floor((s[i] + s[i + 1]) / 2)),
    );
  }
  assert.deepEqual(t(10, 3), [0, 1, 2]);
  assert.deepEqual(t(3, 10), [1, 4, 8]); // splits 0,3,6,10
});

test('qwen-vl-utils fps sampling: smart_nframes counts and rounded linspace indices', () => {
  assert.equal(qwenFrameCount(30, 10), 6); // 3 s at 2 fps
  assert.equal(qwenFrameCount(301, 29.97), 20); // 20.08 → even floor
  assert.equal(qwenFrameCount(108000, 30), 768); // capped
  assert.equal(qwenFrameCount(50, 25), 4); // raised to FPS_MIN_FRAMES
  assert.equal(qwenFrameCount(3, 30), 2); // max_frames = floor(min(768, 3)/2)·2
  const idx = (total: number, fps: number) => sampleIndices({ kind: 'fps' }, { frameCount: total, fps });
  assert.deepEqual(idx(30, 10), [0, 6, 12, 17, 23, 29]);
  assert.deepEqual(idx(50, 25), [0, 16, 33, 49]);
  const long = idx(108000, 30);
  assert.equal(long.length, 768);
  assert.deepEqual(long.slice(0, 6), [0, 141, 282, 422, 563, 704]);
  assert.deepEqual(long.slice(-3), [107717, 107858, 107999]);
  assert.equal(
    long.reduce((a, b) => a + b, 0),
    41471613,
  );
  const withN = sampleIndices({ kind: 'nframes', numFrames: 5 }, { frameCount: 30, fps: 10 });
  assert.equal(withN.length, 4); // round(5/2)·2 = 4 (half to even)
  assert.throws(() => sampleIndices({ kind: 'fps' }, { frameCount: 1, fps: 10 }), InputError);
});

test('TimeViper first-K-seconds: 1 fps from the start, truncated, padded to ×4, uniform fallback', () => {
  const t = (total: number, fps: number, opts = {}) =>
    sampleIndices({ kind: 'first-seconds', ...opts }, { frameCount: total, fps });
  // 1 hour at 30 fps: frames 0, 30, 60, … — the first 256 (the first 256 s).
  const hour = t(108000, 30);
  assert.equal(hour.length, 256);
  assert.deepEqual(
    hour,
    Array.from({ length: 256 }, (_, i) => 30 * i),
  );
  // 40 s at 25 fps: 40 frames → padded to 40 (already ×4); 42 s → 42 → 44 with the last repeated.
  assert.deepEqual(
    t(1000, 25),
    Array.from({ length: 40 }, (_, i) => 25 * i),
  );
  const padded = t(1050, 25);
  assert.equal(padded.length, 44);
  assert.deepEqual(padded.slice(-3), [1025, 1025, 1025]);
  // 29.97 fps: round(i·29.97) half to even.
  assert.deepEqual(t(3000, 29.97, { maxFrames: 4, minFrames: 1 }), [0, 30, 60, 90]);
  // 10 s only: 10 frames < 32 → 32 uniform frames instead.
  assert.deepEqual(
    t(300, 30),
    sampleIndices({ kind: 'uniform', numFrames: 32 }, { frameCount: 300, fps: 30 }),
  );
});

test('every frame, explicit indices, and bad arguments', () => {
  assert.deepEqual(sampleIndices({ kind: 'all' }, { frameCount: 4, fps: 1 }), [0, 1, 2, 3]);
  assert.deepEqual(
    sampleIndices({ kind: 'indices', indices: [1, 1, 3] }, { frameCount: 4, fps: 1 }),
    [1, 1, 3],
  );
  assert.throws(
    () => sampleIndices({ kind: 'indices', indices: [3, 1] }, { frameCount: 4, fps: 1 }),
    /non-decreasing/,
  );
  assert.throws(() => sampleIndices({ kind: 'indices', indices: [4] }, { frameCount: 4, fps: 1 }), /outside/);
  assert.throws(() => sampleIndices({ kind: 'middle', numFrames: 0 }, { frameCount: 4, fps: 1 }), InputError);
  assert.throws(() => sampleIndices({ kind: 'middle', numFrames: 2 }, { frameCount: 0, fps: 1 }), InputError);
});

test('Python rounding: halves to even', () => {
  assert.deepEqual([0.5, 1.5, 2.5, -0.5, -1.5, 2.4, 2.6].map(roundHalfEven), [0, 2, 2, -0, -2, 2, 3]);
});

test('Vamba pre-resize (get_resize_output_image_size)', () => {
  // Worked example from the Vamba notes: 1280×720 at eval settings (256/480) → 480×270.
  assert.deepEqual(getResizeOutputImageSize(720, 1280, 256, 480), [270, 480]);
  // Portrait: the height is the long side; width = int(640 · 9/16).
  assert.deepEqual(getResizeOutputImageSize(1280, 720, 256, 640), [640, 360]);
  // Thin: the short side is raised to 256 (aspect changes); 3000×100 → 640×int(640/30)=21 → 640×256.
  assert.deepEqual(getResizeOutputImageSize(100, 3000, 256, 640), [256, 640]);
  // Small: never upscaled except the shortest-edge floor.
  assert.deepEqual(getResizeOutputImageSize(300, 400, 256, 640), [300, 400]);
  assert.deepEqual(getResizeOutputImageSize(100, 200, 256, 640), [256, 256]);
  assert.deepEqual(getResizeOutputImageSize(97, 61, null, null), [97, 61]);
  assert.deepEqual(boundEdges(256, 480)({ width: 1920, height: 1080 }), { width: 480, height: 270 });
});

test('a clip bounds the frames as MVBench does (round(start·fps) … min(round(end·fps), last)), then the policy samples inside', () => {
  const timing = { frameCount: 100, fps: 10 };
  // 2.0–4.0 s → frames 20…40 (21 frames); uniform 4 of 21: linspace(0, 21, 5) truncated = 0, 5, 10, 15, 21,
  // midpoints 2, 7, 12, 18 → shifted by 20.
  assert.deepEqual(clipFrames({ startSec: 2, endSec: 4 }, timing), { first: 20, count: 21 });
  assert.deepEqual(
    sampleClip({ kind: 'uniform', numFrames: 4 }, timing, { startSec: 2, endSec: 4 }),
    [22, 27, 32, 38],
  );
  // Past the end: cut at the last frame (99): 95…99.
  assert.deepEqual(sampleClip({ kind: 'all' }, timing, { startSec: 9.5, endSec: 20 }), [95, 96, 97, 98, 99]);
  // No clip: the whole video.
  assert.deepEqual(
    sampleClip({ kind: 'uniform', numFrames: 2 }, timing),
    sampleIndices({ kind: 'uniform', numFrames: 2 }, timing),
  );
  assert.throws(
    () => clipFrames({ startSec: 12, endSec: 20 }, timing),
    (e: Error) => e instanceof InputError && /after the video ends \(10\.00 s\)/.test(e.message),
  );
  assert.throws(() => clipFrames({ startSec: 3, endSec: 3 }, timing), /0 ≤ start < end/);
  assert.throws(() => clipFrames({ startSec: -1, endSec: 3 }, timing), /0 ≤ start < end/);
});
