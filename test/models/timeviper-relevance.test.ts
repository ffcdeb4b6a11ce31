/**
 * TimeViper's relevance (models/timeviper/relevance.ts) on stage traces worked by hand: which original tokens
 * keep their worth, and how a TransV stage shares the count of its dropped tokens by their transfer mass.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { tokenWorth } from '../../src/models/timeviper/relevance.js';

describe('TimeViper token worth', () => {
  it('is flat without stages', () => {
    assert.deepEqual([...tokenWorth(4, [])], [1, 1, 1, 1]);
  });

  it('follows kept positions through stages back to the original tokens (drop only)', () => {
    // 6 tokens; stage 0 keeps positions 0, 2, 5 (tokens 0, 2, 5); stage 1 keeps its position 2 (token 5).
    const w = tokenWorth(6, [
      { kept: [0, 2, 5], transfer: null },
      { kept: [2], transfer: null },
    ]);
    assert.deepEqual([...w], [0, 0, 0, 0, 0, 1]);
  });

  it('shares a TransV stage’s dropped count by its transfer mass', () => {
    // Stage 0 keeps tokens 1, 3 and drops 0, 2 with mass 3 : 1 (of 2 dropped tokens) → 1.5 and 0.5.
    // Stage 1 keeps its position 1 (token 3) and drops token 1 with all of its transfer.
    const w = tokenWorth(4, [
      { kept: [1, 3], transfer: [3, 1] },
      { kept: [1], transfer: [2] },
    ]);
    assert.deepEqual([...w], [1.5, 1, 0.5, 1]);
    assert.equal(
      w.reduce((a, b) => a + b, 0),
      4,
    );
  });

  it('refuses a transfer that does not match the dropped tokens', () => {
    assert.throws(
      () => tokenWorth(4, [{ kept: [0], transfer: [1, 1] }]),
      /transferred 2 tokens but dropped 3/,
    );
  });
});
