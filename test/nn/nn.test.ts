// Building blocks: rotary tables against their formulas, SwiGLU against a float64 loop, and the KV-cache
// decoding path against one causal pass.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import { SelfAttention } from '../../src/nn/attention.js';
import { attentionLayers, HybridCache } from '../../src/nn/cache.js';
import { Linear } from '../../src/nn/linear.js';
import { GatedMLP } from '../../src/nn/mlp.js';
import { mrope, type RotaryTable, rope1d, rotaryTensors, visionRope2d } from '../../src/nn/rotary.js';
import * as ops from '../../src/runtime/ops.js';
import { assertCloseScaled, randn, rng } from '../helpers.js';

const cpu = cpuBackend();

/** A table's cos/sin as the CPU backend computes them. */
async function values(t: RotaryTable) {
  const { cos, sin } = rotaryTensors(cpu, t);
  return { cos: await cos.toArray(), sin: await sin.toArray() };
}

test('rotary tables: 1-D, M-RoPE sections and 2-D vision angles follow their formulas', async () => {
  const dim = 12;
  const theta = 10000;
  const inv = (j: number, d = dim) => theta ** (-(2 * j) / d);
  const rows: [number[], number[], number[]] = [
    [0, 3, 7],
    [1, 4, 9],
    [2, 5, 11],
  ];
  const section = [1, 2, 3] as const; // frequencies 0 | 1-2 | 3-5
  const m = await values(mrope(rows, dim, theta, section));
  for (let p = 0; p < 3; p++)
    for (let j = 0; j < dim / 2; j++) {
      const row = j < 1 ? 0 : j < 3 ? 1 : 2;
      const a = rows[row][p] * inv(j);
      for (const jj of [j, j + dim / 2]) {
        assert.ok(Math.abs(m.cos[p * dim + jj] - Math.cos(a)) < 1e-6);
        assert.ok(Math.abs(m.sin[p * dim + jj] - Math.sin(a)) < 1e-6);
      }
    }
  // Identical rows reduce M-RoPE to plain RoPE.
  const plain = await values(rope1d([5, 6], dim, theta));
  const same = await values(
    mrope(
      [
        [5, 6],
        [5, 6],
        [5, 6],
      ],
      dim,
      theta,
      section,
    ),
  );
  assert.deepEqual(same.cos, plain.cos);
  assert.deepEqual(same.sin, plain.sin);
  assert.throws(() => mrope(rows, dim, theta, [2, 2, 3]), RangeError);
  // Positions that are not one length, and a frequency reading a row that does not exist, are refused.
  assert.throws(
    () => ops.ropeTable(cpu, [[1, 2], [3]], new Float32Array(2), new Int32Array(2)),
    /one length/,
  );
  assert.throws(() => ops.ropeTable(cpu, [[1, 2]], new Float32Array(2), Int32Array.from([0, 1])), /rowOf/);
  // Vision: head 8 → frequencies of a 4-dim rotary (2 of them), rows for the first half, columns after.
  const v = await values(visionRope2d([2], [5], 8));
  const want = [2 * inv(0, 4), 2 * inv(1, 4), 5 * inv(0, 4), 5 * inv(1, 4)];
  for (let j = 0; j < 4; j++) {
    assert.ok(Math.abs(v.cos[j] - Math.cos(want[j])) < 1e-6);
    assert.ok(Math.abs(v.cos[j + 4] - Math.cos(want[j])) < 1e-6);
  }
});

test('M-RoPE with one or two sections reads the first rows, the same in both halves (transformers 5.17)', async () => {
  // Frequency j reads the row of the section it falls in; both halves of the rotated dims share the angle.
  // [1, 1] over dim 4: frequencies 0 | 1 read rows t | h (what transformers 5.17 computes for TRL's tiny
  // shape: test/models/qwen2vl-config-parity.test.ts); [2]: both read t.
  const theta = 10000;
  const rows: [number[], number[], number[]] = [
    [3, 8],
    [5, 13],
    [7, 21],
  ];
  for (const { section, rowOf } of [
    { section: [1, 1], rowOf: [0, 1] },
    { section: [2], rowOf: [0, 0] },
  ]) {
    const m = await values(mrope(rows, 4, theta, section));
    for (let p = 0; p < 2; p++)
      for (let c = 0; c < 4; c++) {
        const j = c % 2;
        const a = Math.fround(rows[rowOf[j]][p] * Math.fround(theta ** (-(2 * j) / 4)));
        assert.ok(Math.abs(m.cos[p * 4 + c] - Math.cos(a)) < 1e-6, `[${section}] cos ${p},${c}`);
        assert.ok(Math.abs(m.sin[p * 4 + c] - Math.sin(a)) < 1e-6, `[${section}] sin ${p},${c}`);
      }
  }
  assert.throws(() => mrope(rows, 4, theta, [1, 2]), /must add up to 2/);
  assert.throws(() => mrope(rows, 8, theta, [1, 1, 1, 1]), /1 to 3 sections/);
});

test('GatedMLP equals down(silu(gate·x) ⊙ up·x) in float64', async () => {
  const r = rng();
  const [n, h, f] = [2, 5, 7];
  const [x, g, u, d] = [randn(n * h, r), randn(f * h, r), randn(f * h, r), randn(h * f, r)];
  const mlp = new GatedMLP(
    new Linear(ops.tensor(cpu, g, [f, h])),
    new Linear(ops.tensor(cpu, u, [f, h])),
    new Linear(ops.tensor(cpu, d, [h, f])),
  );
  const got = await mlp.forward(ops.tensor(cpu, x, [n, h])).toArray();
  const want: number[] = [];
  for (let i = 0; i < n; i++) {
    const a: number[] = [];
    for (let k = 0; k < f; k++) {
      let gs = 0;
      let us = 0;
      for (let j = 0; j < h; j++) {
        gs += g[k * h + j] * x[i * h + j];
        us += u[k * h + j] * x[i * h + j];
      }
      a.push((gs / (1 + Math.exp(-gs))) * us);
    }
    for (let o = 0; o < h; o++) want.push(a.reduce((s, v, k) => s + v * d[o * f + k], 0));
  }
  // Outputs are sums that cancel to ~1e-3 of their terms: judge the error against the largest output.
  assertCloseScaled(got, want, 1e-5, 'GatedMLP');
});

test('KV cache: prefill + one-token steps equal one causal pass, across capacity growth', async () => {
  const r = rng();
  const c = { hiddenSize: 16, numHeads: 4, numKvHeads: 2, headDim: 8, qkvBias: true, oBias: false };
  const lin = (o: number, i: number, bias: boolean) =>
    new Linear(ops.tensor(cpu, randn(o * i, r), [o, i]), bias ? ops.tensor(cpu, randn(o, r), [o]) : null);
  const attn = new SelfAttention(
    c,
    lin(32, 16, true),
    lin(16, 16, true),
    lin(16, 16, true),
    lin(16, 32, false),
  );
  const n = 7;
  const xs = randn(n * 16, r);
  const positions = Array.from({ length: n }, (_, i) => i * 2 + 1);
  const ropeOf = (from: number, to: number) =>
    rotaryTensors(cpu, rope1d(positions.slice(from, to), 8, 10000));
  const full = await attn.forward(ops.tensor(cpu, xs, [n, 16]), { rope: ropeOf(0, n) }).toArray();

  const cache = new HybridCache(cpu, { layers: attentionLayers(1, 2, 8), dtype: 'f32', capacity: 2 });
  const parts: number[] = [];
  const run = async (from: number, to: number) => {
    const x = ops.tensor(cpu, xs.subarray(from * 16, to * 16), [to - from, 16]);
    parts.push(...(await attn.forward(x, { rope: ropeOf(from, to), cache: { cache, layer: 0 } }).toArray()));
    cache.commit(to - from);
  };
  await run(0, 3);
  for (let i = 3; i < n; i++) await run(i, i + 1);
  assert.equal(cache.length, n);
  assert.ok(cache.capacity >= n && cache.capacity === 8, `capacity ${cache.capacity}`);
  assertCloseScaled(parts, full, 1e-5, 'cached decoding');
  cache[Symbol.dispose]();
});
