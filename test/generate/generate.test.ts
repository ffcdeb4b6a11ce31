// generate() over a scripted model: greedy, stop tokens, length limit, seeded sampling, repetition
// penalty and streaming text that never splits a UTF-8 character.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import { InputError } from '../../src/errors.js';
import { generate, generateAll } from '../../src/generate/generate.js';
import type { CausalLM } from '../../src/generate/types.js';
import { StreamDecoder } from '../../src/io/stream-decoder.js';
import * as ops from '../../src/runtime/ops.js';
import { seededUniform } from '../../src/util/random.js';

const cpu = cpuBackend();

/** A model whose next logits depend only on the last token: logitsAfter(last) over a small vocab. */
function scripted(logitsAfter: (last: number) => number[]): CausalLM<number[]> & { fed: number[] } {
  const fed: number[] = [];
  const out = (last: number) => {
    const l = logitsAfter(last);
    return ops.tensor(cpu, l, [1, l.length]);
  };
  return {
    fed,
    prefill: (ids) => out(ids[ids.length - 1]),
    step: (t) => {
      fed.push(t);
      return out(t);
    },
  };
}

const V = 6;
const oneHot = (i: number, hi = 5, vocab = V) => Array.from({ length: vocab }, (_, j) => (j === i ? hi : 0));

test('greedy: follows the argmax chain, stops at a stop token (emitted) or at maxNewTokens', async () => {
  const lm = scripted((last) => oneHot((last + 1) % V)); // 0 → 1 → 2 → …
  const r = await generateAll(lm, [0], { stopTokens: [4], maxNewTokens: 10 });
  assert.deepEqual(r.tokens, [1, 2, 3, 4]);
  assert.equal(r.finishReason, 'stop');
  assert.deepEqual(lm.fed, [1, 2, 3]); // the stop token is never fed back
  const r2 = await generateAll(
    scripted((last) => oneHot((last + 1) % V)),
    [0],
    { maxNewTokens: 3 },
  );
  assert.deepEqual(r2.tokens, [1, 2, 3]);
  assert.equal(r2.finishReason, 'length');
});

test('sampling: each step draws the next seeded uniform and picks by cumulative softmax (float64 reference)', async () => {
  const logits = [2, 1, 0.5, 0, -1, 1.5];
  const lm = scripted(() => logits);
  const seed = 1234;
  const r = await generateAll(lm, [0], { doSample: true, temperature: 0.7, seed, maxNewTokens: 20 });
  // Reference: probabilities by descending logit, first cumulative sum above u · total.
  const u = seededUniform(seed);
  const order = logits.map((_, i) => i).sort((a, b) => logits[b] - logits[a] || a - b);
  const p = order.map((i) => Math.exp((logits[i] - logits[order[0]]) / 0.7));
  const total = p.reduce((a, b) => a + b, 0);
  const want = Array.from({ length: 20 }, () => {
    const target = u() * total;
    let acc = 0;
    for (let k = 0; k < p.length; k++) {
      acc += p[k];
      if (acc > target) return order[k];
    }
    return order[p.length - 1];
  });
  assert.deepEqual(r.tokens, want);
  assert.ok(new Set(r.tokens).size > 1, 'sampling should not be constant here');
  const again = await generateAll(
    scripted(() => logits),
    [0],
    { doSample: true, temperature: 0.7, seed, maxNewTokens: 20 },
  );
  assert.deepEqual(again.tokens, r.tokens, 'same seed, same tokens');
  // top-k 1 makes sampling greedy.
  const k1 = await generateAll(
    scripted(() => logits),
    [0],
    { doSample: true, topK: 1, seed, maxNewTokens: 5 },
  );
  assert.deepEqual(k1.tokens, [0, 0, 0, 0, 0]);
});

test('repetition penalty covers prompt and generated ids (HF: divide positive logits)', async () => {
  // Logits 4 (token 1) and 3 (token 2); a penalty of 2 halves a seen positive logit.
  const lm = () => scripted(() => [0, 4, 3, 0, 0, 0]);
  assert.deepEqual((await generateAll(lm(), [0], { maxNewTokens: 2 })).tokens, [1, 1]);
  // Prompt holds 1: 2 > 3 wins first; then both were seen: 4/2 = 2 > 3/2 = 1.5, so 1 again.
  const pen = await generateAll(lm(), [1], { maxNewTokens: 2, repetitionPenalty: 2, promptIds: [1] });
  assert.deepEqual(pen.tokens, [2, 1]);
  // Prompt without 1: 1 first, then 1 is penalised (2 < 3) and 2 wins, then both are: 1 again.
  const late = await generateAll(lm(), [0], { maxNewTokens: 3, repetitionPenalty: 2, promptIds: [0] });
  assert.deepEqual(late.tokens, [1, 2, 1]);
});

test('streaming: text pieces never split a multi-byte character and add up to the whole text', async () => {
  // Byte-level vocabulary: token i is one byte of "añ€😀".
  const bytes = [...new TextEncoder().encode('añ€😀')];
  const tok = {
    decode: (ids: readonly number[]) => new TextDecoder().decode(Uint8Array.from(ids.map((i) => bytes[i]))),
  };
  const lm = scripted((last) => oneHot(last + 1, 9, bytes.length));
  const pieces: string[] = [];
  for await (const t of generate(lm, [-1], { maxNewTokens: bytes.length, decoder: new StreamDecoder(tok) }))
    pieces.push(t.text);
  assert.equal(pieces.join(''), 'añ€😀');
  for (const p of pieces) assert.ok(!p.includes('\uFFFD'), `piece ${JSON.stringify(p)}`);
  assert.deepEqual(
    pieces.filter((p) => p),
    ['a', 'ñ', '€', '😀'],
  );
});

test('bad options are InputErrors', async () => {
  const lm = scripted(() => oneHot(1));
  for (const opts of [
    { maxNewTokens: 0 },
    { doSample: true, temperature: 0 },
    { topP: 0 },
    { repetitionPenalty: -1 },
  ])
    await assert.rejects(generateAll(lm, [0], opts), InputError);
});
