import assert from 'node:assert/strict';
import { test } from 'node:test';
import { exactMatch, extractChoice, vambaChoice } from '../../src/eval/answers.js';

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
