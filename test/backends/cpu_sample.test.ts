// Sampling: the documented rule, seeded reproducibility, and empirical frequencies against softmax.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import * as ops from '../../src/runtime/ops.js';
import { randn, rng, seeded } from '../helpers.js';

const cpu = cpuBackend();

test('sampling: greedy, ties, top-k, repetition penalty follow the documented rule', async () => {
  const logits = ops.tensor(cpu, [1, 3, 2, 3, -1], [1, 5]);
  assert.deepEqual(await ops.sample(logits, new Float32Array([0.9]), { temperature: 0 }).toArray(), [1]);
  assert.deepEqual(await ops.sample(logits, new Float32Array([0.99]), { topK: 1 }).toArray(), [1]);
  // Candidates by descending logit: ids 1, 3 (tie → lower first), 2, 0, 4. With top-k 2 the two kept have
  // probability 0.5 each: u < 0.5 picks id 1, u ≥ 0.5 picks id 3.
  assert.deepEqual(await ops.sample(logits, new Float32Array([0.49]), { topK: 2 }).toArray(), [1]);
  assert.deepEqual(await ops.sample(logits, new Float32Array([0.51]), { topK: 2 }).toArray(), [3]);
  // Repetition penalty 3 on id 1 (logit 3 → 1) makes id 3 the argmax; on a negative logit it multiplies.
  const prev = ops.tensor(cpu, new Int32Array([1, -1]), [1, 2], 'i32');
  const greedy = { temperature: 0, repetitionPenalty: 3, previous: prev };
  assert.deepEqual(await ops.sample(logits, new Float32Array([0]), greedy).toArray(), [3]);
  const neg = ops.tensor(cpu, [-1, -1.5], [1, 2]);
  const prev0 = ops.tensor(cpu, new Int32Array([0]), [1, 1], 'i32');
  // −1·2 = −2 < −1.5, so id 1 wins.
  assert.deepEqual(
    await ops
      .sample(neg, new Float32Array([0]), { temperature: 0, repetitionPenalty: 2, previous: prev0 })
      .toArray(),
    [1],
  );
  assert.throws(() => ops.sample(logits, new Float32Array(2)), /2 uniforms for 1 rows/);
});

/** The kept distribution written from the rule: sort, top-k, softmax(l/T), top-p prefix, renormalise. */
function keptProbs(
  logits: Float32Array,
  temperature: number,
  topK: number,
  topP: number,
): Map<number, number> {
  const order = [...logits.keys()].sort((a, b) => logits[b] - logits[a] || a - b);
  const k = topK > 0 ? Math.min(topK, order.length) : order.length;
  const ids = order.slice(0, k);
  const m = logits[ids[0]] / temperature;
  let p = ids.map((i) => Math.exp(logits[i] / temperature - m));
  const z = p.reduce((a, b) => a + b, 0);
  p = p.map((v) => v / z);
  let keep = ids.length;
  if (topP < 1) {
    let acc = 0;
    for (let i = 0; i < ids.length; i++) {
      acc += p[i];
      if (acc >= topP) {
        keep = i + 1;
        break;
      }
    }
  }
  const z2 = p.slice(0, keep).reduce((a, b) => a + b, 0);
  return new Map(ids.slice(0, keep).map((id, i) => [id, p[i] / z2]));
}

test(
  'sampling: empirical frequencies of seeded draws match the kept softmax probabilities',
  seeded(async (r) => {
    const vocab = 12;
    const lv = randn(vocab, r, -2, 2);
    const draws = 4000;
    for (const [temperature, topK, topP] of [
      [1, 0, 1],
      [0.7, 5, 1],
      [1.3, 0, 0.8],
      [1, 6, 0.9],
    ]) {
      // One row per draw, so a single call samples them all.
      const logits = ops.tensor(
        cpu,
        Float32Array.from({ length: draws * vocab }, (_, i) => lv[i % vocab]),
        [draws, vocab],
      );
      const u = Float32Array.from({ length: draws }, r);
      const ids = await ops.sample(logits, u, { temperature, topK, topP }).toArray();
      const expect = keptProbs(lv, temperature, topK, topP);
      const counts = new Map<number, number>();
      for (const id of ids) counts.set(id, (counts.get(id) ?? 0) + 1);
      for (const id of counts.keys())
        assert.ok(expect.has(id), `id ${id} outside the kept set (T ${temperature} k ${topK} p ${topP})`);
      for (const [id, p] of expect) {
        const f = (counts.get(id) ?? 0) / draws;
        // 5 standard deviations of a binomial frequency (false alarm ~1e-6 per check).
        const bound = 5 * Math.sqrt((p * (1 - p)) / draws) + 1e-9;
        assert.ok(
          Math.abs(f - p) <= bound,
          `id ${id}: frequency ${f} vs probability ${p.toFixed(4)} (T ${temperature} k ${topK} p ${topP})`,
        );
      }
    }
  }),
);

test('sampling: the same seed gives the same ids', async () => {
  const r = rng(1234);
  const logits = ops.tensor(cpu, randn(3 * 50, r, -3, 3), [3, 50]);
  const draw = async (seed: number) => {
    const u = rng(seed);
    return ops
      .sample(logits, Float32Array.from({ length: 3 }, u), { temperature: 0.9, topK: 20, topP: 0.95 })
      .toArray();
  };
  assert.deepEqual(await draw(7), await draw(7));
  const runs = await Promise.all([8, 9, 10, 11].map(draw));
  assert.ok(
    runs.some((ids) => ids.join() !== runs[0].join()),
    'different seeds vary',
  );
});
