// Parity of the backward kernels, fused losses and AdamW (native/cuda/grad.cu) with the CPU backend (itself
// checked against float64 finite differences in test/runtime/grad-ops*.test.ts): the same host values on both
// backends, in f32 and bf16, at odd sizes and in every mode the forward ops have.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DType } from '../src/runtime/dtype.js';
import * as g from '../src/runtime/grad-ops.js';
import * as ops from '../src/runtime/ops.js';
import type { Tensor } from '../src/runtime/tensor.js';
import { assertParity, cpu, gpu, pair, random, values } from './helpers.js';

/** Gradients: f32 against an f64-accumulating reference; bf16 adds the rounding of the stored result. */
const TOL: Record<string, { tol: number; floor: number }> = {
  f32: { tol: 2e-4, floor: 1e-2 },
  bf16: { tol: 2e-2, floor: 5e-2 },
};
const DTYPES: DType[] = ['f32', 'bf16'];

/** Compares each named tensor of two result objects (null on both sides where absent). */
async function parity(
  what: string,
  a: Record<string, Tensor | null>,
  b: Record<string, Tensor | null>,
  dtype: DType,
  f32Params = TOL.f32,
  bf16Params = TOL.bf16,
): Promise<void> {
  for (const key of Object.keys(b)) {
    const [x, y] = [a[key], b[key]];
    assert.equal(x === null, y === null, `${what}.${key}: present on one backend only`);
    if (!x || !y) continue;
    const t =
      y.dtype === 'f32' && dtype !== 'f32'
        ? { tol: 5e-3, floor: 5e-2 }
        : y.dtype === 'f32'
          ? f32Params
          : dtype === 'bf16'
            ? bf16Params
            : TOL[dtype];
    await assertParity(x, y, t.tol, `${what}.${key}`, t.floor);
  }
}

// ---- SSD scan ------------------------------------------------------------------------------------

const ssdShapes = [
  { batch: 2, len: 37, heads: 4, headDim: 16, groups: 2, dState: 8, D: true, state: true },
  { batch: 1, len: 300, heads: 2, headDim: 64, groups: 1, dState: 64, D: true, state: false },
  { batch: 3, len: 5, heads: 3, headDim: 7, groups: 3, dState: 5, D: false, state: true },
  // 2 state rows of 100 per block of 256 threads, 5 blocks per head (the last with one row).
  { batch: 1, len: 70, heads: 2, headDim: 9, groups: 1, dState: 100, D: true, state: true },
  // Many chunks of 32 tokens reversed in parallel (the matrix kernel): 32 (the last one 8 tokens), then 157.
  { batch: 2, len: 1000, heads: 6, headDim: 16, groups: 2, dState: 8, D: true, state: true },
  { batch: 1, len: 5000, heads: 2, headDim: 32, groups: 1, dState: 16, D: true, state: true },
  // The tiny needle models' Mamba (12 heads of 32 × 32 in one group) on 4 videos of 256 tokens.
  { batch: 4, len: 256, heads: 12, headDim: 32, groups: 1, dState: 32, D: true, state: false },
  // Head dim 80: the token-by-token kernel, chunks of 64.
  { batch: 1, len: 150, heads: 2, headDim: 80, groups: 1, dState: 16, D: true, state: true },
];

for (const dtype of DTYPES)
  for (const s of ssdShapes)
    test(`ssdScanBackward matches the CPU (${dtype}, ${JSON.stringify(s)})`, async () => {
      const { batch, len, heads, headDim, groups, dState } = s;
      const mk = (n: number, shape: number[], dt: DType, lo = -1, hi = 1) =>
        pair(values(n, lo, hi), shape, dt);
      const x = mk(batch * len * heads * headDim, [batch, len, heads, headDim], dtype);
      const dt = mk(batch * len * heads, [batch, len, heads], 'f32', 0.005, 0.3);
      const A = mk(heads, [heads], 'f32', -4, -0.5);
      const B = mk(batch * len * groups * dState, [batch, len, groups, dState], dtype);
      const C = mk(batch * len * groups * dState, [batch, len, groups, dState], dtype);
      const D = s.D ? mk(heads, [heads], 'f32', 0.5, 1.5) : [null, null];
      const st = s.state
        ? mk(batch * heads * headDim * dState, [batch, heads, headDim, dState], 'f32')
        : [null, null];
      const dy = mk(batch * len * heads * headDim, [batch, len, heads, headDim], dtype);
      const dso = mk(batch * heads * headDim * dState, [batch, heads, headDim, dState], 'f32');
      const run = (k: 0 | 1) =>
        g.ssdScanBackward(
          { x: x[k], dt: dt[k], A: A[k], B: B[k], C: C[k], D: D[k], state: st[k] },
          dy[k],
          dso[k],
          64,
        );
      // Long sums (dA over every token and state element) carry f32 rounding on both sides.
      await parity('ssd', { ...run(0) }, { ...run(1) }, dtype, { tol: 1e-3, floor: 1e-2 });
    });

// ---- conv1d --------------------------------------------------------------------------------------

for (const dtype of DTYPES)
  for (const [len, silu, withState, withBias] of [
    [19, true, true, true],
    [2, true, true, true],
    [33, false, false, false],
  ] as const)
    test(`conv1dCausalBackward matches the CPU (${dtype}, len ${len}, silu ${silu}, state ${withState}, bias ${withBias})`, async () => {
      const [batch, C, W] = [2, 70, 4];
      const x = pair(values(batch * len * C), [batch, len, C], dtype);
      const w = pair(values(C * W), [C, 1, W], dtype);
      const b = withBias ? pair(values(C), [C], dtype) : [null, null];
      const st = withState ? pair(values(batch * (W - 1) * C), [batch, W - 1, C], dtype) : [null, null];
      const dy = pair(values(batch * len * C), [batch, len, C], dtype);
      const dso = pair(values(batch * (W - 1) * C), [batch, W - 1, C], dtype);
      const run = (k: 0 | 1) =>
        g.conv1dCausalBackward(x[k], w[k], b[k], dy[k], { state: st[k], silu, dStateOut: dso[k] });
      await parity('conv1d', { ...run(0) }, { ...run(1) }, dtype);
    });

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
}

const attnCases: AttnCase[] = [
  { name: 'causal GQA', batch: 2, sq: 129, skv: 129, hq: 4, hkv: 2, d: 64, dv: 64, opts: { causal: true } },
  {
    name: 'non-causal, scale',
    batch: 1,
    sq: 37,
    skv: 37,
    hq: 3,
    hkv: 3,
    d: 48,
    dv: 48,
    opts: { scale: 0.3 },
  },
  {
    name: 'cross-attention, batched mask',
    batch: 2,
    sq: 13,
    skv: 53,
    hq: 4,
    hkv: 1,
    d: 128,
    dv: 128,
    opts: {},
    mask: 'batched',
  },
  {
    name: 'causal offset, kvLength < skv, shared mask',
    batch: 1,
    sq: 7,
    skv: 40,
    hq: 2,
    hkv: 2,
    d: 32,
    dv: 16,
    opts: { causal: true, queryOffset: 23, kvLength: 30 },
    mask: 'shared',
  },
  {
    name: 'segments',
    batch: 1,
    sq: 53,
    skv: 53,
    hq: 2,
    hkv: 1,
    d: 80,
    dv: 80,
    opts: { segments: [0, 20, 20, 41, 53] },
  },
  { name: 'head dim 256', batch: 1, sq: 5, skv: 9, hq: 2, hkv: 1, d: 256, dv: 256, opts: {} },
];

for (const dtype of DTYPES)
  for (const c of attnCases)
    test(`attentionBackward matches the CPU (${dtype}, ${c.name})`, async () => {
      const { batch, sq, skv, hq, hkv, d, dv } = c;
      const kvLength = c.opts.kvLength ?? skv;
      const q = pair(values(batch * sq * hq * d, -1, 1), [batch, sq, hq, d], dtype);
      const k = pair(values(batch * skv * hkv * d, -1, 1), [batch, skv, hkv, d], dtype);
      const v = pair(values(batch * skv * hkv * dv), [batch, skv, hkv, dv], dtype);
      const mb = c.mask === 'batched' ? batch : 1;
      const mask = c.mask ? pair(values(mb * sq * kvLength), [mb, sq, kvLength]) : [null, null];
      const dOut = pair(values(batch * sq * hq * dv), [batch, sq, hq, dv], dtype);
      const outs = [0, 1].map((i) => ops.attention(q[i]!, k[i]!, v[i]!, { ...c.opts, mask: mask[i] }).out);
      // The forwards agree first. In bf16 the GPU rounds P to bf16 for its tensor-core P·V and the CPU does
      // not, which moves an O near zero by up to ~3.1% of (|O| + floor·scale) (an H100, session 12): 5e-2 there.
      const fwdTol = dtype === 'bf16' ? 5e-2 : TOL[dtype].tol;
      await assertParity(outs[0], outs[1], fwdTol, 'forward', TOL[dtype].floor);
      // Both backwards then get the CPU's forward output (the GPU's δ = dO·O reads it), so that they differ only
      // by the backward kernels themselves.
      const out = [ops.tensor(gpu, await outs[1].data(), outs[1].shape, dtype), outs[1]];
      const run = (i: 0 | 1) =>
        g.attentionBackward(q[i]!, k[i]!, v[i]!, out[i], dOut[i]!, { ...c.opts, mask: mask[i] });
      // The GPU takes δ = dO·O (FlashAttention's form) from the bf16 O, the CPU δ = Σ_j P_j·dP_j in f32: O's
      // rounding (≤ 0.4%) moves every dS_j = P_j·(dP_j − δ) alike, so dq moves by ~0.15% of its scale (measured:
      // 2.9% and 3.05% of the floor, 5% of the scale, at two seeds in session 10).
      await parity('attention', { ...run(0) }, { ...run(1) }, dtype, TOL.f32, { tol: 6e-2, floor: 5e-2 });
    });

// ---- norms ---------------------------------------------------------------------------------------

for (const dtype of DTYPES)
  for (const c of [
    { name: 'plain', gate: false, normBeforeGate: false, groupSize: undefined, wDtype: dtype },
    { name: 'f32 weight', gate: false, normBeforeGate: false, groupSize: undefined, wDtype: 'f32' as DType },
    { name: 'gate before, grouped', gate: true, normBeforeGate: false, groupSize: 100, wDtype: dtype },
    { name: 'gate after', gate: true, normBeforeGate: true, groupSize: undefined, wDtype: dtype },
    // 10,000 groups: more than the kernel's 1,024 blocks of 8 warps, so its warps take several each.
    {
      name: 'gate after, grouped, 5,000 rows',
      gate: true,
      normBeforeGate: true,
      groupSize: 48,
      wDtype: dtype,
      rows: 5000,
      dim: 96,
    },
  ])
    test(`rmsNormBackward matches the CPU (${dtype}, ${c.name}, with dSum)`, async () => {
      const [rows, dim] = [c.rows ?? 37, c.dim ?? 400];
      const x = pair(values(rows * dim), [rows, dim], dtype);
      const w = pair(values(dim, 0.5, 1.5), [dim], c.wDtype);
      const gate = c.gate ? pair(values(rows * dim), [rows, dim], dtype) : [null, null];
      const dy = pair(values(rows * dim), [rows, dim], dtype);
      const dSum = pair(values(rows * dim), [rows, dim], dtype);
      const run = (i: 0 | 1) =>
        g.rmsNormBackward(x[i], w[i], dy[i], {
          eps: 1e-5,
          gate: gate[i],
          normBeforeGate: c.normBeforeGate,
          groupSize: c.groupSize,
          dSum: dSum[i],
        });
      await parity('rmsNorm', { ...run(0) }, { ...run(1) }, dtype);
    });

for (const dtype of DTYPES)
  for (const [affine, rows, dim] of [
    [true, 29, 1000],
    [false, 29, 1000],
    [true, 9000, 128], // more rows than the kernel's 1,024 blocks of 8 warps (the tiny vision tower's width)
  ] as const)
    test(`layerNormBackward matches the CPU (${dtype}, ${affine ? 'weight and bias' : 'no parameters'}, ${rows} rows)`, async () => {
      const x = pair(values(rows * dim, -3, 3), [rows, dim], dtype);
      const w = affine ? pair(values(dim, 0.5, 1.5), [dim], dtype) : [null, null];
      const b = affine ? pair(values(dim), [dim], dtype) : [null, null];
      const dy = pair(values(rows * dim), [rows, dim], dtype);
      const run = (i: 0 | 1) => g.layerNormBackward(x[i], w[i], b[i], 1e-5, dy[i]);
      await parity('layerNorm', { ...run(0) }, { ...run(1) }, dtype);
    });

// ---- embedding, losses, AdamW --------------------------------------------------------------------

for (const dtype of DTYPES)
  test(`embeddingBackward matches the CPU (${dtype}, repeated ids)`, async () => {
    const [vocab, dim, n] = [50, 33, 129];
    const ids = Int32Array.from({ length: n }, () => Math.floor(random() * 10) * 5); // many repeats
    const id = pair(ids, [n], 'i32');
    const dOut = pair(values(n * dim), [n, dim], dtype);
    await parity(
      'embedding',
      { dTable: g.embeddingBackward(dOut[0], id[0], vocab) },
      { dTable: g.embeddingBackward(dOut[1], id[1], vocab) },
      dtype,
    );
  });

for (const dtype of DTYPES)
  for (const [rows, vocab] of [
    [13, 1000],
    [3, 50021],
  ])
    test(`crossEntropy matches the CPU (${dtype}, ${rows} rows × ${vocab}, ignored rows)`, async () => {
      const logits = pair(values(rows * vocab, -6, 6), [rows, vocab], dtype);
      const tg = Int32Array.from({ length: rows }, (_, i) =>
        i % 4 === 2 ? -100 : Math.floor(random() * vocab),
      );
      const targets = pair(tg, [rows], 'i32');
      const run = (i: 0 | 1) => g.crossEntropy(logits[i], targets[i], { gradScale: 3 });
      await parity('crossEntropy', { ...run(0) }, { ...run(1) }, dtype, { tol: 1e-4, floor: 1e-3 });
      const none = g.crossEntropy(logits[0], pair(new Int32Array(rows).fill(-100), [rows], 'i32')[0]);
      assert.equal(await none.loss.item(), 0);
    });

for (const dtype of DTYPES)
  test(`klTopK matches the CPU (${dtype}, k 100, padding entries and an empty row)`, async () => {
    const [rows, vocab, k] = [9, 500, 100];
    const ids = new Int32Array(rows * k);
    for (let r = 0; r < rows; r++) {
      const perm = [...Array(vocab).keys()].sort(() => random() - 0.5);
      for (let j = 0; j < k; j++) ids[r * k + j] = perm[j];
    }
    ids.fill(-1, 2 * k + 60, 3 * k);
    ids.fill(-1, 5 * k, 6 * k);
    const logits = pair(values(rows * vocab, -5, 5), [rows, vocab], dtype);
    const tid = pair(ids, [rows, k], 'i32');
    const tv = pair(values(rows * k, -9, -0.1), [rows, k]);
    const run = (i: 0 | 1) => g.klTopK(logits[i], tid[i], tv[i], { gradScale: 0.7 });
    await parity('klTopK', { ...run(0) }, { ...run(1) }, dtype, { tol: 1e-4, floor: 1e-3 });
  });

for (const copyDtype of ['bf16', 'f32', 'f16'] as DType[])
  test(`adamwStep matches the CPU over 3 steps (copy ${copyDtype})`, async () => {
    const n = 10007;
    const p = pair(values(n), [n]);
    const m = [ops.zeros(gpu, [n]), ops.zeros(cpu, [n])];
    const v = [ops.zeros(gpu, [n]), ops.zeros(cpu, [n])];
    const copy = [ops.zeros(gpu, [n], copyDtype), ops.zeros(cpu, [n], copyDtype)];
    for (let step = 1; step <= 3; step++) {
      const grad = pair(values(n, -3, 3), [n]);
      for (const i of [0, 1])
        g.adamwStep(p[i], m[i], v[i], grad[i], {
          lr: 1e-2,
          beta1: 0.9,
          beta2: 0.99,
          eps: 1e-8,
          weightDecay: 0.05,
          step,
          gradScale: 0.5,
          copy: copy[i],
        });
    }
    // f32 on the GPU against f64 on the CPU: m = β₁m + (1−β₁)g may cancel, hence the floor.
    await assertParity(p[0], p[1], 1e-5, 'param', 1e-2);
    await assertParity(m[0], m[1], 1e-5, 'm', 1e-2);
    await assertParity(v[0], v[1], 1e-5, 'v', 1e-2);
    await assertParity(copy[0], copy[1], copyDtype === 'f32' ? 1e-5 : 1e-2, 'copy', 1e-2);
  });

test('adamwSteps over many parameters in one launch matches the CPU (chunk-crossing sizes, two copy dtypes)', async () => {
  const sizes = [10007, 1, 2048, 4097, 3, 70000];
  const copyTypes: (DType | null)[] = ['bf16', null, 'bf16', 'f16', null, 'bf16'];
  const decay = [0.05, 0, 0.1, 0.05, 0, 0.01];
  const p = sizes.map((n) => pair(values(n), [n]));
  const mk = (n: number) => [ops.zeros(gpu, [n]), ops.zeros(cpu, [n])];
  const m = sizes.map(mk);
  const v = sizes.map(mk);
  const copy = sizes.map((n, i) => {
    const d = copyTypes[i];
    return d ? [ops.zeros(gpu, [n], d), ops.zeros(cpu, [n], d)] : [null, null];
  });
  for (let step = 1; step <= 3; step++) {
    const grad = sizes.map((n) => pair(values(n, -3, 3), [n]));
    for (const b of [0, 1])
      g.adamwSteps(
        sizes.map((_, i) => ({
          param: p[i][b],
          m: m[i][b],
          v: v[i][b],
          grad: grad[i][b],
          copy: copy[i][b],
          weightDecay: decay[i],
        })),
        { lr: 1e-2, beta1: 0.9, beta2: 0.99, eps: 1e-8, step, gradScale: 0.5 },
      );
  }
  for (const i of sizes.keys()) {
    await assertParity(p[i][0], p[i][1], 1e-5, `param ${i}`, 1e-2);
    await assertParity(m[i][0], m[i][1], 1e-5, `m ${i}`, 1e-2);
    await assertParity(v[i][0], v[i][1], 1e-5, `v ${i}`, 1e-2);
    const c = copy[i];
    if (c[0] && c[1]) await assertParity(c[0], c[1], 1e-2, `copy ${i}`, 1e-2);
  }
});

test('sumSquares over many tensors in one launch matches the CPU', async () => {
  const sizes = [10007, 1, 2048, 4097, 3, 300001];
  const xs = sizes.map((n) => pair(values(n, -2, 2), [n]));
  const [a, b] = [0, 1].map((i) => g.sumSquares(xs.map((x) => x[i])));
  const [ga, cb] = [await a.item(), await b.item()];
  assert.ok(Math.abs(ga - cb) <= 1e-5 * cb, `${ga} vs ${cb}`);
});
