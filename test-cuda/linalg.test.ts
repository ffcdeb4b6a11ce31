import { test } from 'node:test';
import { mrope, rope1d, rotaryTensors, visionRope2d } from '../src/nn/rotary.js';
import type { DType } from '../src/runtime/dtype.js';
import * as ops from '../src/runtime/ops.js';
import { assertParity, cpu, gpu, random, randomPair, TOL } from './helpers.js';

// f32 runs with CUBLAS_COMPUTE_32F (no TF32), so it matches the CPU to ~1e-5 per product; 1e-4 covers k terms.
// Sums of up to 257 terms of size ~1 cancel: elements are judged against 1e-2 of the output scale.
const MATMUL_TOL: Record<string, number> = { f32: 1e-4, bf16: 1e-2 };

test('matmul: transposes, batches, shared weights, bias and alpha at odd shapes', async () => {
  for (const dtype of ['f32', 'bf16'] as DType[])
    for (const [m, n, k] of [
      [37, 53, 29],
      [1, 129, 7],
      [130, 3, 257],
    ])
      for (const transA of [false, true])
        for (const transB of [false, true])
          for (const batch of [1, 3]) {
            const sa = transA ? [k, m] : [m, k];
            const sb = transB ? [n, k] : [k, n];
            const [ga, ca] = randomPair(batch > 1 ? [batch, ...sa] : sa, dtype, -1, 1);
            for (const bBatched of batch > 1 ? [false, true] : [false]) {
              const [gb, cb] = randomPair(bBatched ? [batch, ...sb] : sb, dtype, -1, 1);
              const [gbias, cbias] = randomPair([n], dtype);
              const what = `${dtype} m${m} n${n} k${k} tA${transA} tB${transB} batch${batch} bB${bBatched}`;
              await assertParity(
                ops.matmul(ga, gb, { transA, transB }),
                ops.matmul(ca, cb, { transA, transB }),
                MATMUL_TOL[dtype],
                what,
                1e-2,
              );
              // cuBLASLt's bias epilogue (as PyTorch's addmm) adds the bias to the product in the output
              // precision, so a sum that cancels carries the rounding of its terms: judge it at their scale.
              await assertParity(
                ops.matmul(ga, gb, { transA, transB, bias: gbias, alpha: 0.5 }),
                ops.matmul(ca, cb, { transA, transB, bias: cbias, alpha: 0.5 }),
                MATMUL_TOL[dtype],
                `${what} +bias α=0.5`,
                dtype === 'bf16' ? 0.3 : 1e-2,
              );
              // bf16 operands into an f32 result (the backward products of bf16 training): both sides multiply
              // the same bf16 values in f32, so only the order of summation differs.
              if (dtype === 'bf16') {
                const opts = { transA, transB, alpha: 0.5, outDtype: 'f32' as const };
                const got = ops.matmul(ga, gb, opts);
                if (got.dtype !== 'f32') throw new Error(`${what}: result ${got.dtype}`);
                await assertParity(got, ops.matmul(ca, cb, opts), MATMUL_TOL.f32, `${what} → f32`, 1e-2);
              }
            }
          }
});

test('linear (x·Wᵀ + b) on a 3-D input', async () => {
  const [gx, cx] = randomPair([2, 37, 96], 'bf16', -1, 1);
  const [gw, cw] = randomPair([200, 96], 'bf16', -0.2, 0.2);
  const [gb, cb] = randomPair([200], 'bf16');
  await assertParity(ops.linear(gx, gw, gb), ops.linear(cx, cw, cb), MATMUL_TOL.bf16, 'linear bf16');
});

test('rmsNorm: plain, f32 weight on bf16 input, gated both ways, grouped', async () => {
  for (const dtype of ['f32', 'bf16'] as DType[]) {
    for (const dim of [37, 64, 1280, 3584, 7168, 20_000, 70_000]) {
      const [gx, cx] = randomPair([5, dim], dtype);
      const [gw, cw] = randomPair([dim], dtype, 0.5, 1.5);
      const [gf, cf] = randomPair([dim], 'f32', 0.5, 1.5);
      const [gg, cg] = randomPair([5, dim], dtype);
      const t = TOL[dtype] * 2;
      await assertParity(
        ops.rmsNorm(gx, gw, { eps: 1e-6 }),
        ops.rmsNorm(cx, cw, { eps: 1e-6 }),
        t,
        `rms ${dim}`,
      );
      await assertParity(
        ops.rmsNorm(gx, null, { eps: 1e-6 }),
        ops.rmsNorm(cx, null, { eps: 1e-6 }),
        t,
        'rms no w',
      );
      await assertParity(
        ops.rmsNorm(gx, gf, { eps: 1e-5 }),
        ops.rmsNorm(cx, cf, { eps: 1e-5 }),
        t,
        'rms f32 w',
      );
      for (const normBeforeGate of [false, true])
        await assertParity(
          ops.rmsNorm(gx, gw, { eps: 1e-5, gate: gg, normBeforeGate }),
          ops.rmsNorm(cx, cw, { eps: 1e-5, gate: cg, normBeforeGate }),
          t,
          `rms gated nbg=${normBeforeGate} ${dtype} ${dim}`,
        );
    }
    for (const groupSize of [40, 448]) {
      const [gx, cx] = randomPair([3, 8 * groupSize], dtype);
      const [gw, cw] = randomPair([8 * groupSize], dtype, 0.5, 1.5);
      const [gg, cg] = randomPair([3, 8 * groupSize], dtype);
      await assertParity(
        ops.rmsNorm(gx, gw, { eps: 1e-5, gate: gg, groupSize }),
        ops.rmsNorm(cx, cw, { eps: 1e-5, gate: cg, groupSize }),
        TOL[dtype] * 2,
        `rms grouped ${groupSize} ${dtype}`,
      );
    }
  }
});

test('layerNorm with and without affine parameters, large mean', async () => {
  // Inputs in [3, 7]: the f32 mean and x − mean carry an ulp of x (the CPU works in f64), ~4.8e-7 at 7, so
  // outputs near zero are judged at 1e-2 of the output scale (~1.7), where one such ulp weighs ~2.4e-5: f32
  // is allowed 8 of them (the CPU backend's C kernel accumulates in f32 too, no longer in f64).
  for (const dtype of ['f32', 'bf16'] as DType[])
    for (const dim of [37, 1280, 3584, 5000, 9000]) {
      const [gx, cx] = randomPair([7, dim], dtype, 3, 7);
      const [gw, cw] = randomPair([dim], dtype);
      const [gb, cb] = randomPair([dim], dtype);
      const t = dtype === 'f32' ? 2e-4 : TOL[dtype] * 3;
      await assertParity(
        ops.layerNorm(gx, gw, gb, 1e-6),
        ops.layerNorm(cx, cw, cb, 1e-6),
        t,
        `ln ${dim}`,
        1e-2,
      );
      await assertParity(
        ops.layerNorm(gx, null, null, 1e-5),
        ops.layerNorm(cx, null, null, 1e-5),
        t,
        'ln',
        1e-2,
      );
    }
});

test('softmax over short and vocabulary-sized rows', async () => {
  for (const dtype of ['f32', 'bf16'] as DType[])
    for (const [rows, dim] of [
      [13, 37],
      [7, 3584],
      [5, 10_000],
      [3, 151_655],
    ]) {
      const [gx, cx] = randomPair([rows, dim], dtype, -20, 20);
      await assertParity(ops.softmax(gx), ops.softmax(cx), TOL[dtype] * 2, `softmax ${rows}×${dim} ${dtype}`);
    }
});

test('rotary: shared and per-batch tables, partial rotary dim, packed full-width heads', async () => {
  // [table batch, headDim, rotary dim, heads]: full width goes to the packed kernel (heads in groups of 4,
  // here 3, 5 and 7 of them: partial groups), partial width to the per-pair kernel.
  for (const dtype of ['f32', 'bf16'] as DType[])
    for (const [tableBatch, headDim, rot, heads] of [
      [1, 64, 64, 3],
      [2, 64, 32, 3],
      [2, 128, 128, 7],
      [1, 80, 80, 5],
    ]) {
      const [gx, cx] = randomPair([2, 13, heads, headDim], dtype);
      const tshape = tableBatch === 1 ? [13, rot] : [2, 13, rot];
      const [gc, cc] = randomPair(tshape, 'f32', -1, 1);
      const [gs, cs] = randomPair(tshape, 'f32', -1, 1);
      await assertParity(
        ops.rotary(gx, gc, gs),
        ops.rotary(cx, cc, cs),
        TOL[dtype],
        `rotary ${dtype} d${headDim} rot${rot} tables×${tableBatch}`,
        // x1·cos − x2·sin cancels products of the data's size: their f32 rounding sets the floor.
        1e-2,
      );
    }
});

test('ropeTable: 1-D, M-RoPE and 2-D vision tables on the GPU, positions up to 600,000', async () => {
  const seq = 1037;
  // Positions far along an hour of video: the angles reach 6·10^5 rad, where sincosf's argument reduction counts.
  const row = (scale: number) => Array.from({ length: seq }, () => Math.floor(random() * scale));
  for (const t of [
    rope1d(row(600_000), 128, 1_000_000),
    mrope([row(600_000), row(30), row(50)], 128, 1_000_000, [16, 24, 24]),
    visionRope2d(row(46), row(82), 80),
  ]) {
    const g = rotaryTensors(gpu, t);
    const c = rotaryTensors(cpu, t);
    // cos/sin within a few f32 ulps of the correctly rounded CPU values: judged absolutely (floor = scale 1).
    await assertParity(g.cos, c.cos, 1e-6, `ropeTable cos ×${t.positions.length} rows`, 1);
    await assertParity(g.sin, c.sin, 1e-6, `ropeTable sin ×${t.positions.length} rows`, 1);
  }
});

test('rmsNorm and layerNorm with a fused residual add: the stored sum exactly, the norm of it', async () => {
  for (const dtype of ['f32', 'bf16'] as DType[]) {
    // Single elements, 16-byte packs in the row kernels (1280, 3584) and the block-per-row fallback (20,000).
    for (const dim of [37, 1280, 3584, 20_000]) {
      const [gx, cx] = randomPair([5, dim], dtype);
      const [gr, cr] = randomPair([5, dim], dtype);
      const [gw, cw] = randomPair([dim], dtype, 0.5, 1.5);
      const [gb, cb] = randomPair([dim], dtype);
      const t = TOL[dtype] * 2;
      const g = ops.addRmsNorm(gx, gr, gw, { eps: 1e-6 });
      const c = ops.addRmsNorm(cx, cr, cw, { eps: 1e-6 });
      await assertParity(g.sum, c.sum, 0, `rms sum ${dtype} ${dim}`);
      await assertParity(g.out, c.out, t, `rms ${dtype} ${dim}`);
      const gl = ops.addLayerNorm(gx, gr, gw, gb, 1e-6);
      const cl = ops.addLayerNorm(cx, cr, cw, cb, 1e-6);
      await assertParity(gl.sum, cl.sum, 0, `layer sum ${dtype} ${dim}`);
      // w·x̂ + b cancels terms of the data's size where the output is near zero: their rounding sets the floor.
      // f32 over 20,000 elements: one such element (1.6e-4 of a scale ~1) carried 2.2e-5 (session 13).
      await assertParity(gl.out, cl.out, dtype === 'f32' ? 5e-5 : t, `layer ${dtype} ${dim}`, 1e-2);
    }
  }
});
