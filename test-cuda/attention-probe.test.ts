// The attention probe (nn/attention-probe.ts: the answer's attention mass per video token, through the
// attention op's weights) on CUDA against the CPU backend: Vamba's cross-attention shape (GQA, thousands of
// keys, a few query rows of which only the last counts) and a self-attention cache with kvLength < skv.
import { test } from 'node:test';
import { AttentionProbe } from '../src/nn/attention-probe.js';
import { assertClose } from '../test/helpers.js';
import { randomPair } from './helpers.js';

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
  ])
    test(`attention probe ${dtype}: ${c.name} matches the CPU`, async () => {
      const [gq, cq] = randomPair([1, c.sq, c.hq, c.d], dtype);
      const [gk, ck] = randomPair([1, c.skv, c.hkv, c.d], dtype);
      const [gv, cv] = randomPair([1, c.skv, c.hkv, c.d], dtype);
      using g = new AttentionProbe(c.from, c.to);
      using r = new AttentionProbe(c.from, c.to);
      for (let step = 0; step < 2; step++) {
        g.record(gq, gk, gv, c.kvLength);
        r.record(cq, ck, cv, c.kvLength);
      }
      // Probabilities are computed in f32 from the same (bf16-rounded) inputs on both sides.
      assertClose(await g.read(), await r.read(), 1e-3, `${c.name} ${dtype}`, 1e-4);
      for (const t of [gq, cq, gk, ck, gv, cv]) t.dispose();
    });
