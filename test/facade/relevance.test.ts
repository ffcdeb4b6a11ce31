/** Folding the attention mass per video token into per-frame relevance, on cases worked by hand. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { frameRelevance, massPerGroup } from '../../src/facade/relevance.js';
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
