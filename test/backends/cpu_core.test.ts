// Core CPU-backend checks against float64 loops written here (the exhaustive op suite lives beside it).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import * as ops from '../../src/runtime/ops.js';
import { assertClose, randn, rng } from '../helpers.js';

const cpu = cpuBackend();

test('matmul: every transpose combination, batched and shared B, bias', async () => {
  const r = rng();
  for (const [transA, transB, bBatched] of [
    [false, false, true],
    [true, false, false],
    [false, true, false],
    [true, true, true],
  ] as const) {
    const [batch, m, n, k] = [3, 5, 7, 9];
    const av = randn(batch * m * k, r);
    const bv = randn((bBatched ? batch : 1) * n * k, r);
    const biasv = randn(n, r);
    const A = ops.tensor(cpu, av, transA ? [batch, k, m] : [batch, m, k]);
    const B = ops.tensor(
      cpu,
      bv,
      bBatched ? (transB ? [batch, n, k] : [batch, k, n]) : transB ? [n, k] : [k, n],
    );
    const bias = ops.tensor(cpu, biasv, [n]);
    const C = await ops.matmul(A, B, { transA, transB, bias, alpha: 0.5 }).toArray();
    const ref: number[] = [];
    for (let p = 0; p < batch; p++)
      for (let i = 0; i < m; i++)
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let t = 0; t < k; t++) {
            const a = transA ? av[p * m * k + t * m + i] : av[p * m * k + i * k + t];
            const bo = bBatched ? p * n * k : 0;
            const b = transB ? bv[bo + j * k + t] : bv[bo + t * n + j];
            s += a * b;
          }
          ref.push(0.5 * s + biasv[j]);
        }
    assertClose(C, ref, 1e-5, `transA=${transA} transB=${transB}`);
  }
});

/** Naive SSD recurrence in float64. */
function naiveSsd(
  x: Float32Array,
  dt: Float32Array,
  A: Float32Array,
  B: Float32Array,
  C: Float32Array,
  D: Float32Array,
  L: number,
  H: number,
  P: number,
  G: number,
  N: number,
) {
  const S = new Float64Array(H * P * N);
  const y = new Float64Array(L * H * P);
  for (let t = 0; t < L; t++)
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / (H / G));
      const a = Math.exp(dt[t * H + h] * A[h]);
      for (let p = 0; p < P; p++) {
        let acc = 0;
        for (let n = 0; n < N; n++) {
          const i = (h * P + p) * N + n;
          S[i] = a * S[i] + dt[t * H + h] * x[(t * H + h) * P + p] * B[(t * G + g) * N + n];
          acc += S[i] * C[(t * G + g) * N + n];
        }
        y[(t * H + h) * P + p] = acc + D[h] * x[(t * H + h) * P + p];
      }
    }
  return { y, S };
}

test('SSD: chunked scan, split prefill and single steps equal the naive recurrence', async () => {
  const r = rng();
  const [L, H, P, G, N] = [37, 4, 3, 2, 5];
  const x = randn(L * H * P, r);
  const dt = randn(L * H, r, 0.01, 0.5);
  const A = randn(H, r, -2, -0.1);
  const B = randn(L * G * N, r);
  const C = randn(L * G * N, r);
  const D = randn(H, r);
  const ref = naiveSsd(x, dt, A, B, C, D, L, H, P, G, N);
  const T = (v: Float32Array, s: number[]) => ops.tensor(cpu, v, s);
  const At = T(A, [H]);
  const Dt = T(D, [H]);
  for (const chunk of [1, 4, 16, 64]) {
    const { y, state } = ops.ssdScan(
      {
        x: T(x, [1, L, H, P]),
        dt: T(dt, [1, L, H]),
        A: At,
        B: T(B, [1, L, G, N]),
        C: T(C, [1, L, G, N]),
        D: Dt,
      },
      chunk,
    );
    assertClose(await y.toArray(), ref.y, 1e-5, `chunk ${chunk} y`);
    assertClose(await state.toArray(), ref.S, 1e-5, `chunk ${chunk} state`);
  }
  // Prefill in two pieces with the state carried, then the rest token by token.
  const cut = 20;
  const cut2 = 30;
  const part = (v: Float32Array, per: number, a: number, b: number) => v.slice(a * per, b * per);
  const first = ops.ssdScan(
    {
      x: T(part(x, H * P, 0, cut), [1, cut, H, P]),
      dt: T(part(dt, H, 0, cut), [1, cut, H]),
      A: At,
      B: T(part(B, G * N, 0, cut), [1, cut, G, N]),
      C: T(part(C, G * N, 0, cut), [1, cut, G, N]),
      D: Dt,
    },
    8,
  );
  const second = ops.ssdScan(
    {
      x: T(part(x, H * P, cut, cut2), [1, cut2 - cut, H, P]),
      dt: T(part(dt, H, cut, cut2), [1, cut2 - cut, H]),
      A: At,
      B: T(part(B, G * N, cut, cut2), [1, cut2 - cut, G, N]),
      C: T(part(C, G * N, cut, cut2), [1, cut2 - cut, G, N]),
      D: Dt,
      state: first.state,
    },
    8,
  );
  const ys = [...(await first.y.toArray()), ...(await second.y.toArray())];
  const state = second.state;
  for (let t = cut2; t < L; t++) {
    const y = ops.ssmStep({
      x: T(part(x, H * P, t, t + 1), [1, H, P]),
      dt: T(part(dt, H, t, t + 1), [1, H]),
      A: At,
      B: T(part(B, G * N, t, t + 1), [1, G, N]),
      C: T(part(C, G * N, t, t + 1), [1, G, N]),
      D: Dt,
      state,
    });
    ys.push(...(await y.toArray()));
  }
  assertClose(ys, ref.y, 1e-5, 'split + steps');
  assertClose(await state.toArray(), ref.S, 1e-5, 'final state');
});

test('attention: causal GQA with offset and kvLength, segments, weights', async () => {
  const r = rng();
  const [sq, skv, hq, hkv, d] = [3, 9, 6, 2, 5];
  const off = 4;
  const q = randn(sq * hq * d, r);
  const k = randn(skv * hkv * d, r);
  const v = randn(skv * hkv * d, r);
  const kvLength = off + sq + 1;
  const { out, weights } = ops.attention(
    ops.tensor(cpu, q, [1, sq, hq, d]),
    ops.tensor(cpu, k, [1, skv, hkv, d]),
    ops.tensor(cpu, v, [1, skv, hkv, d]),
    { causal: true, queryOffset: off, kvLength, returnWeights: true },
  );
  const ref: number[] = [];
  const refW = new Float64Array(hq * sq * kvLength);
  for (let i = 0; i < sq; i++)
    for (let h = 0; h < hq; h++) {
      const kh = Math.floor(h / (hq / hkv));
      const s: number[] = [];
      for (let j = 0; j <= off + i; j++) {
        let dot = 0;
        for (let t = 0; t < d; t++) dot += q[(i * hq + h) * d + t] * k[(j * hkv + kh) * d + t];
        s.push(dot / Math.sqrt(d));
      }
      const m = Math.max(...s);
      const e = s.map((z) => Math.exp(z - m));
      const z = e.reduce((a, b) => a + b, 0);
      for (let t = 0; t < d; t++) {
        let acc = 0;
        e.forEach((w, j) => {
          acc += (w / z) * v[(j * hkv + kh) * d + t];
        });
        ref.push(acc);
      }
      e.forEach((w, j) => {
        refW[(h * sq + i) * kvLength + j] = w / z;
      });
    }
  assertClose(await out.toArray(), ref, 1e-5, 'out');
  assertClose(await weights!.toArray(), refW, 1e-5, 'weights');
  // Block-diagonal segments equal attention run on each segment alone.
  const n = 7;
  const xs = randn(n * 2 * 4, r);
  const t = ops.tensor(cpu, xs, [1, n, 2, 4]);
  const seg = ops.attention(t, t, t, { segments: [0, 3, 7] }).out;
  const parts = [ops.slice(t, 1, 0, 3), ops.slice(t, 1, 3, 7)].map((p) => ops.attention(p, p, p).out);
  assertClose(await seg.toArray(), await ops.concat(parts, 1).toArray(), 1e-6, 'segments');
});

test('conv1d carries state across calls; gated RMSNorm both orders', async () => {
  const r = rng();
  const [L, Ch, W] = [6, 3, 4];
  const x = randn(L * Ch, r);
  const w = randn(Ch * W, r);
  const b = randn(Ch, r);
  const full = ops.conv1dCausal(
    ops.tensor(cpu, x, [1, L, Ch]),
    ops.tensor(cpu, w, [Ch, 1, W]),
    ops.tensor(cpu, b, [Ch]),
    {
      silu: true,
    },
  );
  const ref: number[] = [];
  for (let t = 0; t < L; t++)
    for (let c = 0; c < Ch; c++) {
      let s = b[c];
      for (let j = 0; j < W; j++) {
        const ti = t - (W - 1) + j;
        if (ti >= 0) s += w[c * W + j] * x[ti * Ch + c];
      }
      ref.push(s / (1 + Math.exp(-s)));
    }
  assertClose(await full.y.toArray(), ref, 1e-5, 'conv');
  const a = ops.conv1dCausal(
    ops.tensor(cpu, x.slice(0, 2 * Ch), [1, 2, Ch]),
    ops.tensor(cpu, w, [Ch, W]),
    ops.tensor(cpu, b, [Ch]),
    {
      silu: true,
    },
  );
  const c2 = ops.conv1dCausal(
    ops.tensor(cpu, x.slice(2 * Ch), [1, L - 2, Ch]),
    ops.tensor(cpu, w, [Ch, W]),
    ops.tensor(cpu, b, [Ch]),
    {
      silu: true,
      state: a.state,
    },
  );
  assertClose([...(await a.y.toArray()), ...(await c2.y.toArray())], ref, 1e-5, 'conv split');
  assertClose(await c2.state.toArray(), await full.state.toArray(), 0, 'conv state');

  const dim = 8;
  const xv = randn(2 * dim, r);
  const gv = randn(2 * dim, r);
  const wv = randn(dim, r);
  const silu = (z: number) => z / (1 + Math.exp(-z));
  for (const before of [false, true]) {
    const y = ops.rmsNorm(ops.tensor(cpu, xv, [2, dim]), ops.tensor(cpu, wv, [dim]), {
      eps: 1e-5,
      gate: ops.tensor(cpu, gv, [2, dim]),
      normBeforeGate: before,
      groupSize: 4,
    });
    const expect: number[] = [];
    for (let row = 0; row < 2; row++)
      for (let g = 0; g < 2; g++) {
        const idx = [0, 1, 2, 3].map((i) => row * dim + g * 4 + i);
        const v = idx.map((i) => (before ? xv[i] : xv[i] * silu(gv[i])));
        const inv = 1 / Math.sqrt(v.reduce((s, z) => s + z * z, 0) / 4 + 1e-5);
        idx.forEach((i, j) => {
          expect.push(v[j] * inv * wv[g * 4 + j] * (before ? silu(gv[i]) : 1));
        });
      }
    assertClose(await y.toArray(), expect, 1e-5, `gated rms before=${before}`);
  }
});

test('sampling: greedy, top-k 1, and seeded draws follow the documented rule', async () => {
  const logits = ops.tensor(cpu, [1, 3, 2, 3, -1], [1, 5]);
  assert.deepEqual(await ops.sample(logits, new Float32Array([0.9]), { temperature: 0 }).toArray(), [1]);
  assert.deepEqual(await ops.sample(logits, new Float32Array([0.99]), { topK: 1 }).toArray(), [1]);
  // Candidates by descending logit: ids 1, 3 (tie → lower first), 2, 0, 4. With top-k 2 the two kept have equal
  // probability 0.5: u < 0.5 picks id 1, u ≥ 0.5 picks id 3.
  assert.deepEqual(await ops.sample(logits, new Float32Array([0.49]), { topK: 2 }).toArray(), [1]);
  assert.deepEqual(await ops.sample(logits, new Float32Array([0.51]), { topK: 2 }).toArray(), [3]);
  // Repetition penalty 3 on id 1 (logit 3 → 1) makes id 3 the argmax.
  const prev = ops.tensor(cpu, new Int32Array([1, -1]), [1, 2], 'i32');
  assert.deepEqual(
    await ops
      .sample(logits, new Float32Array([0]), { temperature: 0, repetitionPenalty: 3, previous: prev })
      .toArray(),
    [3],
  );
});
