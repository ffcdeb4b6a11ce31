import assert from 'node:assert/strict';
import { test } from 'node:test';
import { COLORS, describe } from '../../src/needle/items.js';
import { renderFrame } from '../../src/needle/render.js';
import { makeSample, mcqPrompt, TASKS } from '../../src/needle/tasks.js';

const opts = { frames: 24, fps: 2, width: 112, height: 112, needleFrames: 2 };

test('samples are deterministic from their seed and self-consistent for every task', () => {
  const seed0 = (Math.random() * 2 ** 31) | 0;
  for (let i = 0; i < 60; i++) {
    const seed = seed0 + i;
    const task = TASKS[i % TASKS.length];
    const s = makeSample(seed, `s${i}`, { ...opts, task });
    assert.deepEqual(makeSample(seed, `s${i}`, { ...opts, task }), s, 'same seed, same sample');
    assert.equal(s.task, task);
    assert.equal(s.options.length, 4);
    assert.equal(new Set(s.options).size, 4, `options distinct (seed ${seed})`);
    assert.equal(s.options['ABCD'.indexOf(s.answerLetter)], s.answer);
    // Needles sorted, inside the video, never overlapping, inside the frame.
    s.needles.forEach((n, j) => {
      assert.ok(
        n.startFrame >= 0 && n.endFrame < s.frames && n.endFrame - n.startFrame === opts.needleFrames - 1,
      );
      assert.ok(n.x >= 0 && n.y >= 0 && n.x + n.size <= s.width && n.y + n.size <= s.height);
      assert.equal(n.startSec, n.startFrame / s.fps);
      if (j) assert.ok(n.startFrame > s.needles[j - 1].endFrame, `needles overlap (seed ${seed})`);
    });
    if (task === 'count') {
      const target = s.question.replace(/^How many times did an? /, '').replace(/ appear\?$/, '');
      assert.equal(String(s.needles.filter((n) => describe(n.item) === target).length), s.answer);
    }
    if (task === 'order') assert.equal(s.answer, describe(s.needles[0].item));
    if (task === 'color') assert.equal(s.answer, (s.needles[0].item as { color: string }).color);
    assert.ok(mcqPrompt(s).includes(`${s.answerLetter}. ${s.answer}`));
  }
});

test('a colour needle is visible exactly on its frames', () => {
  const s = makeSample(7, 'c', { ...opts, task: 'color' });
  const n = s.needles[0];
  const want = COLORS[s.answer as keyof typeof COLORS];
  const cx = Math.floor(n.x + n.size / 2);
  const cy = Math.floor(n.y + n.size / 2);
  const at = (t: number) => {
    const d = renderFrame(s, t).data;
    const i = (cy * s.width + cx) * 3;
    return [d[i], d[i + 1], d[i + 2]];
  };
  for (let t = 0; t < s.frames; t++) {
    const px = at(t);
    const dist = Math.max(...px.map((v, k) => Math.abs(v - want[k])));
    if (t >= n.startFrame && t <= n.endFrame) assert.equal(dist, 0, `frame ${t} should show the needle`);
    else assert.ok(dist > 30, `frame ${t} shows a saturated ${s.answer} without a needle`);
  }
  // The card's border is black at its top-left corner.
  const d = renderFrame(s, n.startFrame).data;
  const i = (n.y * s.width + n.x) * 3;
  assert.deepEqual([d[i], d[i + 1], d[i + 2]], [0, 0, 0]);
});

test('impossible placements are refused', () => {
  assert.throws(
    () => makeSample(1, 'x', { ...opts, frames: 3, needleFrames: 2, task: 'order' }),
    /cannot hold 2 needles/,
  );
});
