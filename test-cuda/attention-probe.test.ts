// The attention probe (nn/attention-probe.ts: the answer's attention mass per video token) on CUDA, where
// ops.attentionMass runs its own kernel (native/cuda/attention_mass.cu), against the CPU backend, where it
// takes the attention op's softmax weights: Vamba's cross-attention shape (GQA, thousands of keys, a few
// query rows of which only the last counts), a self-attention cache with kvLength < skv and a key span inside
// it, plain multi-head attention with an odd head dim, and 32k keys.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AttentionProbe } from '../src/nn/attention-probe.js';
import { attentionMass } from '../src/runtime/ops.js';
import { assertClose } from '../test/helpers.js';
import { gpu, randomPair } from './helpers.js';

test('the CUDA backend has the attention-mass kernel (an addon built before it would fall back)', () => {
  assert.equal(typeof gpu.attentionMass, 'function');
});

for (const dtype of ['bf16', 'f32'] as const)
  for (const c of [
    { name: 'cross-attention', sq: 5, skv: 3001, kvLength: 3001, hq: 28, hkv: 4, d: 128, from: 0, to: 3001 },
    {
      name: 'cached self-attention',
      sq: 1,
      skv: 640,
      kvLength: 517,
      hq: 12,
      hkv: 2,
      d: 64,
      from: 37,
      to: 480,
    },
    {
      name: 'multi-head, head dim 80',
      sq: 2,
      skv: 300,
      kvLength: 300,
      hq: 6,
      hkv: 6,
      d: 80,
      from: 5,
      to: 299,
    },
    { name: '32k keys', sq: 1, skv: 32768, kvLength: 32768, hq: 28, hkv: 4, d: 128, from: 0, to: 32768 },
  ])
    test(`attention probe ${dtype}: ${c.name} matches the CPU`, async () => {
      const [gq, cq] = randomPair([1, c.sq, c.hq, c.d], dtype);
      const [gk, ck] = randomPair([1, c.skv, c.hkv, c.d], dtype);
      using g = new AttentionProbe(c.from, c.to);
      using r = new AttentionProbe(c.from, c.to);
      for (let step = 0; step < 2; step++) {
        g.record(gq, gk, c.kvLength);
        r.record(cq, ck, c.kvLength);
      }
      // Probabilities are computed in f32 from the same (bf16-rounded) inputs on both sides.
      const got = await g.read();
      assertClose(got, await r.read(), 1e-3, `${c.name} ${dtype}`, 1e-4);
      // Two steps of hq heads: each head's row sums to 1 over all valid keys, so the span holds ≤ 2·hq.
      const total = got.reduce((a, b) => a + b, 0);
      assert.ok(total <= 2 * c.hq * (1 + 1e-4), `mass ${total}`);
      if (c.from === 0 && c.to === c.kvLength) assert.ok(Math.abs(total - 2 * c.hq) < 2 * c.hq * 1e-4);
      for (const t of [gq, cq, gk, ck]) t.dispose();
    });

test('attentionMass refuses a key span outside the valid keys', () => {
  const [gq, cq] = randomPair([1, 1, 4, 64]);
  const [gk, ck] = randomPair([1, 10, 2, 64]);
  assert.throws(() => attentionMass(gq, gk, { kvLength: 8, from: 2, to: 9 }), /keys \[2, 9\) of 8 valid/);
  for (const t of [gq, cq, gk, ck]) t.dispose();
});
