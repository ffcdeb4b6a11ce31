// Parity of the fused attention kernel (native/cuda/attention.cu) with the CPU backend over the shapes the
// models use, at sizes that are not multiples of its tiles: vision segments (block-diagonal, one empty),
// causal GQA with a KV-cache offset and kvLength < skv, decode and cross-attention (split-K), additive masks.
// On sm_90 GPUs the bf16 cases without mask or weights and with ≥ 128 (query, head) rows per kv head run the
// wgmma kernel (attention_sm90.cu): vision, causal, and the multi-tile prefills below; bf16 at head dim 72
// runs them on heads zero-padded to 80.
import { test } from 'node:test';
import type { DType } from '../src/runtime/dtype.js';
import * as ops from '../src/runtime/ops.js';
import type { Tensor } from '../src/runtime/tensor.js';
import { assertParity, FLASH_BF16, pair, randomPair, values } from './helpers.js';

// bf16: FLASH_BF16. f32 runs entirely in f32, in another order of summation: over 4,099 keys (split-K) an output
// that cancels to 1e-3 of the scale carried 1.2e-6 of the scale (session 10), so f32 allows 1e-5 of the scale
// near zero.
const CHECK: Record<string, { tol: number; floor: number }> = {
  bf16: FLASH_BF16,
  f32: { tol: 1e-4, floor: 1e-1 },
};

interface Case {
  batch: number;
  sq: number;
  skv: number;
  hq: number;
  hkv: number;
  d: number;
  opts: ops.AttentionOptions;
  maskBatch?: number;
}

async function parity(name: string, dtype: DType, c: Case): Promise<void> {
  const [gq, cq] = randomPair([c.batch, c.sq, c.hq, c.d], dtype);
  const [gk, ck] = randomPair([c.batch, c.skv, c.hkv, c.d], dtype);
  const [gv, cv] = randomPair([c.batch, c.skv, c.hkv, c.d], dtype, -1, 1);
  let masks: [Tensor, Tensor] | [null, null] = [null, null];
  if (c.maskBatch) {
    const kv = c.opts.kvLength ?? c.skv;
    const m = values(c.maskBatch * c.sq * kv, -2, 2);
    for (let i = 0; i < m.length; i += 7) m[i] = Number.NEGATIVE_INFINITY;
    masks = pair(m, [c.maskBatch, c.sq, kv], 'f32');
  }
  const g = ops.attention(gq, gk, gv, { ...c.opts, mask: masks[0] });
  const r = ops.attention(cq, ck, cv, { ...c.opts, mask: masks[1] });
  const { tol, floor } = CHECK[dtype];
  await assertParity(g.out, r.out, tol, `${name} ${dtype} out`, floor);
  if (g.weights && r.weights)
    await assertParity(g.weights, r.weights, 1e-3, `${name} ${dtype} weights`, 1e-2);
}

for (const dtype of ['bf16', 'f32'] as const) {
  test(`attention ${dtype}: vision segments (d 80, unequal, one empty)`, () =>
    parity('vision', dtype, {
      batch: 1,
      sq: 301,
      skv: 301,
      hq: 3,
      hkv: 3,
      d: 80,
      opts: { segments: [0, 37, 37, 150, 301] },
    }));

  // SigLIP so400m: bf16 runs the tensor-core kernels on heads zero-padded to 80 (the backend's padding).
  test(`attention ${dtype}: 2 images of 729 patches, 16 heads of 72 (SigLIP so400m)`, () =>
    parity('siglip', dtype, { batch: 2, sq: 729, skv: 729, hq: 16, hkv: 16, d: 72, opts: {} }));

  // The tiny needle models' head dims, which have their own tensor-core kernels in bf16 (flash_fwd at 32 and 48):
  // the vision tower's frames as segments of 64 tokens, and a cross-attention of text rows over video keys.
  test(`attention ${dtype}: 6 frames of 64 tokens as segments, 4 heads of 32 (tiny vision tower)`, () =>
    parity('frames-32', dtype, {
      batch: 1,
      sq: 384,
      skv: 384,
      hq: 4,
      hkv: 4,
      d: 32,
      opts: { segments: [0, 64, 128, 192, 256, 320, 384] },
    }));
  test(`attention ${dtype}: 2 × 58 text rows over 384 video keys, GQA 2 (d 48)`, () =>
    parity('cross-48', dtype, { batch: 2, sq: 58, skv: 384, hq: 4, hkv: 2, d: 48, opts: {} }));

  // A decode step at the tiny needle models' 48 (bf16: flash_fwd with one query row).
  test(`attention ${dtype}: one query over a 300-row cache, kvLength 211, GQA 2 (d 48)`, () =>
    parity('decode-48', dtype, {
      batch: 1,
      sq: 1,
      skv: 300,
      hq: 4,
      hkv: 2,
      d: 48,
      opts: { causal: true, queryOffset: 210, kvLength: 211 },
    }));

  test(`attention ${dtype}: causal GQA 7 with queryOffset and kvLength < skv (d 128)`, () =>
    parity('causal', dtype, {
      batch: 1,
      sq: 45,
      skv: 160,
      hq: 7,
      hkv: 1,
      d: 128,
      opts: { causal: true, queryOffset: 100, kvLength: 145 },
    }));

  test(`attention ${dtype}: causal prefill of 2 × 517 tokens, GQA 4 (d 96, several key tiles)`, () =>
    parity('prefill', dtype, {
      batch: 2,
      sq: 517,
      skv: 517,
      hq: 8,
      hkv: 2,
      d: 96,
      opts: { causal: true },
    }));

  test(`attention ${dtype}: 300 queries over the first 611 of 700 keys, GQA 2 (d 64)`, () =>
    parity('kvLength', dtype, {
      batch: 1,
      sq: 300,
      skv: 700,
      hq: 4,
      hkv: 2,
      d: 64,
      opts: { kvLength: 611 },
    }));

  test(`attention ${dtype}: decode step over 3001 cached keys (GQA 4, split-K)`, () =>
    parity('decode', dtype, {
      batch: 2,
      sq: 1,
      skv: 3100,
      hq: 8,
      hkv: 2,
      d: 128,
      opts: { causal: true, queryOffset: 3000, kvLength: 3001 },
    }));

  test(`attention ${dtype}: cross-attention of 37 queries over 4099 keys (split-K)`, () =>
    parity('cross', dtype, { batch: 1, sq: 37, skv: 4099, hq: 8, hkv: 2, d: 64, opts: {} }));

  test(`attention ${dtype}: additive per-batch mask with -inf entries (d 96, causal)`, () =>
    parity('mask', dtype, {
      batch: 2,
      sq: 33,
      skv: 70,
      hq: 4,
      hkv: 2,
      d: 96,
      opts: { causal: true, queryOffset: 37 },
      maskBatch: 2,
    }));

  test(`attention ${dtype}: returned weights with GQA and a shared mask`, () =>
    parity('weights', dtype, {
      batch: 1,
      sq: 20,
      skv: 41,
      hq: 4,
      hkv: 2,
      d: 64,
      opts: { returnWeights: true },
      maskBatch: 1,
    }));
}
