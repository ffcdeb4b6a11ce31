import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  exactMatch,
  extractChoice,
  extractTimeSpan,
  firstLetter,
  mmmuChoice,
  mvbenchChoice,
  vambaChoice,
  vnbenchChoice,
} from '../../src/eval/answers.js';

test('lmms-eval letter extraction: forms and their ranks', () => {
  const cases: Array<[string, string]> = [
    ['B', 'B'],
    ['B.', 'B'],
    ['(C) red', 'C'],
    ['C. red star', 'C'],
    ['The answer is D.', 'D'],
    ['I think the answer is (A)', 'A'],
    // A standalone letter at the start (rank 10) beats one at the end (9), even when it is an article.
    ['A red star appeared, so B', 'A'],
    ['red', ''],
    ['Option B: the word apple', 'B'],
  ];
  for (const [text, want] of cases) assert.equal(extractChoice(text), want, text);
});

test("Vamba's rule takes the first letter after the answer marker", () => {
  assert.equal(vambaChoice('The answer is C, the red star'), 'C');
  assert.equal(vambaChoice('Answer: (b)'), 'B');
  assert.equal(vambaChoice('D. apple'), 'D');
  // The reference's quirk: without a marker, the first alphabetic character wins even if it is a word.
  assert.equal(vambaChoice('  blue'), 'B');
});

test('short answers match after normalisation only', () => {
  assert.ok(exactMatch('Red.', 'red'));
  assert.ok(exactMatch('the  red star', 'red star'));
  assert.ok(!exactMatch('red star', 'red square'));
  assert.ok(exactMatch('3', '3'));
});

test('the per-benchmark parsers on the awkward answers their official scripts handle', () => {
  // lmms-eval's old rule: prefixes stripped, then the first capital letter anywhere.
  assert.equal(firstLetter('The best answer is: (C) the cat'), 'C');
  assert.equal(firstLetter('I think it is B'), 'B'); // not a choice letter: "I" is outside A–D
  assert.equal(firstLetter('there is no way to tell what happens in this clip from these frames'), '');
  // MVBench: a leading "X." or "(X)" wins over a later standalone letter.
  assert.equal(mvbenchChoice('C. A cat walks'), 'C');
  assert.equal(mvbenchChoice('It is A'), 'A');
  // MMMU: "(X)" beats "X "; of several the last written wins; long answers may name the option.
  assert.equal(mmmuChoice('(A) or maybe (C)', ['x', 'y', 'z']), 'C');
  assert.equal(mmmuChoice('B because', ['x', 'y', 'z']), 'B');
  assert.equal(mmmuChoice('the man in the video clearly picks up the red cup', ['red cup', 'blue hat']), 'A');
  assert.equal(mmmuChoice('no idea', ['red cup', 'blue hat']), '');
  // VNBench eval.py: before the first ".", the first of A, B, C, D present (in that order).
  assert.equal(vnbenchChoice('B. Alice'), 'B');
  assert.equal(vnbenchChoice('Answer: B'), 'A');
  assert.equal(vnbenchChoice('The secret word is Dave'), 'D');
  // Charades-STA times: ranges, "to", clock times, reversed pairs, and nothing.
  assert.deepEqual(extractTimeSpan('The event happens in 24.3 - 30.4 seconds.'), [24.3, 30.4]);
  assert.deepEqual(extractTimeSpan('from 12 to 7.5 seconds'), [7.5, 12]);
  assert.deepEqual(extractTimeSpan('It starts at 01:05 and ends at 1:10:00'), [65, 4200]);
  assert.deepEqual(extractTimeSpan('between 3s - 5s'), [3, 5]);
  assert.equal(extractTimeSpan('I do not know'), null);
});
