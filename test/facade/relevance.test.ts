/**
 * Folding the attention mass per video token into per-frame relevance, on cases worked by hand; and the
 * whole path on the shipped models, judged by where the generator put the needle.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { frameRelevance, massPerGroup } from '../../src/facade/relevance.js';
import { VideoLM } from '../../src/facade/video-lm.js';
import type { NeedleSample } from '../../src/needle/tasks.js';
import { assertClose } from '../helpers.js';

describe('relevance', () => {
  it('sums the tokens of each temporal group', () => {
    assert.deepEqual(massPerGroup([1, 2, 3, 4, 5, 6], 3), [3, 7, 11]);
    assert.throws(() => massPerGroup([1, 2, 3], 2), /3 video tokens do not split into 2 groups/);
  });

  it('shares each group’s mass between the frames it covers and normalises to 1', () => {
    // Groups 1, 3 over 4 frames (2 per group): 0.5, 0.5, 1.5, 1.5 out of 4.
    const r = frameRelevance([1, 3], [0, 0.5, 1, 1.5]);
    assert.deepEqual(r.timestampsSec, [0, 0.5, 1, 1.5]);
    assertClose(r.scores, [0.125, 0.125, 0.375, 0.375], 1e-12);
    // An odd frame count (the last group holds one frame): 2/2, 2/2, 4 → 1, 1, 4 out of 6.
    assertClose(frameRelevance([2, 4], [0, 1, 2]).scores, [1 / 6, 1 / 6, 4 / 6], 1e-12);
  });

  it('gives zeros when nothing was recorded', () => {
    assert.deepEqual(frameRelevance([0, 0], [0, 1]).scores, [0, 0]);
  });
});

describe('relevance of the shipped tiny models on the example needle videos', () => {
  const questions: NeedleSample[] = readFileSync('examples/needle/questions.jsonl', 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  for (const model of ['models/needle-vamba-tiny', 'models/needle-qwen2vl-tiny'])
    it(`${model}: the answer looks most at the frames that show the needle`, async () => {
      using lm = await VideoLM.load(model);
      for (const q of questions.filter((x) => x.needles.length === 1)) {
        using video = await lm.encodeVideo(join('examples/needle', `${q.id}.mp4`));
        const r = await lm.chat([{ role: 'user', content: q.question }], { video, relevance: true }).result();
        const { timestampsSec: t, scores } = r.relevance!;
        assert.deepEqual(t, video.timestampsSec);
        assert.ok(Math.abs(scores.reduce((a, b) => a + b, 0) - 1) < 1e-6);
        const best = Math.max(...scores);
        const peak = t.filter((_, i) => scores[i] === best);
        const n = q.needles[0];
        assert.ok(
          peak.some((s) => s >= n.startSec && s <= n.endSec),
          `${q.id}: peak at ${peak} s, needle ${n.startSec}–${n.endSec} s`,
        );
        // Not asked for: not computed.
        const plain = await lm.chat([{ role: 'user', content: q.question }], { video }).result();
        assert.equal(plain.relevance, undefined);
        assert.equal(plain.text, r.text);
      }
    });
});
