// Attention against a float64 softmax(QKᵀ)V written per query here.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import { parallelCalls, warmUp } from '../../src/backends/cpu/pool.js';
import { bf16ToF32, f32ToBf16 } from '../../src/runtime/dtype.js';
import * as ops from '../../src/runtime/ops.js';
import { assertClose, assertCloseScaled, randint, randn, seeded } from '../helpers.js';

const cpu = cpuBackend();

interface Opts {
  batch: number;
  sq: number;
  skv: number;
  hq: number;
  hkv: number;
  d: number;
  dv: number;
  causal?: boolean;
  queryOffset?: number;
  kvLength?: number;
  segments?: number[];
  mask?: Float32Array | null;
  maskBatched?: boolean;
  /** Storage of q/k/v/out (the reference uses the rounded inputs). */
  dtype?: 'f32' | 'bf16';
}

function reference(q: Float32Array, k: Float32Array, v: Float32Array, o: Opts) {
  const { batch, sq, skv, hq, hkv, d, dv } = o;
  const kvLength = o.kvLength ?? skv;
  const off = o.queryOffset ?? 0;
  const out = new Float64Array(batch * sq * hq * dv);
  const w = new Float64Array(batch * hq * sq * kvLength);
  for (let b = 0; b < batch; b++)
    for (let h = 0; h < hq; h++) {
      const kh = Math.floor(h / (hq / hkv));
      for (let i = 0; i < sq; i++) {
        const visible: number[] = [];
        const scores: number[] = [];
        for (let j = 0; j < kvLength; j++) {
          if (o.causal && j > off + i) continue;
          if (o.segments) {
            const seg = (p: number) => o.segments!.findIndex((s, n) => p >= s && p < o.segments![n + 1]);
            if (seg(i) !== seg(j)) continue;
          }
          let dot = 0;
          for (let t = 0; t < d; t++)
            dot += q[((b * sq + i) * hq + h) * d + t] * k[((b * skv + j) * hkv + kh) * d + t];
          let s = dot / Math.sqrt(d);
          if (o.mask) s += o.mask[((o.maskBatched ? b : 0) * sq + i) * kvLength + j];
          visible.push(j);
          scores.push(s);
        }
        const m = Math.max(...scores);
        if (!visible.length || m === Number.NEGATIVE_INFINITY) continue; // nothing visible: zeros
        const e = scores.map((s) => Math.exp(s - m));
        const z = e.reduce((a, c) => a + c, 0);
        visible.forEach((j, n) => {
          const p = e[n] / z;
          w[((b * hq + h) * sq + i) * kvLength + j] = p;
          for (let t = 0; t < dv; t++)
            out[((b * sq + i) * hq + h) * dv + t] += p * v[((b * skv + j) * hkv + kh) * dv + t];
        });
      }
    }
  return { out, w };
}

async function check(o: Opts, r: () => number, what: string) {
  const { batch, sq, skv, hq, hkv, d, dv } = o;
  const dtype = o.dtype ?? 'f32';
  const stored = (x: Float32Array) => (dtype === 'bf16' ? x.map((z) => bf16ToF32(f32ToBf16(z))) : x);
  const q = stored(randn(batch * sq * hq * d, r, -2, 2));
  const k = stored(randn(batch * skv * hkv * d, r, -2, 2));
  const v = stored(randn(batch * skv * hkv * dv, r));
  const kvLength = o.kvLength ?? skv;
  const mask = o.mask ? ops.tensor(cpu, o.mask, [o.maskBatched ? batch : 1, sq, kvLength]) : null;
  const { out, weights } = ops.attention(
    ops.tensor(cpu, q, [batch, sq, hq, d], dtype),
    ops.tensor(cpu, k, [batch, skv, hkv, d], dtype),
    ops.tensor(cpu, v, [batch, skv, hkv, dv], dtype),
    {
      causal: o.causal,
      queryOffset: o.queryOffset,
      kvLength: o.kvLength,
      segments: o.segments,
      mask,
      returnWeights: true,
    },
  );
  const ref = reference(q, k, v, o);
  // bf16 output: one rounding to 8 significant bits. f32: outputs are averages that cancel towards zero,
  // so the f32 tolerance is relative to the largest.
  if (dtype === 'bf16') assertClose(await out.toArray(), ref.out, 4e-3, `${what} out`);
  else assertCloseScaled(await out.toArray(), ref.out, 1e-5, `${what} out`);
  assertClose(await weights!.toArray(), ref.w, 1e-5, `${what} weights`);
  return ref;
}

test(
  'attention: causal and not, GQA ratios 1/3/7, odd sizes',
  seeded(async (r) => {
    for (const ratio of [1, 3, 7])
      for (const causal of [false, true]) {
        const hkv = randint(r, 1, 2);
        const sq = randint(r, 1, 19);
        await check(
          {
            batch: randint(r, 1, 2),
            sq,
            skv: sq,
            hq: hkv * ratio,
            hkv,
            d: randint(r, 3, 17),
            dv: randint(r, 2, 9),
            causal,
          },
          r,
          `ratio ${ratio} causal ${causal}`,
        );
      }
  }),
);

test(
  'attention: KV cache (queryOffset + kvLength < skv), single-token decode',
  seeded(async (r) => {
    const skv = 24;
    const off = randint(r, 0, 10);
    const sq = randint(r, 1, 9);
    await check(
      {
        batch: 2,
        sq,
        skv,
        hq: 6,
        hkv: 2,
        d: 8,
        dv: 8,
        causal: true,
        queryOffset: off,
        kvLength: off + sq + randint(r, 0, 3),
      },
      r,
      'prefill into cache',
    );
    await check(
      { batch: 1, sq: 1, skv, hq: 7, hkv: 1, d: 16, dv: 16, causal: true, queryOffset: 12, kvLength: 13 },
      r,
      'decode',
    );
    assert.throws(
      () =>
        ops.attention(
          ops.zeros(cpu, [1, 4, 2, 8]),
          ops.zeros(cpu, [1, 6, 2, 8]),
          ops.zeros(cpu, [1, 6, 2, 8]),
          { causal: true, queryOffset: 3 },
        ),
      /exceed 6 keys/,
    );
  }),
);

test(
  'attention: additive masks (shared and per batch), fully masked rows give zeros',
  seeded(async (r) => {
    const [batch, sq, skv] = [2, 5, 7];
    for (const maskBatched of [false, true]) {
      const mask = randn((maskBatched ? batch : 1) * sq * skv, r, -3, 1);
      for (let j = 0; j < skv; j++) mask[1 * skv + j] = Number.NEGATIVE_INFINITY; // query 1 sees nothing
      mask[3 * skv + 2] = Number.NEGATIVE_INFINITY;
      const ref = await check(
        { batch, sq, skv, hq: 3, hkv: 1, d: 5, dv: 4, mask, maskBatched },
        r,
        `mask batched ${maskBatched}`,
      );
      assert.ok(ref.out.subarray(1 * 3 * 4, 2 * 3 * 4).every((x) => x === 0));
    }
    assert.throws(
      () =>
        ops.attention(
          ops.zeros(cpu, [1, 2, 1, 4]),
          ops.zeros(cpu, [1, 3, 1, 4]),
          ops.zeros(cpu, [1, 3, 1, 4]),
          { mask: ops.zeros(cpu, [2, 4]) },
        ),
      /mask f32 \[2, 4\] must be f32/,
    );
  }),
);

test(
  'attention: block-diagonal segments (vision windows)',
  seeded(async (r) => {
    const n = 23;
    const cuts = [0, randint(r, 1, 8), randint(r, 9, 15), n];
    await check(
      { batch: 1, sq: n, skv: n, hq: 4, hkv: 4, d: 8, dv: 8, segments: cuts },
      r,
      `segments ${cuts}`,
    );
    assert.throws(
      () =>
        ops.attention(
          ops.zeros(cpu, [1, 4, 1, 4]),
          ops.zeros(cpu, [1, 4, 1, 4]),
          ops.zeros(cpu, [1, 4, 1, 4]),
          { segments: [0, 3] },
        ),
      /segments/,
    );
  }),
);

test(
  'attention: bf16 storage (f32 softmax, weights in f32)',
  seeded(async (r) => {
    await check(
      { batch: 2, sq: 11, skv: 11, hq: 6, hkv: 2, d: 16, dv: 8, causal: true, dtype: 'bf16' },
      r,
      'bf16',
    );
  }),
);

test(
  'attention: long causal prefill on the worker pool',
  seeded(async (r) => {
    const threads = await warmUp();
    const before = parallelCalls();
    await check({ batch: 1, sq: 150, skv: 150, hq: 6, hkv: 2, d: 32, dv: 32, causal: true }, r, 'long');
    if (threads > 1) assert.ok(parallelCalls() > before, 'split across threads');
  }),
);
