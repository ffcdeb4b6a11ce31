// The backward kernels of the sequence ops (SSD scan, causal conv1d, attention) on the CPU backend against
// float64 central differences of a float64 forward written here, at odd sizes. Each forward reference is
// first checked against the runtime's forward op, so the gradients are those of the op's semantics.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import { parallelCalls, warmUp } from '../../src/backends/cpu/pool.js';
import { attentionKeyRanges, attentionQueryRanges } from '../../src/runtime/backend.js';
import * as g from '../../src/runtime/grad-ops.js';
import * as ops from '../../src/runtime/ops.js';
import { ShapeError } from '../../src/runtime/shape.js';
import type { Tensor } from '../../src/runtime/tensor.js';
import { assertClose, assertCloseScaled, randint, randn, seeded } from '../helpers.js';
import { checkDirections, checkGrads, dot } from './grad-check.js';

const cpu = cpuBackend();
const t = (v: Float32Array, shape: readonly number[], dtype: 'f32' | 'bf16' = 'f32') =>
  ops.tensor(cpu, v, shape, dtype);
const f32 = async (x: Tensor | null) => (x ? Float32Array.from(await x.data()) : null);

// ---- SSD scan ------------------------------------------------------------------------------------

interface SsdDims {
  batch: number;
  len: number;
  heads: number;
  headDim: number;
  groups: number;
  dState: number;
}

/** The recurrence s_t = exp(dt·A)·s + dt·x ⊗ B, y = s·C + D·x in f64. */
function ssdRef(
  [x, dt, A, B, C, D, s0]: (Float64Array | null)[],
  { batch, len, heads: H, headDim: P, groups: G, dState: N }: SsdDims,
): { y: Float64Array; s: Float64Array } {
  const y = new Float64Array(batch * len * H * P);
  const s = new Float64Array(batch * H * P * N);
  if (s0) s.set(s0);
  for (let b = 0; b < batch; b++)
    for (let h = 0; h < H; h++) {
      const grp = Math.floor(h / (H / G));
      const so = (b * H + h) * P * N;
      for (let l = 0; l < len; l++) {
        const d = dt![(b * len + l) * H + h];
        const a = Math.exp(d * A![h]);
        const bc = ((b * len + l) * G + grp) * N;
        const xo = ((b * len + l) * H + h) * P;
        for (let p = 0; p < P; p++) {
          let acc = D ? D[h] * x![xo + p] : 0;
          for (let n = 0; n < N; n++) {
            const k = so + p * N + n;
            s[k] = a * s[k] + d * x![xo + p] * B![bc + n];
            acc += s[k] * C![bc + n];
          }
          y[xo + p] = acc;
        }
      }
    }
  return { y, s };
}

/** The scan's input tensors from their values (x, dt, A, B, C, D, state; D and state may be null). */
const ssdInputs = (
  [x, dt, A, B, C, D, s0]: (Float32Array | null)[],
  { batch, len, heads, headDim, groups, dState }: SsdDims,
) => ({
  x: t(x!, [batch, len, heads, headDim]),
  dt: t(dt!, [batch, len, heads]),
  A: t(A!, [heads]),
  B: t(B!, [batch, len, groups, dState]),
  C: t(C!, [batch, len, groups, dState]),
  D: D ? t(D, [heads]) : null,
  state: s0 ? t(s0, [batch, heads, headDim, dState]) : null,
});

for (const withD of [true, false])
  test(
    `ssdScanBackward matches float64 finite differences (odd sizes, groups, chunk not dividing len${withD ? ', D and an initial state' : ''})`,
    seeded(async (r) => {
      const dims = { batch: 2, len: 7, heads: 4, headDim: 3, groups: 2, dState: 5 };
      const { batch, len, heads, headDim, groups, dState } = dims;
      const xv = randn(batch * len * heads * headDim, r);
      const dtv = randn(batch * len * heads, r, 0.05, 1);
      const Av = randn(heads, r, -1.5, -0.2);
      const Bv = randn(batch * len * groups * dState, r);
      const Cv = randn(batch * len * groups * dState, r);
      const Dv = withD ? randn(heads, r) : null;
      const s0v = withD ? randn(batch * heads * headDim * dState, r) : null;
      const wy = randn(xv.length, r);
      const ws = randn(batch * heads * headDim * dState, r);
      const raw = [xv, dtv, Av, Bv, Cv, Dv, s0v];
      const inputs = ssdInputs(raw, dims);
      const ref = ssdRef(
        raw.map((a) => (a ? Float64Array.from(a) : null)),
        dims,
      );
      const fwd = ops.ssdScan(inputs, 3);
      assertCloseScaled((await fwd.y.data()) as Float32Array, ref.y, 1e-5, 'forward y vs reference');
      assertCloseScaled((await fwd.state.data()) as Float32Array, ref.s, 1e-5, 'forward state vs reference');
      const gr = g.ssdScanBackward(inputs, t(wy, fwd.y.shape), t(ws, fwd.state.shape), 3);
      const present = raw.map((a) => a !== null);
      const loss = (xs: Float64Array[]) => {
        const o = ssdRef(
          xs.map((a, i) => (present[i] ? a : null)),
          dims,
        );
        return dot(o.y, wy) + dot(o.s, ws);
      };
      checkGrads(
        'ssd',
        loss,
        raw.map((a) => a ?? new Float32Array(0)),
        await Promise.all([gr.dx, gr.ddt, gr.dA, gr.dB, gr.dC, gr.dD, gr.dState].map(f32)),
        { names: ['x', 'dt', 'A', 'B', 'C', 'D', 'state'] },
      );
      assert.equal(gr.dD === null, !withD);
      assert.equal(gr.ddt.dtype, 'f32');
    }),
  );

test(
  'ssdScanBackward: the chunk size does not change the gradients; without dStateOut the state gets none',
  seeded(async (r) => {
    const [batch, len, heads, headDim, groups, dState] = [1, 9, 2, 2, 1, 3];
    const inputs = {
      x: t(randn(batch * len * heads * headDim, r), [batch, len, heads, headDim]),
      dt: t(randn(batch * len * heads, r, 0.1, 0.8), [batch, len, heads]),
      A: t(randn(heads, r, -1, -0.3), [heads]),
      B: t(randn(batch * len * groups * dState, r), [batch, len, groups, dState]),
      C: t(randn(batch * len * groups * dState, r), [batch, len, groups, dState]),
    };
    const dy = t(randn(batch * len * heads * headDim, r), [batch, len, heads, headDim]);
    const a = g.ssdScanBackward(inputs, dy, null, 1);
    const b = g.ssdScanBackward(inputs, dy, null, 256);
    for (const k of ['dx', 'ddt', 'dA', 'dB', 'dC'] as const)
      assertCloseScaled((await f32(a[k]))!, (await f32(b[k]))!, 1e-5, k); // gradients are sums that cancel
    assert.equal(a.dState, null);
    assert.throws(
      () => g.ssdScanBackward(inputs, t(randn(4, r), [4]), null),
      (e: Error) => e instanceof ShapeError && /gradient .* must match/.test(e.message),
    );
  }),
);

// ---- causal conv1d -------------------------------------------------------------------------------

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));

function convRef(
  [x, w, bias, state]: Float64Array[],
  batch: number,
  len: number,
  C: number,
  W: number,
  silu: boolean,
  hasState: boolean,
  hasBias: boolean,
): { y: Float64Array; s: Float64Array } {
  const past = W - 1;
  const y = new Float64Array(batch * len * C);
  const s = new Float64Array(batch * past * C);
  for (let b = 0; b < batch; b++) {
    const at = (p: number, c: number) =>
      p < past ? (hasState ? state[(b * past + p) * C + c] : 0) : x[(b * len + p - past) * C + c];
    for (let l = 0; l < len; l++)
      for (let c = 0; c < C; c++) {
        let v = hasBias ? bias[c] : 0;
        for (let j = 0; j < W; j++) v += w[c * W + j] * at(l + j, c);
        y[(b * len + l) * C + c] = silu ? v * sigmoid(v) : v;
      }
    for (let p = 0; p < past; p++) for (let c = 0; c < C; c++) s[(b * past + p) * C + c] = at(len + p, c);
  }
  return { y, s };
}

for (const [len, silu, withState] of [
  [7, true, true],
  [7, false, false],
  [2, true, true], // shorter than the kernel: the returned state mixes the old state and x
] as const)
  test(
    `conv1dCausalBackward matches float64 finite differences (len ${len}, silu ${silu}, state ${withState})`,
    seeded(async (r) => {
      const [batch, C, W] = [2, 5, 4];
      const xv = randn(batch * len * C, r);
      const wv = randn(C * W, r);
      const bv = randn(C, r);
      const sv = randn(batch * (W - 1) * C, r);
      const wy = randn(xv.length, r);
      const ws = randn(sv.length, r);
      const x = t(xv, [batch, len, C]);
      const weight = t(wv, [C, 1, W]); // PyTorch's layout
      const bias = t(bv, [C]);
      const state = withState ? t(sv, [batch, W - 1, C]) : null;
      const ref = (xs: Float64Array[]) => convRef(xs, batch, len, C, W, silu, withState, true);
      const raw = [xv, wv, bv, sv];
      const exp = ref(raw.map((a) => Float64Array.from(a)));
      const fwd = ops.conv1dCausal(x, weight, bias, { state, silu });
      assertCloseScaled((await fwd.y.data()) as Float32Array, exp.y, 1e-5, 'forward y vs reference');
      assertClose((await fwd.state.data()) as Float32Array, exp.s, 1e-6, 'forward state vs reference');
      const gr = g.conv1dCausalBackward(x, weight, bias, t(wy, [batch, len, C]), {
        state,
        silu,
        dStateOut: t(ws, [batch, W - 1, C]),
      });
      assert.deepEqual(gr.dWeight.shape, [C, 1, W]);
      checkGrads(
        'conv1d',
        (xs) => {
          const o = ref(xs);
          return dot(o.y, wy) + dot(o.s, ws);
        },
        raw,
        [
          await f32(gr.dx),
          await f32(gr.dWeight),
          await f32(gr.dBias),
          withState ? await f32(gr.dState) : null,
        ],
        { names: ['x', 'weight', 'bias', 'state'] },
      );
      assert.equal(gr.dState === null, !withState);
    }),
  );

// ---- attention -----------------------------------------------------------------------------------

interface AttnCase {
  name: string;
  batch: number;
  sq: number;
  skv: number;
  hq: number;
  hkv: number;
  d: number;
  dv: number;
  opts: ops.AttentionOptions;
  mask?: 'shared' | 'batched';
  rank3?: boolean;
}

/** softmax(scale·q·kᵀ + mask)·v per query over the keys it may see, in f64 (zero when it sees none). */
function attnRef([q, k, v, mask]: Float64Array[], c: AttnCase): Float64Array {
  const { batch, sq, skv, hq, hkv, d, dv, opts } = c;
  const kvLength = opts.kvLength ?? skv;
  const scale = opts.scale ?? 1 / Math.sqrt(d);
  const out = new Float64Array(batch * sq * hq * dv);
  const seg = opts.segments ? [...opts.segments] : null;
  for (let b = 0; b < batch; b++)
    for (let h = 0; h < hq; h++) {
      const kh = Math.floor((h * hkv) / hq);
      for (let i = 0; i < sq; i++) {
        const logits: [number, number][] = [];
        for (let j = 0; j < kvLength; j++) {
          if (opts.causal && j > (opts.queryOffset ?? 0) + i) continue;
          if (seg && seg.findIndex((s) => s > i) !== seg.findIndex((s) => s > j)) continue;
          let s = 0;
          for (let e = 0; e < d; e++)
            s += q[((b * sq + i) * hq + h) * d + e] * k[((b * skv + j) * hkv + kh) * d + e];
          s *= scale;
          if (c.mask) s += mask[((c.mask === 'batched' ? b : 0) * sq + i) * kvLength + j];
          logits.push([j, s]);
        }
        if (!logits.length) continue;
        const max = Math.max(...logits.map(([, s]) => s));
        const z = logits.reduce((a, [, s]) => a + Math.exp(s - max), 0);
        for (const [j, s] of logits) {
          const p = Math.exp(s - max) / z;
          for (let e = 0; e < dv; e++)
            out[((b * sq + i) * hq + h) * dv + e] += p * v[((b * skv + j) * hkv + kh) * dv + e];
        }
      }
    }
  return out;
}

const attnCases: AttnCase[] = [
  {
    name: 'causal self-attention, GQA',
    batch: 2,
    sq: 5,
    skv: 5,
    hq: 4,
    hkv: 2,
    d: 3,
    dv: 3,
    opts: { causal: true },
  },
  {
    name: 'non-causal, 3 heads, scale',
    batch: 1,
    sq: 4,
    skv: 4,
    hq: 3,
    hkv: 3,
    d: 5,
    dv: 2,
    opts: { scale: 0.7 },
  },
  {
    name: 'cross-attention (sq ≠ skv), one kv head, batched mask',
    batch: 2,
    sq: 3,
    skv: 6,
    hq: 2,
    hkv: 1,
    d: 4,
    dv: 3,
    opts: {},
    mask: 'batched',
  },
  {
    name: 'causal with a query offset and kvLength < skv, shared mask',
    batch: 1,
    sq: 3,
    skv: 8,
    hq: 2,
    hkv: 2,
    d: 3,
    dv: 4,
    opts: { causal: true, queryOffset: 3, kvLength: 6 },
    mask: 'shared',
  },
  {
    name: 'segments (block-diagonal), rank-3 inputs',
    batch: 1,
    sq: 7,
    skv: 7,
    hq: 2,
    hkv: 1,
    d: 3,
    dv: 3,
    opts: { segments: [0, 3, 3, 7] },
    rank3: true,
  },
];

for (const c of attnCases)
  test(
    `attentionBackward matches float64 finite differences: ${c.name}`,
    seeded(async (r) => {
      const { batch, sq, skv, hq, hkv, d, dv } = c;
      const kvLength = c.opts.kvLength ?? skv;
      const lead = c.rank3 ? [] : [batch];
      const qv = randn(batch * sq * hq * d, r, -1.5, 1.5);
      const kv = randn(batch * skv * hkv * d, r, -1.5, 1.5);
      const vv = randn(batch * skv * hkv * dv, r);
      const mv = randn((c.mask === 'batched' ? batch : 1) * sq * kvLength, r);
      const wo = randn(batch * sq * hq * dv, r);
      const q = t(qv, [...lead, sq, hq, d]);
      const k = t(kv, [...lead, skv, hkv, d]);
      const v = t(vv, [...lead, skv, hkv, dv]);
      const mask = c.mask ? t(mv, [c.mask === 'batched' ? batch : 1, sq, kvLength]) : null;
      const opts = { ...c.opts, mask };
      const raw = [qv, kv, vv, mv];
      const { out } = ops.attention(q, k, v, opts);
      assertClose(
        (await out.data()) as Float32Array,
        attnRef(
          raw.map((a) => Float64Array.from(a)),
          c,
        ),
        1e-4,
        'forward vs reference',
      );
      const gr = g.attentionBackward(q, k, v, out, t(wo, out.shape), opts);
      assert.deepEqual(gr.dk.shape, k.shape);
      checkGrads(
        'attention',
        (xs) => dot(attnRef(xs, c), wo),
        raw,
        [await f32(gr.dq), await f32(gr.dk), await f32(gr.dv), null],
        { names: ['q', 'k', 'v'] },
      );
    }),
  );

test(
  'attentionBackward checks its operands like the forward and names the problem',
  seeded(async (r) => {
    const q = t(randn(2 * 4 * 3, r), [1, 2, 4, 3]);
    const k = t(randn(3 * 3 * 3, r), [1, 3, 3, 3]);
    const { out } = ops.attention(q, q, q);
    assert.throws(
      () => g.attentionBackward(q, k, k, out, out),
      (e: Error) =>
        e instanceof ShapeError && /attentionBackward: 4 query heads are not a multiple of 3/.test(e.message),
    );
    assert.throws(
      () => g.attentionBackward(q, q, q, out, t(randn(3, r), [3])),
      (e: Error) => e instanceof ShapeError && /gradient/.test(e.message),
    );
  }),
);

test(
  'attentionKeyRanges / attentionQueryRanges: each query’s keys as defined, and each key’s queries the ones whose range holds it',
  seeded(async (r) => {
    for (let trial = 0; trial < 300; trial++) {
      const sq = randint(r, 1, 12);
      const seg = r() < 0.4;
      const skv = seg ? sq : sq + randint(r, 0, 5);
      const kvLength = seg ? sq : randint(r, sq, skv);
      const causal = r() < 0.5;
      const queryOffset = causal && !seg ? randint(r, 0, kvLength - sq) : 0;
      const cuts = [0];
      for (let i = 1; i < sq; i++) if (r() < 0.3) cuts.push(i);
      if (r() < 0.2) cuts.push(cuts[cuts.length - 1]); // an empty segment
      cuts.push(sq);
      const d = { batch: 1, sq, skv, kvLength, hq: 1, hkv: 1, d: 1, dv: 1, scale: 1, causal, queryOffset };
      const desc = { ...d, segments: seg ? Int32Array.from(cuts) : null };
      const qr = attentionQueryRanges(desc);
      // Every query's keys, by definition: j < kvLength, j ≤ queryOffset + i when causal, j in i's segment.
      const kr = attentionKeyRanges(desc);
      const segOf = (x: number) => cuts.findIndex((c, s) => s + 1 < cuts.length && c <= x && x < cuts[s + 1]);
      for (let i = 0; i < sq; i++) {
        const sees = (j: number) =>
          j < kvLength && (!causal || j <= queryOffset + i) && (!seg || segOf(j) === segOf(i));
        for (let j = 0; j < skv; j++)
          assert.equal(
            j >= kr[2 * i] && j < kr[2 * i + 1],
            sees(j),
            `query ${i}, key ${j}: ${JSON.stringify(d)}`,
          );
      }
      for (let j = 0; j < skv; j++)
        for (let i = 0; i < sq; i++) {
          const [lo, hi] = [kr[2 * i], kr[2 * i + 1]];
          assert.equal(
            i >= qr[2 * j] && i < qr[2 * j + 1],
            j >= lo && j < hi,
            `key ${j}, query ${i}: ${JSON.stringify(d)}`,
          );
        }
    }
  }),
);

// ---- sizes the CPU backend splits across its worker threads ---------------------------------------

test(
  'ssdScanBackward, attentionBackward and conv1dCausalBackward at sizes split across worker threads: directional derivatives match float64 differences',
  seeded(async (r) => {
    const threads = await warmUp();
    const before = parallelCalls();
    // SSD: 3 × 150 tokens, 4 heads of 16 in 2 groups, state 16, chunks of 64 (the last one short), D and a state.
    const dims = { batch: 3, len: 150, heads: 4, headDim: 16, groups: 2, dState: 16 };
    const { batch, len, heads, headDim, groups, dState } = dims;
    const raw = [
      randn(batch * len * heads * headDim, r),
      randn(batch * len * heads, r, 0.01, 0.3),
      randn(heads, r, -1.5, -0.2),
      randn(batch * len * groups * dState, r),
      randn(batch * len * groups * dState, r),
      randn(heads, r),
      randn(batch * heads * headDim * dState, r),
    ];
    const wy = randn(raw[0].length, r);
    const ws = randn(raw[6].length, r);
    const inputs = ssdInputs(raw, dims);
    const fwd = ops.ssdScan(inputs, 64);
    const gr = g.ssdScanBackward(inputs, t(wy, fwd.y.shape), t(ws, fwd.state.shape), 64);
    checkDirections(
      'ssd',
      (xs) => {
        const o = ssdRef(xs, dims);
        return dot(o.y, wy) + dot(o.s, ws);
      },
      raw,
      await Promise.all([gr.dx, gr.ddt, gr.dA, gr.dB, gr.dC, gr.dD, gr.dState].map(f32)),
      r,
    );
    // Attention: causal GQA, 2 × 80 queries, 4 query heads on 2 kv heads of 16.
    const c: AttnCase = {
      name: '',
      batch: 2,
      sq: 80,
      skv: 80,
      hq: 4,
      hkv: 2,
      d: 16,
      dv: 16,
      opts: { causal: true },
    };
    const araw = [randn(2 * 80 * 4 * 16, r), randn(2 * 80 * 2 * 16, r), randn(2 * 80 * 2 * 16, r)];
    const [q, k, v] = araw.map((a, i) => t(a, [2, 80, i ? 2 : 4, 16]));
    const wo = randn(2 * 80 * 4 * 16, r);
    const { out } = ops.attention(q, k, v, { causal: true });
    const ag = g.attentionBackward(q, k, v, out, t(wo, out.shape), { causal: true });
    checkDirections(
      'attention',
      (xs) => dot(attnRef(xs, c), wo),
      araw,
      [await f32(ag.dq), await f32(ag.dk), await f32(ag.dv)],
      r,
    );
    if (threads > 1)
      assert.ok(parallelCalls() >= before + 4, 'both backwards (and forwards) ran on the worker pool');
  }),
);
