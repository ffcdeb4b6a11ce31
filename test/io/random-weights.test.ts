/**
 * RandomWeights: a checkpoint stand-in that makes weights (for full-size benchmarks without a download).
 * Statistics are checked against the intended distribution, U(±std·√3), with float64 sums in the test.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import { RandomWeights } from '../../src/io/random-weights.js';

const be = cpuBackend();

async function values(src: RandomWeights, name: string, dtype: 'f32' | 'bf16' = 'f32') {
  const t = await src.loadTensor(be, name, { dtype });
  try {
    assert.equal(t.dtype, dtype);
    return { shape: t.shape, data: Float64Array.from(await t.toArray()) };
  } finally {
    t.dispose();
  }
}

function stats(v: Float64Array) {
  let s = 0;
  let s2 = 0;
  let max = 0;
  for (const x of v) {
    s += x;
    s2 += x * x;
    max = Math.max(max, Math.abs(x));
  }
  const mean = s / v.length;
  return { mean, std: Math.sqrt(s2 / v.length - mean * mean), max };
}

const specs = [
  { name: 'big.weight', shape: [1024, 2048] }, // ≥ 2^20 values: gathered from the device-side pool
  { name: 'small.weight', shape: [300, 70] }, // drawn on the host
  { name: 'layers.0.input_layernorm.weight', shape: [64] },
  { name: 'visual.merger.ln_q.bias', shape: [32] },
  { name: 'layers.0.q_proj.bias', shape: [64] },
  { name: 'layers.0.alpha', shape: [1] },
];

test('RandomWeights: names, shapes and the initialisation rules', async () => {
  const src = new RandomWeights(specs, {
    seed: 3,
    std: 0.05,
    special: (name) => (name.endsWith('.alpha') ? Float32Array.of(0.5) : null),
  });
  try {
    assert.deepEqual(
      src.names(),
      specs.map((s) => s.name),
    );
    assert.ok(src.has('small.weight') && !src.has('nope'));
    assert.deepEqual(src.info('big.weight').shape, [1024, 2048]);
    assert.throws(() => src.info('nope'), RangeError);

    const bound = 0.05 * Math.sqrt(3);
    for (const name of ['big.weight', 'small.weight']) {
      const { shape, data } = await values(src, name);
      assert.deepEqual(shape, specs.find((s) => s.name === name)!.shape);
      const s = stats(data);
      assert.ok(Math.abs(s.mean) < 0.002, `${name} mean ${s.mean}`);
      assert.ok(Math.abs(s.std - 0.05) < 0.0025, `${name} std ${s.std}`);
      assert.ok(s.max <= bound + 1e-7, `${name} max ${s.max}`);
    }
    assert.ok((await values(src, 'layers.0.input_layernorm.weight')).data.every((x) => x === 1));
    assert.ok((await values(src, 'visual.merger.ln_q.bias')).data.every((x) => x === 0));
    assert.ok((await values(src, 'layers.0.q_proj.bias')).data.every((x) => x === 0));
    assert.deepEqual([...(await values(src, 'layers.0.alpha')).data], [0.5]);
    // bf16 storage keeps the distribution.
    const b = stats((await values(src, 'big.weight', 'bf16')).data);
    assert.ok(Math.abs(b.std - 0.05) < 0.0025, `bf16 std ${b.std}`);
    const host = await src.read('small.weight');
    assert.equal(host.dtype, 'F32');
    assert.equal(host.data.length, 300 * 70);
  } finally {
    src[Symbol.dispose]();
  }
});

test('RandomWeights: one seed, one set of weights; another seed, others', async () => {
  const draw = async (seed: number) => {
    const src = new RandomWeights(specs, { seed });
    try {
      return [(await values(src, 'big.weight')).data, (await values(src, 'small.weight')).data];
    } finally {
      src[Symbol.dispose]();
    }
  };
  const [a1, a2] = await draw(7);
  const [b1, b2] = await draw(7);
  const [c1] = await draw(8);
  assert.deepEqual(a1, b1);
  assert.deepEqual(a2, b2);
  assert.ok(a1.some((x, i) => x !== c1[i]));
});
