import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DType } from '../src/runtime/dtype.js';
import * as ops from '../src/runtime/ops.js';
import { pair, random, randomPair } from './helpers.js';

const SETTINGS = [
  { temperature: 0 },
  { temperature: 0.7 },
  { temperature: 1, topK: 5 },
  { temperature: 0.9, topP: 0.8 },
  { temperature: 1.3, topK: 40, topP: 0.95 },
  { temperature: 1, topK: 1 },
  { temperature: 0.8, topP: 0.5, repetitionPenalty: 1.3 },
];

test('sampling picks the same ids as the CPU backend for the same uniforms', async () => {
  for (const dtype of ['f32', 'bf16'] as DType[])
    for (const vocab of [37, 1000, 151_655])
      for (const s of SETTINGS) {
        const rows = vocab > 10_000 ? 2 : 16;
        const [gl, cl] = randomPair([rows, vocab], dtype, -8, 8);
        const prev = Int32Array.from({ length: rows * 9 }, (_, i) =>
          i % 9 === 8 ? -1 : Math.floor(random() * vocab),
        );
        const [gp, cp] = pair(prev, [rows, 9], 'i32');
        const uniforms = Float32Array.from({ length: rows }, () => random());
        const opts = { ...s, previous: s.repetitionPenalty ? gp : null };
        const g = await ops.sample(gl, uniforms, opts).toArray();
        const c = await ops
          .sample(cl, uniforms, { ...s, previous: s.repetitionPenalty ? cp : null })
          .toArray();
        assert.deepEqual(g, c, `${dtype} vocab ${vocab} ${JSON.stringify(s)}`);
      }
});

test('bf16 logits with many ties: ties go to the lower id like the CPU backend', async () => {
  const rows = 8;
  const vocab = 500;
  const host = Float32Array.from({ length: rows * vocab }, () => Math.round(random() * 6) / 2);
  const [gl, cl] = pair(host, [rows, vocab], 'bf16');
  for (const s of SETTINGS.slice(0, 6)) {
    const uniforms = Float32Array.from({ length: rows }, () => random());
    assert.deepEqual(
      await ops.sample(gl, uniforms, s).toArray(),
      await ops.sample(cl, uniforms, s).toArray(),
      JSON.stringify(s),
    );
  }
});
