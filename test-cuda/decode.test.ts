// The decode step on the GPU against the CPU backend. attention_rows' planning (native/cuda/decode.cu): rows
// continuing one prefix read it together (in bf16 at head dims 64/80/96/128 on flash_fwd's tensor-core tiles, else
// two rows of a GQA-7 group to a CTA), rows sharing their own keys (Vamba's video), rows with no keys of their own
// yet, GQA groups wider than one CTA's 16 query vectors, head dims that take scalar loads, a long prefix split
// across many CTAs. The fused one-token step (q‖k‖v and gate‖up in one GEMM, q‖k in one rotary; a lone token
// over a segmented cache through attention_rows) against the CPU's separate projections.
import { describe, test } from 'node:test';
import * as ops from '../src/runtime/ops.js';
import type { Tensor } from '../src/runtime/tensor.js';
import { assertCloseScaled } from '../test/helpers.js';
import { attentionStep, mlpStep } from '../test/nn/fused-step.js';
import { assertParity, cpu, FLASH_BF16, gpu, pair, values } from './helpers.js';

type Pair = [Tensor, Tensor];
const kvPair = (cap: number, hkv: number, d: number, dv: number, dtype: 'f32' | 'bf16') => ({
  k: pair(values(cap * hkv * d), [1, cap, hkv, d], dtype) as Pair,
  v: pair(values(cap * hkv * dv), [1, cap, hkv, dv], dtype) as Pair,
});

interface Case {
  name: string;
  hq: number;
  hkv: number;
  d: number;
  dv: number;
  lengths: number[];
  /** Per row: index into prefixes, or -1. */
  prefixOf: number[];
  /** Prefix lengths (each its own buffer; two entries may name one buffer with different lengths). */
  prefixes: { buffer: number; length: number }[];
  /** Every row's own keys are row 0's buffer (Vamba's video K/V in cross-attention). */
  ownShared?: boolean;
}

const CASES: Case[] = [
  {
    name: 'GQA 7, six rows on one prefix (two to a CTA), one on a shorter view of it',
    hq: 28,
    hkv: 4,
    d: 128,
    dv: 128,
    lengths: [1, 0, 5, 64, 65, 2, 9],
    prefixOf: [0, 0, 0, 0, 0, 0, 1],
    prefixes: [
      { buffer: 0, length: 1500 },
      { buffer: 0, length: 700 },
    ],
  },
  {
    name: 'GQA 20 (two head chunks), two prefixes, a row without',
    hq: 40,
    hkv: 2,
    d: 64,
    dv: 64,
    lengths: [3, 300, 17, 1],
    prefixOf: [0, -1, 1, 0],
    prefixes: [
      { buffer: 0, length: 129 },
      { buffer: 1, length: 513 },
    ],
  },
  {
    name: 'head dims 36 / 20 (scalar loads)',
    hq: 6,
    hkv: 3,
    d: 36,
    dv: 20,
    lengths: [77, 1, 2],
    prefixOf: [-1, 0, 0],
    prefixes: [{ buffer: 0, length: 260 }],
  },
  {
    name: "own keys of three rows in one buffer (Vamba's cross-attention over one video)",
    hq: 28,
    hkv: 4,
    d: 128,
    dv: 128,
    lengths: [1400, 1400, 1400],
    prefixOf: [-1, -1, -1],
    prefixes: [],
    ownShared: true,
  },
];

for (const dtype of ['f32', 'bf16'] as const)
  describe(`attentionRows planning (${dtype})`, () => {
    for (const c of CASES)
      test(c.name, async () => {
        const bufs = [0, 1].map(() => kvPair(1600, c.hkv, c.d, c.dv, dtype));
        const own = c.lengths.map((n) => kvPair(Math.max(n, 1) + 2, c.hkv, c.d, c.dv, dtype));
        if (c.ownShared) own.fill(own[0]);
        const [qg, qc] = pair(values(c.lengths.length * c.hq * c.d), [c.lengths.length, c.hq, c.d], dtype);
        const kvs = (side: 0 | 1) =>
          c.lengths.map((length, i) => {
            const p = c.prefixOf[i] >= 0 ? c.prefixes[c.prefixOf[i]] : null;
            return {
              k: own[i].k[side],
              v: own[i].v[side],
              length,
              prefix: p ? { k: bufs[p.buffer].k[side], v: bufs[p.buffer].v[side], length: p.length } : null,
            };
          });
        const got = ops.attentionRows(qg, kvs(0));
        const want = ops.attentionRows(qc, kvs(1));
        // Split-key sums round differently from one pass (as test-cuda/attention.test.ts judges decode).
        if (dtype === 'f32') await assertParity(got, want, 1e-4, 'attentionRows', 1e-2);
        // bf16: keys several rows read run on flash_fwd's tiles, judged as flash attention is.
        else await assertParity(got, want, FLASH_BF16.tol, 'attentionRows', FLASH_BF16.floor);
        for (const t of [qg, qc, got, want]) t.dispose();
        for (const b of new Set([...bufs, ...own])) for (const t of [...b.k, ...b.v]) t.dispose();
      });
  });

test('scatterRows: 40 rows (two launches of destinations passed by value)', async () => {
  const rows = 40;
  const row = 2 * 16;
  const cap = (i: number) => (i % 5) + 2;
  const dsts = Array.from({ length: rows }, (_, i) => pair(values(cap(i) * row), [1, cap(i), 2, 16]));
  const at = dsts.map((_, i) => (i * 7) % cap(i));
  const [xg, xc] = pair(values(rows * row), [rows, row]);
  ops.scatterRows(
    xg,
    dsts.map((d, i) => ({ dst: d[0], at: at[i] })),
  );
  ops.scatterRows(
    xc,
    dsts.map((d, i) => ({ dst: d[1], at: at[i] })),
  );
  for (const [g, c] of dsts) await assertParity(g, c, 0, 'scatterRows');
});

for (const dtype of ['f32', 'bf16'] as const)
  describe(`fused one-token step on the GPU = separate projections on the CPU (${dtype})`, () => {
    const tol = dtype === 'f32' ? 1e-4 : 3e-2;
    test('self-attention with a KV cache and RoPE', async () => {
      assertCloseScaled(await attentionStep(gpu, true, dtype), await attentionStep(cpu, false, dtype), tol);
    });
    test('self-attention over a segmented cache (attention_rows, one row)', async () => {
      assertCloseScaled(
        await attentionStep(gpu, true, dtype, true),
        await attentionStep(cpu, false, dtype),
        tol,
      );
    });
    test('gated MLP', async () => {
      assertCloseScaled(await mlpStep(gpu, true, dtype), await mlpStep(cpu, false, dtype), tol);
    });
  });
