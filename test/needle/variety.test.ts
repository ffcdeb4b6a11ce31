import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Tokenizer } from '@huggingface/tokenizers';
import { HELDOUT_PHRASINGS } from '../../src/needle/heldout-phrasings.js';
import { describe, type Item } from '../../src/needle/items.js';
import { resizeRgb } from '../../src/needle/resample.js';
import {
  makeSample,
  mcqPrompt,
  type NeedleSample,
  NOT_SHOWN,
  TASKS,
  type Task,
} from '../../src/needle/tasks.js';
import { needleTokenizerConfig, needleTokenizerJson, needleVocabulary } from '../../src/needle/tokenizer.js';
import { TRAINING_VARIETY, varietyOptions } from '../../src/needle/variety.js';
import { Random } from '../../src/util/random.js';

const v2 = new Tokenizer(needleTokenizerJson(2) as never, needleTokenizerConfig() as never);
const UNK = v2.token_to_id('[UNK]');
const base = { frames: 40, fps: 2, width: 112, height: 112, needleFrames: 2 };

/** The held-out sentences with their slots filled as `makeSample` fills them (an order question either way round). */
const heldoutSentences = (s: NeedleSample): string[] => {
  const items = s.needles.map((n) => describe(n.item));
  const first = s.needles[0].item;
  const counted = items.find((d) => items.filter((e) => e === d).length === Number(s.answer)) ?? '';
  const slots =
    s.task === 'order'
      ? [
          { a: items[0], b: items[1] },
          { a: items[1], b: items[0] },
        ]
      : [{ shape: first.kind === 'shape' ? first.shape : '', item: counted }];
  return slots.flatMap((v) =>
    HELDOUT_PHRASINGS[s.task].map((t) =>
      t.replace(/\{(\w+)\}/g, (_, k: string) => (v as Record<string, string>)[k]),
    ),
  );
};

test('tokenizer v2 ignores case, knows both spellings and question words, and keeps A–D as answer letters', () => {
  const ids = (t: string) => v2.encode(t).ids;
  assert.deepEqual(ids('WHAT COLOR WAS THE STAR?'), ids('what color was the star?'));
  for (const w of [
    'what',
    'which',
    'how',
    'color',
    'colour',
    'digit',
    'see',
    'in',
    'video',
    'clip',
    'shown',
    'not',
  ])
    assert.notEqual(v2.token_to_id(w), undefined, w);
  assert.equal(v2.encode('zqxjv').ids[0], UNK, 'an unknown word is [UNK]');
  for (const l of 'ABCD') assert.equal(v2.decode([v2.token_to_id(l)!]), l);
  // Version 1, the shipped models' tokenizer, is unchanged: case-sensitive, 100 words.
  assert.equal(needleVocabulary(1).length, 93);
  assert.ok(needleVocabulary(2).length > 300);
});

test('the reworded held-out sentences tokenize without [UNK] under tokenizer v2', () => {
  for (const t of Object.values(HELDOUT_PHRASINGS).flat()) {
    const ids = v2.encode(t.replace(/\{\w+\}/g, 'red circle')).ids;
    assert.ok(!ids.includes(UNK!), t);
  }
});

test('training wordings never repeat a held-out sentence and always name the asked item', () => {
  for (let i = 0; i < 300; i++) {
    const task = TASKS[i % TASKS.length];
    const s = makeSample(500 + i, 'x', { ...base, task, phrasing: 'varied', openAnswers: true });
    const q = s.question.toLowerCase().replace(/[?.]$/, '');
    for (const h of heldoutSentences(s)) assert.notEqual(q, h.toLowerCase().replace(/[?.]$/, ''), s.question);
    if (task === 'color') {
      const shape = (s.needles[0].item as Extract<Item, { kind: 'shape' }>).shape;
      assert.ok(q.includes(shape), s.question);
    }
    // The wording draws from its own stream: the video and answer are the generator's.
    const plain = makeSample(500 + i, 'x', { ...base, task, openAnswers: true });
    assert.deepEqual({ ...s, question: '' }, { ...plain, question: '' });
  }
});

test('a reworded question is one of the held-out sentences', () => {
  for (let i = 0; i < 60; i++) {
    const s = makeSample(900 + i, 'x', { ...base, task: TASKS[i % TASKS.length], phrasing: 'reworded' });
    assert.ok(heldoutSentences(s).includes(s.question), s.question);
  }
});

test('an unanswerable question is about something the video never shows, and its answer says so', () => {
  const tasks: Task[] = ['color', 'word', 'digit', 'count'];
  for (let i = 0; i < 200; i++) {
    const task = tasks[i % tasks.length];
    const s = makeSample(3000 + i, 'x', { ...base, task, openAnswers: true, unanswerable: true });
    assert.equal(s.answer, task === 'count' ? '0' : NOT_SHOWN);
    assert.equal(s.options['ABCD'.indexOf(s.answerLetter)], s.answer);
    assert.ok(mcqPrompt(s).includes(`${s.answerLetter}. ${s.answer}`));
    assert.ok(s.needles.length >= 1, 'something is shown');
    const kinds = s.needles.map((n) => n.item.kind);
    if (task === 'word' || task === 'digit') assert.ok(!kinds.includes(task), s.question);
    if (task === 'color') {
      const asked = s.question.match(/the (\w+)\?$/)![1];
      assert.ok(!s.needles.some((n) => n.item.kind === 'shape' && n.item.shape === asked), s.question);
    }
    if (task === 'count') {
      const asked = s.question.replace(/^How many times did an? /, '').replace(/ appear\?$/, '');
      assert.ok(!s.needles.some((n) => describe(n.item) === asked), s.question);
    }
  }
  assert.throws(
    () => makeSample(1, 'x', { ...base, task: 'order', openAnswers: true, unanswerable: true }),
    RangeError,
  );
  assert.throws(() => makeSample(1, 'x', { ...base, task: 'color', unanswerable: true }), RangeError);
});

test('the training variety keeps every needle duration and frame size within what the video holds', () => {
  const r = new Random(11);
  for (let i = 0; i < 200; i++) {
    const frames = r.pick([16, 24, 64, 256, 1024]);
    const task = r.pick(TASKS);
    const o = varietyOptions(r, TRAINING_VARIETY, frames, task, 25);
    if (frames > 128)
      assert.ok(o.width * o.height <= 176 * 144, `${o.width}x${o.height} at ${frames} frames`);
    const s = makeSample(i, 'x', o); // throws if the needles do not fit
    assert.equal(s.width, o.width);
    if (o.unanswerable) assert.notEqual(task, 'order');
  }
});

test('resizeRgb keeps a flat colour, averages a fine checker and returns a same-size frame as it is', () => {
  const w = 64;
  const h = 48;
  const flat = new Uint8Array(w * h * 3).map((_, i) => [200, 40, 90][i % 3]);
  const out = resizeRgb(flat, w, h, 16, 16);
  assert.equal(out.length, 16 * 16 * 3);
  assert.ok(out.every((v, i) => v === [200, 40, 90][i % 3]));
  const checker = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) checker.fill((x + y) % 2 ? 255 : 0, (y * w + x) * 3, (y * w + x) * 3 + 3);
  const grey = resizeRgb(checker, w, h, 16, 12);
  assert.ok(
    grey.every((v) => Math.abs(v - 127.5) < 8),
    `${Math.min(...grey)}..${Math.max(...grey)}`,
  );
  assert.equal(resizeRgb(flat, w, h, w, h), flat);
});
