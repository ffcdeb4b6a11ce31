/** The timeline's top moments (web/src/timeline.ts) on cases worked by hand. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { topMoments } from '../../web/src/timeline.js';

describe('topMoments', () => {
  it('takes runs of equal scores as one moment, keeps local maxima, best first, seeking to their middle', () => {
    // Frames every 0.5 s over 4 s; pairs of frames share a score (one token group each).
    const r = {
      timestamps_sec: [0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5],
      scores: [0.1, 0.1, 0.05, 0.05, 0.5, 0.5, 0.2, 0.2],
    };
    // Runs: [0, 0.5] 0.1 (a maximum: its neighbour is lower), [1, 1.5] 0.05 (no), [2, 2.5] 0.5 (yes),
    // [3, 3.5] 0.2 (no: 0.5 before it). Middle of [2, 2.5] with 0.5 s frames: (2 + 2.5 + 0.5) / 2 = 2.5.
    assert.deepEqual(topMoments(r, 4, 4), [
      { start: 2, end: 2.5, score: 0.5, at: 2.5 },
      { start: 0, end: 0.5, score: 0.1, at: 0.5 },
    ]);
    assert.deepEqual(
      topMoments(r, 1, 4).map((m) => m.start),
      [2],
    );
  });

  it('finds nothing in an answer that recorded no attention', () => {
    assert.deepEqual(topMoments({ timestamps_sec: [0, 1], scores: [0, 0] }, 4, 2), []);
  });
});
