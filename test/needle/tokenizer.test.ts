import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Tokenizer } from '@huggingface/tokenizers';
import { makeSample, mcqPrompt, TASKS } from '../../src/needle/tasks.js';
import { needleTokenizerConfig, needleTokenizerJson, SPECIAL_TOKENS } from '../../src/needle/tokenizer.js';

const tok = new Tokenizer(needleTokenizerJson() as never, needleTokenizerConfig() as never);
const unk = tok.token_to_id('[UNK]');

test('every prompt, question, option and answer the task emits tokenizes without [UNK] and round-trips', () => {
  for (let i = 0; i < 300; i++) {
    const s = makeSample(1000 + i, 'x', {
      frames: 20,
      fps: 2,
      width: 112,
      height: 112,
      needleFrames: 2,
      task: TASKS[i % TASKS.length],
    });
    for (const text of [s.question, mcqPrompt(s), s.answer, ...s.options]) {
      const ids = tok.encode(text).ids;
      assert.ok(!ids.includes(unk!), `[UNK] in ${JSON.stringify(text)}`);
      // Decoding rejoins words with single spaces and re-attaches punctuation.
      assert.equal(
        tok.decode(ids).replace(/\s+/g, ' '),
        text.replace(/\s+/g, ' ').replace(/ ([?.,])/g, '$1'),
      );
    }
  }
});

test('special tokens keep Qwen roles and are single ids', () => {
  SPECIAL_TOKENS.forEach((t, i) => {
    assert.equal(tok.token_to_id(t), i);
  });
  const ids = tok.encode(
    '<|im_start|>user\n<|vision_start|><|vision_end|>Which word appeared?<|im_end|>',
  ).ids;
  assert.deepEqual(ids.slice(0, 4), [1, tok.token_to_id('user'), 3, 4]);
  assert.equal(ids[ids.length - 1], 2);
});
