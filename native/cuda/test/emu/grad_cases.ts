// The cases of native/cuda/test/emu/check.sh grad: each runs one grad.cu launch function under the CPU emulation
// ($GRAD_TEST) and compares its outputs with the CPU backend's grad-ops on the same f32 values.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cpuBackend } from '../../../../src/backends/cpu/index.js';
import { attentionDesc, tensor } from '../../../../src/runtime/ops.js';
import { attentionKeyRanges, attentionQueryRanges } from '../../../../src/runtime/backend.js';
import { bf16ToF32, f32ToBf16 } from '../../../../src/runtime/dtype.js';
import * as g from '../../../../src/runtime/grad-ops.js';
import * as ops from '../../../../src/runtime/ops.js';
import type { Tensor } from '../../../../src/runtime/tensor.js';
import { randn, rng } from '../../../../test/helpers.js';

const cpu = cpuBackend();
const r = rng(7);
const harness = process.env.GRAD_TEST ?? '/tmp/longshot-emu-grad/grad_test';
const dir = mkdtempSync(join(tmpdir(), 'grad-emu-'));

type Arr = Float32Array | Int32Array | Float64Array;
const KIND = (a: Arr) => (a instanceof Float32Array ? 0 : a instanceof Int32Array ? 1 : 2);

function encode(arrays: Record<string, Arr>): Buffer {
  const parts: Buffer[] = [];
  const u32 = (v: number) => Buffer.from(new Uint32Array([v]).buffer);
  const entries = Object.entries(arrays);
  parts.push(u32(entries.length));
  for (const [name, a] of entries) {
    parts.push(u32(name.length), Buffer.from(name), u32(KIND(a)), Buffer.from(new BigUint64Array([BigInt(a.length)]).buffer));
    parts.push(Buffer.from(a.buffer, a.byteOffset, a.byteLength));
  }
  return Buffer.concat(parts);
}

function decode(buf: Buffer): Record<string, Float32Array> {
  const out: Record<string, Float32Array> = {};
  let at = 0;
  const u32 = () => {
    const v = buf.readUInt32LE(at);
    at += 4;
    return v;
  };
  for (let n = u32(); n > 0; n--) {
    const len = u32();
    const name = buf.toString('utf8', at, at + len);
    at += len;
    u32();
    const count = Number(buf.readBigUInt64LE(at));
    at += 8;
    out[name] = new Float32Array(buf.buffer.slice(buf.byteOffset + at, buf.byteOffset + at + count * 4));
    at += count * 4;
  }
  return out;
}

let failures = 0;
/**
 * Each output against the CPU backend's: |got − want| / (|want| + floor·max|want|) ≤ tol. `floor` lifts entries near
 * zero, whose relative error is the summation order's (float atomics add in any order, run to run).
 */
async function check(name: string, op: number, dims: number[], inputs: Record<string, Arr>, expected: Record<string, Tensor | null>, tol = 1e-4, floor = 1e-3) {
  const file = join(dir, 'in.bin');
  writeFileSync(file, encode({ op: Int32Array.of(op), dims: Float64Array.from(dims), ...inputs }));
  execFileSync(harness, [file, join(dir, 'out.bin')], { stdio: 'inherit' });
  const got = decode(readFileSync(join(dir, 'out.bin')));
  for (const [k, t] of Object.entries(expected)) {
    if (!t) continue;
    const want = (await t.data()) as Float32Array;
    const have = got[k];
    let scale = 0;
    for (const v of want) scale = Math.max(scale, Math.abs(v));
    let worst = 0;
    let at = -1;
    for (let i = 0; i < want.length; i++) {
      const e = Math.abs(have[i] - want[i]) / (Math.abs(want[i]) + floor * scale + 1e-30);
      if (!(e <= worst)) [worst, at] = [e, i];
    }
    const ok = have && have.length === want.length && worst <= tol;
    if (!ok) failures++;
    console.log(`${ok ? 'ok  ' : 'FAIL'} ${name} ${k}: max rel err ${worst.toExponential(2)}${ok ? '' : ` at ${at}: ${have?.[at]} vs ${want[at]}`}`);
  }
}

const t = (v: Float32Array | Int32Array, shape: number[], dtype: 'f32' | 'i32' = 'f32') => tensor(cpu, v, shape, dtype);

// SSD: odd sizes, 2 groups, D, initial and final state gradients. Head and state dims ≤ 64 go to the matrix
// kernel in chunks of 32 tokens: one partial chunk (len < 32, len 1), several (300: the last one 12 tokens) and 32
// (1000); the tiny needle models' 32 × 32 (100 tokens, 3 heads of a group); 64 × 64 (shared memory past 48 KB).
// The token-by-token kernel takes dState 100 (tiles of state rows split over 2 blocks, the last one partial, and
// idle threads: 2 rows of 100 in 256 threads), head dim 65, and the least workspace (a head's chunks reversed by
// one block in turn; past 4,096 tokens chunks of ⌈√len⌉ tokens: 4500 in 67 chunks of 68, the last 12), where
// dState 32 and 8 put whole rows in a warp, summed by shuffles (32 with a second, partial tile of one row and idle
// warps). `bare` leaves out D, the initial state and dStateOut.
for (const [batch, len, heads, headDim, groups, dState, least, bare] of [
  [2, 11, 4, 3, 2, 5, 0, 0],
  [1, 6, 2, 7, 1, 64, 0, 0],
  [1, 5, 2, 3, 2, 100, 0, 0],
  [2, 1, 2, 3, 2, 5, 0, 0],
  [2, 300, 4, 3, 2, 5, 0, 0],
  [1, 130, 2, 3, 1, 100, 0, 0],
  [2, 1000, 2, 4, 2, 4, 0, 0],
  [1, 300, 2, 5, 1, 6, 1, 1],
  [1, 4500, 1, 2, 1, 3, 1, 0],
  [2, 70, 3, 9, 1, 32, 0, 0],
  [1, 40, 2, 5, 2, 8, 0, 1],
  [1, 33, 2, 3, 1, 1, 0, 0],
  [2, 70, 3, 9, 1, 32, 1, 0],
  [1, 40, 2, 5, 2, 8, 1, 1],
  [1, 100, 3, 32, 1, 32, 0, 0],
  [1, 45, 2, 64, 1, 64, 0, 1],
  [1, 40, 2, 65, 1, 8, 0, 0],
]) {
  const h: Record<string, Float32Array> = {
    x: randn(batch * len * heads * headDim, r),
    dt: randn(batch * len * heads, r, 0.05, 0.8),
    A: randn(heads, r, -1.5, -0.2),
    B: randn(batch * len * groups * dState, r),
    C: randn(batch * len * groups * dState, r),
    dy: randn(batch * len * heads * headDim, r),
  };
  if (!bare) {
    h.D = randn(heads, r);
    h.state = randn(batch * heads * headDim * dState, r);
    h.dStateOut = randn(batch * heads * headDim * dState, r);
  }
  const opt = (k: string, shape: number[]) => (h[k] ? t(h[k], shape) : null);
  const gr = g.ssdScanBackward(
    {
      x: t(h.x, [batch, len, heads, headDim]),
      dt: t(h.dt, [batch, len, heads]),
      A: t(h.A, [heads]),
      B: t(h.B, [batch, len, groups, dState]),
      C: t(h.C, [batch, len, groups, dState]),
      D: opt('D', [heads]),
      state: opt('state', [batch, heads, headDim, dState]),
    },
    t(h.dy, [batch, len, heads, headDim]),
    opt('dStateOut', [batch, heads, headDim, dState]),
  );
  const name = `ssd len ${len} headDim ${headDim} dState ${dState}${least ? ' least workspace' : ''}${bare ? ' bare' : ''}`;
  // dx sums dState terms, dB/dC the heads and row tiles of a group, by float atomics in any order: an entry near
  // zero moved 2.4e-7 of the scale (1.3e-4 with a floor of 1e-3) at dState 100 in one CI run.
  await check(name, 0, [batch, len, heads, headDim, groups, dState, least], h, { ...gr }, 1e-4, 1e-2);
}

// conv1d: silu, state, bias, dStateOut; 40 channels (a partial block of 32); 2 × 700 rows split dW's sums.
for (const len of [9, 2, 700]) {
  const [batch, C, W] = [2, 40, 4];
  const h = {
    x: randn(batch * len * C, r),
    weight: randn(C * W, r),
    bias: randn(C, r),
    state: randn(batch * (W - 1) * C, r),
    dy: randn(batch * len * C, r),
    dStateOut: randn(batch * (W - 1) * C, r),
  };
  const gr = g.conv1dCausalBackward(t(h.x, [batch, len, C]), t(h.weight, [C, W]), t(h.bias, [C]), t(h.dy, [batch, len, C]), {
    state: t(h.state, [batch, W - 1, C]),
    silu: true,
    dStateOut: t(h.dStateOut, [batch, W - 1, C]),
  });
  await check(`conv1d len ${len}`, 1, [batch, len, C, W, 1], h, { ...gr });
}

// Attention: causal GQA with an offset, kvLength < skv and a batched mask; segments; head dim over 32 lanes.
// Then sizes over several tiles of 32 rows and blocks of 8: a group of 3 (query-head pairs not a multiple of 8) with
// −∞ mask entries and a fully masked query row; segments of 37, 3 and 60 rows that straddle tiles; head dims above
// 128 (shared memory over 48 KB) with keys past kvLength (no query sees them: zero dk, dv).
for (const c of [
  { batch: 2, sq: 5, skv: 12, hq: 4, hkv: 2, d: 40, dv: 33, opts: { causal: true, queryOffset: 4, kvLength: 10 }, mask: 2 },
  { batch: 1, sq: 9, skv: 9, hq: 2, hkv: 1, d: 16, dv: 16, opts: { segments: [0, 4, 9], scale: 0.5 }, mask: 0 },
  { batch: 2, sq: 45, skv: 70, hq: 6, hkv: 2, d: 24, dv: 20, opts: { causal: true, queryOffset: 25 }, mask: 2 },
  { batch: 1, sq: 100, skv: 100, hq: 2, hkv: 2, d: 12, dv: 12, opts: { segments: [0, 37, 40, 100], scale: 0.3 }, mask: 0 },
  { batch: 1, sq: 9, skv: 40, hq: 1, hkv: 1, d: 200, dv: 160, opts: { kvLength: 33 }, mask: 0 },
  // The other accumulator widths (a kernel per 32·2^n of the wider head dim): 128, and 64 set by dv alone.
  { batch: 1, sq: 20, skv: 30, hq: 2, hkv: 1, d: 72, dv: 96, opts: { causal: true, queryOffset: 10 }, mask: 0 },
  { batch: 1, sq: 7, skv: 7, hq: 1, hkv: 1, d: 20, dv: 50, opts: {}, mask: 1 },
]) {
  const { batch, sq, skv, hq, hkv, d, dv } = c;
  const kvLength = c.opts.kvLength ?? skv;
  const h: Record<string, Float32Array | Int32Array> = {
    q: randn(batch * sq * hq * d, r),
    k: randn(batch * skv * hkv * d, r),
    v: randn(batch * skv * hkv * dv, r),
    dOut: randn(batch * sq * hq * dv, r),
  };
  if (c.mask) {
    const mask = randn(c.mask * sq * kvLength, r);
    for (let e = 0; e < mask.length; e += 7) mask[e] = -Infinity;
    if (sq > 20) mask.fill(-Infinity, 20 * kvLength, 21 * kvLength); // query 20 of batch 0 sees nothing
    h.mask = mask;
  }
  const q = t(h.q as Float32Array, [batch, sq, hq, d]);
  const k = t(h.k as Float32Array, [batch, skv, hkv, d]);
  const v = t(h.v as Float32Array, [batch, skv, hkv, dv]);
  const opts = { ...c.opts, mask: c.mask ? t(h.mask as Float32Array, [c.mask, sq, kvLength]) : null };
  const { out } = ops.attention(q, k, v, opts);
  h.out = (await out.data()) as Float32Array;
  const desc = attentionDesc(q, k, v, opts, 'emu');
  h.ranges = attentionKeyRanges(desc);
  h.qranges = attentionQueryRanges(desc);
  const gr = g.attentionBackward(q, k, v, out, t(h.dOut as Float32Array, out.shape as number[]), opts);
  // 1e-3: both sides sum in f32 in different orders, and dS = P·(dP − δ) cancels (errors ~1e-7 of the scale).
  await check(`attention sq ${sq} skv ${skv} d ${d}`, 2, [batch, sq, skv, kvLength, hq, hkv, d, dv, desc.scale, c.mask], h, { ...gr }, 1e-3);
}

// bf16 at head dims 32, 48 and 64 without a mask: the tensor-core kernels. Inputs are bf16 values; the reference
// is the CPU backend in f32 on them (with the rounded output, whose δ = dO·O the kernels use). The outputs are bf16
// (half an ulp is 0.2% of the largest); P and dS enter their products as two bf16 parts each (rounded once, as
// FlashAttention does, they moved dq by up to 2.9e-2 of |want| + 5e-2·max here): 1.5e-2 of |want| + 5e-2·max. Frames as segments of 64 with a
// short last one; text over video keys with GQA, two batches; causal GQA 3 with an offset and keys past kvLength
// (zero dk, dv); more than one 64-row tile on both sides.
const bf16 = (a: Float32Array) => a.map((x) => bf16ToF32(f32ToBf16(x)));
for (const c of [
  { batch: 1, sq: 200, skv: 200, hq: 2, hkv: 2, d: 32, opts: { segments: [0, 64, 128, 192, 200], scale: 0.2 } },
  { batch: 2, sq: 58, skv: 131, hq: 4, hkv: 2, d: 48, opts: {} },
  { batch: 1, sq: 70, skv: 150, hq: 3, hkv: 1, d: 64, opts: { causal: true, queryOffset: 70, kvLength: 140 } },
]) {
  const { batch, sq, skv, hq, hkv, d } = c;
  const h: Record<string, Float32Array | Int32Array> = {
    q: bf16(randn(batch * sq * hq * d, r)),
    k: bf16(randn(batch * skv * hkv * d, r)),
    v: bf16(randn(batch * skv * hkv * d, r)),
    dOut: bf16(randn(batch * sq * hq * d, r)),
  };
  const q = t(h.q as Float32Array, [batch, sq, hq, d]);
  const k = t(h.k as Float32Array, [batch, skv, hkv, d]);
  const v = t(h.v as Float32Array, [batch, skv, hkv, d]);
  const opts = { ...c.opts, mask: null };
  h.out = bf16((await ops.attention(q, k, v, opts).out.data()) as Float32Array);
  const desc = attentionDesc(q, k, v, opts, 'emu');
  h.ranges = attentionKeyRanges(desc);
  h.qranges = attentionQueryRanges(desc);
  const out = t(h.out as Float32Array, [batch, sq, hq, d]);
  const gr = g.attentionBackward(q, k, v, out, t(h.dOut as Float32Array, out.shape as number[]), opts);
  const dims = [batch, sq, skv, desc.kvLength, hq, hkv, d, d, desc.scale, 0, 1];
  await check(`attention bf16 sq ${sq} skv ${skv} d ${d}`, 2, dims, h, { ...gr }, 1.5e-2, 5e-2);
}

// Norms: gated both ways, grouped, dSum; more rows than the kernels' warps (check.sh builds them with 4 blocks of
// 8 at most, LS_NORM_BLOCKS), which then take several rows each into their block's weight-gradient sums.
for (const [gate, nbg, groupSize, rows, dim] of [
  [true, false, 7, 5, 21],
  [true, true, 21, 5, 21],
  [false, false, 21, 5, 21],
  [true, true, 3, 40, 6],
] as const) {
  const h: Record<string, Float32Array> = { x: randn(rows * dim, r), weight: randn(dim, r), dy: randn(rows * dim, r), dSum: randn(rows * dim, r) };
  if (gate) h.gate = randn(rows * dim, r);
  const gr = g.rmsNormBackward(t(h.x, [rows, dim]), t(h.weight, [dim]), t(h.dy, [rows, dim]), {
    eps: 1e-5,
    gate: gate ? t(h.gate, [rows, dim]) : null,
    normBeforeGate: nbg,
    groupSize,
    dSum: t(h.dSum, [rows, dim]),
  });
  await check(`rmsNorm ${rows} rows gate ${gate} after ${nbg} group ${groupSize}`, 3, [rows, dim, groupSize, 1e-5, nbg ? 1 : 0], h, { ...gr });
}
for (const [rows, dim] of [
  [4, 300],
  [70, 5],
]) {
  const h = { x: randn(rows * dim, r, -2, 2), weight: randn(dim, r), dy: randn(rows * dim, r), dSum: randn(rows * dim, r) };
  const gr = g.layerNormBackward(t(h.x, [rows, dim]), t(h.weight, [dim]), t(randn(dim, r), [dim]), 1e-5, t(h.dy, [rows, dim]), {
    dSum: t(h.dSum, [rows, dim]),
  });
  await check(`layerNorm ${rows} rows`, 4, [rows, dim, 1e-5], h, { ...gr });
}

// Embedding with repeated ids; cross-entropy with ignored rows; top-k KL with padding and an empty row; AdamW.
{
  const [n, vocab, dim] = [9, 6, 35];
  const h = { dOut: randn(n * dim, r), ids: Int32Array.from([1, 5, 1, 0, 1, 3, 5, 2, 1]) };
  await check('embedding', 5, [n, vocab, dim], h, { dTable: g.embeddingBackward(t(h.dOut, [n, dim]), t(h.ids, [n], 'i32'), vocab) });
}
{
  const [rows, vocab] = [6, 300];
  const h = { logits: randn(rows * vocab, r, -5, 5), targets: Int32Array.from([3, -100, 299, 0, -100, 17]) };
  const res = g.crossEntropy(t(h.logits, [rows, vocab]), t(h.targets, [rows], 'i32'), { gradScale: 2 });
  await check('crossEntropy', 6, [rows, vocab, -100, 2], h, { loss: res.loss, dLogits: res.dLogits });
}
{
  const [rows, vocab, k] = [4, 50, 7];
  const ids = Int32Array.from({ length: rows * k }, (_, i) => (i * 7 + 3) % vocab);
  ids[k + 2] = -1;
  ids.fill(-1, 2 * k, 3 * k);
  const h = { logits: randn(rows * vocab, r, -3, 3), ids, teacher: randn(rows * k, r, -5, -0.5) };
  const res = g.klTopK(t(h.logits, [rows, vocab]), t(ids, [rows, k], 'i32'), t(h.teacher, [rows, k]), { gradScale: 0.5 });
  await check('klTopK', 7, [rows, vocab, k, 0.5], h, { loss: res.loss, dLogits: res.dLogits });
}
{
  const n = 700;
  const h = { param: randn(n, r), m: randn(n, r, -0.1, 0.1), v: randn(n, r, 0.01, 0.1), grad: randn(n, r) };
  const [p, m, v] = [t(h.param, [n]), t(h.m, [n]), t(h.v, [n])];
  const o = { lr: 1e-2, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1, step: 3, gradScale: 0.5 };
  g.adamwStep(p, m, v, t(h.grad, [n]), o);
  await check('adamw', 8, [o.lr, o.beta1, o.beta2, o.eps, o.weightDecay, o.step, o.gradScale], h, { param: p, m, v, copy: p });
}

{
  const n = 5000; // three blocks of the multi-tensor launch
  const h = { x: randn(n, r, -2, 2) };
  await check('sumSquares', 9, [], h, { sum: g.sumSquares([t(h.x, [n])]) });
}

console.log(failures ? `${failures} mismatches` : 'all grad.cu kernels match the CPU backend under the emulation');
process.exit(failures ? 1 : 0);
