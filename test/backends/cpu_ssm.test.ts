// Causal conv1d and the Mamba-2 SSD scan against the naive recurrences, written here in float64.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import { parallelCalls, warmUp } from '../../src/backends/cpu/pool.js';
import { bf16ToF32, f32ToBf16 } from '../../src/runtime/dtype.js';
import * as ops from '../../src/runtime/ops.js';
import type { Tensor } from '../../src/runtime/tensor.js';
import { assertClose, assertCloseScaled, randint, randn, seeded } from '../helpers.js';

const cpu = cpuBackend();
const T = (v: Float32Array, s: number[]) => ops.tensor(cpu, v, s);

test(
  'conv1d: causal depthwise conv with bias/SiLU; state carried across calls equals one call',
  seeded(async (r) => {
    const [batch, L, Ch, W] = [2, randint(r, 5, 12), 5, 4];
    const x = randn(batch * L * Ch, r);
    const w = randn(Ch * W, r);
    const b = randn(Ch, r);
    const past = randn(batch * (W - 1) * Ch, r);
    for (const act of [false, true])
      for (const withState of [false, true]) {
        const ref: number[] = [];
        for (let bi = 0; bi < batch; bi++)
          for (let t = 0; t < L; t++)
            for (let c = 0; c < Ch; c++) {
              let s = b[c];
              for (let j = 0; j < W; j++) {
                const ti = t - (W - 1) + j;
                const xi =
                  ti >= 0
                    ? x[(bi * L + ti) * Ch + c]
                    : withState
                      ? past[(bi * (W - 1) + W - 1 + ti) * Ch + c]
                      : 0;
                s += w[c * W + j] * xi;
              }
              ref.push(act ? s / (1 + Math.exp(-s)) : s);
            }
        const state = withState ? T(past, [batch, W - 1, Ch]) : null;
        const full = ops.conv1dCausal(T(x, [batch, L, Ch]), T(w, [Ch, 1, W]), T(b, [Ch]), {
          silu: act,
          state,
        });
        // Sums of W terms cancel towards zero: judged against the largest output.
        assertCloseScaled(await full.y.toArray(), ref, 1e-5, `silu ${act} state ${withState}`);
        // The returned state is the last W−1 inputs.
        const st = await full.state.toArray();
        for (let bi = 0; bi < batch; bi++)
          assert.deepEqual(
            st.slice(bi * (W - 1) * Ch, (bi + 1) * (W - 1) * Ch),
            Array.from(x.subarray((bi * L + L - W + 1) * Ch, (bi + 1) * L * Ch)),
          );
      }
    // Split: 1 token, then 2, then the rest, carrying the state (batch 1).
    const x1 = x.subarray(0, L * Ch);
    const whole = ops.conv1dCausal(T(x1, [1, L, Ch]), T(w, [Ch, W]), T(b, [Ch]), { silu: true });
    let state: Tensor | null = null;
    const ys: number[] = [];
    for (const [a, e] of [
      [0, 1],
      [1, 3],
      [3, L],
    ]) {
      const step = ops.conv1dCausal(T(x1.slice(a * Ch, e * Ch), [1, e - a, Ch]), T(w, [Ch, W]), T(b, [Ch]), {
        silu: true,
        state,
      });
      ys.push(...(await step.y.toArray()));
      state = step.state;
    }
    assertClose(ys, await whole.y.toArray(), 1e-6, 'split');
    assert.throws(
      () => ops.conv1dCausal(T(x1, [1, L, Ch]), T(w, [Ch, W]), null, { state: ops.zeros(cpu, [1, 2, Ch]) }),
      /state \[1, 2, 5\] must be/,
    );
  }),
);

interface Ssd {
  x: Float32Array;
  dt: Float32Array;
  A: Float32Array;
  B: Float32Array;
  C: Float32Array;
  D: Float32Array;
  L: number;
  H: number;
  P: number;
  G: number;
  N: number;
}

function inputs(r: () => number, L: number, H: number, P: number, G: number, N: number): Ssd {
  return {
    x: randn(L * H * P, r),
    dt: randn(L * H, r, 0.01, 0.3),
    A: randn(H, r, -2, -0.1),
    B: randn(L * G * N, r),
    C: randn(L * G * N, r),
    D: randn(H, r),
    L,
    H,
    P,
    G,
    N,
  };
}

/** The recurrence itself: s_t = exp(dt·A)·s_{t−1} + dt·x_t ⊗ B_t;  y_t = s_t·C_t + D·x_t (batch 1, f64). */
function naive(s: Ssd) {
  const { L, H, P, G, N } = s;
  const S = new Float64Array(H * P * N);
  const y = new Float64Array(L * H * P);
  for (let t = 0; t < L; t++)
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / (H / G));
      const dt = s.dt[t * H + h];
      const a = Math.exp(dt * s.A[h]);
      for (let p = 0; p < P; p++) {
        const xv = s.x[(t * H + h) * P + p];
        let acc = 0;
        for (let n = 0; n < N; n++) {
          const i = (h * P + p) * N + n;
          S[i] = a * S[i] + dt * xv * s.B[(t * G + g) * N + n];
          acc += S[i] * s.C[(t * G + g) * N + n];
        }
        y[(t * H + h) * P + p] = acc + s.D[h] * xv;
      }
    }
  return { y, S };
}

/** Tensors for tokens [a, b) of s. */
function piece(s: Ssd, a: number, b: number) {
  const { H, P, G, N } = s;
  const n = b - a;
  return {
    x: T(s.x.slice(a * H * P, b * H * P), [1, n, H, P]),
    dt: T(s.dt.slice(a * H, b * H), [1, n, H]),
    A: T(s.A, [H]),
    B: T(s.B.slice(a * G * N, b * G * N), [1, n, G, N]),
    C: T(s.C.slice(a * G * N, b * G * N), [1, n, G, N]),
    D: T(s.D, [H]),
  };
}

test(
  'SSD: the chunked scan equals the naive recurrence for several chunk sizes and ngroups 1 and > 1',
  seeded(async (r) => {
    for (const G of [1, 2]) {
      const s = inputs(r, randint(r, 40, 70), 4, randint(r, 3, 6), G, randint(r, 4, 9));
      const ref = naive(s);
      for (const chunk of [1, 7, 16, 64, 256]) {
        const { y, state } = ops.ssdScan(piece(s, 0, s.L), chunk);
        assertCloseScaled(await y.toArray(), ref.y, 1e-5, `G ${G} chunk ${chunk} y`);
        assertCloseScaled(await state.toArray(), ref.S, 1e-5, `G ${G} chunk ${chunk} state`);
      }
    }
  }),
);

test(
  'SSD: a prefill split in pieces with the state carried, then token-by-token steps',
  seeded(async (r) => {
    const s = inputs(r, 53, 6, 4, 3, 5);
    const ref = naive(s);
    const ys: number[] = [];
    let state: Tensor | null = null;
    for (const [a, b] of [
      [0, 17],
      [17, 18],
      [18, 40],
    ]) {
      const out: { y: Tensor; state: Tensor } = ops.ssdScan({ ...piece(s, a, b), state }, 8);
      ys.push(...(await out.y.toArray()));
      state = out.state;
    }
    // Between pieces the state is stored in f32 (the scan itself carries it in f64): compare at the values' scale.
    assertCloseScaled(ys, ref.y.subarray(0, 40 * s.H * s.P), 1e-5, 'split prefill');
    for (let t = 40; t < s.L; t++) {
      const p = piece(s, t, t + 1);
      const y = ops.ssmStep({
        x: p.x.reshape([1, s.H, s.P]),
        dt: p.dt.reshape([1, s.H]),
        A: p.A,
        B: p.B.reshape([1, s.G, s.N]),
        C: p.C.reshape([1, s.G, s.N]),
        D: p.D,
        state: state!,
      });
      ys.push(...(await y.toArray()));
    }
    // The step keeps its state in f32 storage: compare against the scale of the values.
    assertCloseScaled(ys, ref.y, 1e-5, 'split + steps');
    assertCloseScaled(await state!.toArray(), ref.S, 1e-5, 'final state');
  }),
);

test(
  'SSD: bf16 x/B/C storage with f32 dt, A and state',
  seeded(async (r) => {
    const s = inputs(r, 45, 4, 8, 2, 6);
    const round = (v: Float32Array) => v.map((z) => bf16ToF32(f32ToBf16(z)));
    [s.x, s.B, s.C] = [round(s.x), round(s.B), round(s.C)];
    const ref = naive(s);
    const t = piece(s, 0, s.L);
    const bf = (x: Tensor) => ops.cast(x, 'bf16');
    const { y, state } = ops.ssdScan({ ...t, x: bf(t.x), B: bf(t.B), C: bf(t.C) }, 16);
    assert.equal(y.dtype, 'bf16');
    assertClose(await y.toArray(), ref.y, 4e-3, 'bf16 y');
    assertCloseScaled(await state.toArray(), ref.S, 1e-5, 'f32 state');
  }),
);

test(
  'SSD: batch > 1, no D, long sequence on the worker pool',
  seeded(async (r) => {
    const threads = await warmUp();
    const before = parallelCalls();
    const [batch, L, H, P, G, N] = [2, 300, 4, 16, 1, 16];
    const per = Array.from({ length: batch }, () => inputs(r, L, H, P, G, N));
    per[1].A = per[0].A;
    for (const s of per) s.D.fill(0);
    const cat = (f: (s: Ssd) => Float32Array) => Float32Array.from(per.flatMap((s) => [...f(s)]));
    const { y, state } = ops.ssdScan(
      {
        x: T(
          cat((s) => s.x),
          [batch, L, H, P],
        ),
        dt: T(
          cat((s) => s.dt),
          [batch, L, H],
        ),
        A: T(per[0].A, [H]),
        B: T(
          cat((s) => s.B),
          [batch, L, G, N],
        ),
        C: T(
          cat((s) => s.C),
          [batch, L, G, N],
        ),
      },
      64,
    );
    const refs = per.map(naive);
    assertCloseScaled(await y.toArray(), [...refs[0].y, ...refs[1].y], 1e-5, 'batched y');
    assertCloseScaled(await state.toArray(), [...refs[0].S, ...refs[1].S], 1e-5, 'batched state');
    if (threads > 1) assert.ok(parallelCalls() > before, 'split across threads');
    assert.throws(
      () => ops.ssdScan({ ...piece(per[0], 0, 4), A: T(per[0].A.slice(0, 3), [3]) }),
      /A needs 4 values/,
    );
  }),
);
