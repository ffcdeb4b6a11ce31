import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Qwen2VLVisionConfig } from '../src/models/qwen2vl/config.js';
import { defaultProcessor, type RgbImage } from '../src/models/qwen2vl/processor.js';
import type { DType } from '../src/runtime/dtype.js';
import * as ops from '../src/runtime/ops.js';
import { ShapeError } from '../src/runtime/shape.js';
import { assertParity, gpu, pair, random, randomPair, TOL } from './helpers.js';

const DTYPES: DType[] = ['f32', 'bf16', 'i32'];

test('embedding gathers rows (dims that do and do not fill 16-byte units)', async () => {
  for (const dtype of ['f32', 'bf16'] as DType[])
    for (const dim of [37, 64]) {
      const [gt, ct] = randomPair([1000, dim], dtype);
      const ids = Int32Array.from({ length: 2 * 13 }, () => Math.floor(random() * 1000));
      const [gi, ci] = pair(ids, [2, 13], 'i32');
      await assertParity(ops.embedding(gt, gi), ops.embedding(ct, ci), 0, `embedding ${dtype} ${dim}`);
    }
});

test('an embedding id outside the vocabulary is reported at the next download, like the CPU backend', async () => {
  const [gt] = randomPair([10, 8], 'bf16');
  const [gi] = pair([3, 10, 4], [3], 'i32');
  const out = ops.embedding(gt, gi);
  await assert.rejects(
    out.data(),
    (e: unknown) => e instanceof ShapeError && /id 10 is outside/.test(e.message),
  );
  const ok = ops.embedding(gt, ops.slice(gi, 0, 0, 1));
  assert.equal((await ok.data()).length, 8, 'the error is reported once and the device keeps working');
});

test('slice, split, writeSlice and concat along every axis', async () => {
  for (const dtype of DTYPES) {
    const src = Float32Array.from({ length: 3 * 7 * 5 }, () => Math.floor(random() * 1000) - 500);
    const [g, c] = pair(src, [3, 7, 5], dtype);
    for (const axis of [0, 1, 2]) {
      await assertParity(
        ops.slice(g, axis, 1, 3),
        ops.slice(c, axis, 1, 3),
        0,
        `slice ${dtype} axis ${axis}`,
      );
      const gs = ops.split(g, axis, [1, g.shape[axis] - 1]);
      const cs = ops.split(c, axis, [1, c.shape[axis] - 1]);
      await assertParity(
        ops.concat([gs[1], gs[0]], axis),
        ops.concat([cs[1], cs[0]], axis),
        0,
        `concat ${axis}`,
      );
    }
    const [gd, cd] = pair(new Float32Array(3 * 9 * 5), [3, 9, 5], dtype);
    ops.writeSlice(gd, g, 1, 2);
    ops.writeSlice(cd, c, 1, 2);
    await assertParity(gd, cd, 0, `writeSlice ${dtype}`);
  }
});

test('permute and transpose, flips along each axis', async () => {
  for (const dtype of DTYPES) {
    const src = Float32Array.from({ length: 2 * 13 * 3 * 8 }, () => Math.floor(random() * 1000) - 500);
    const [g, c] = pair(src, [2, 13, 3, 8], dtype);
    for (const perm of [
      [0, 2, 1, 3],
      [3, 2, 1, 0],
      [1, 0, 2, 3],
      [0, 1, 3, 2],
      [2, 3, 0, 1],
    ])
      await assertParity(ops.permute(g, perm), ops.permute(c, perm), 0, `permute ${dtype} ${perm}`);
    for (const axis of [0, 1, 2, 3])
      await assertParity(ops.flip(g, axis), ops.flip(c, axis), 0, `flip ${axis}`);
  }
});

// A long middle axis into few outputs (a bias gradient: rows × 192) takes the split two-pass kernel.
test('sum, mean and max over a long middle axis into few outputs (split across blocks)', async () => {
  for (const [shape, axis] of [
    [[30001, 192], 0],
    [[3, 5003, 70], 1],
    [[2, 1000, 7], 1],
  ] as [number[], number][])
    for (const dtype of ['f32', 'bf16'] as DType[]) {
      const [g, c] = randomPair(shape, dtype);
      for (const op of ['sum', 'mean', 'max'] as const)
        await assertParity(
          ops.reduce(op, g, axis),
          ops.reduce(op, c, axis),
          TOL[dtype] * 10,
          `${op} over ${shape.join('×')} axis ${axis} (${dtype})`,
          op === 'max' ? undefined : 0.05,
        );
    }
});

test('sum, mean and max over every axis; argmax with ties picks the first', async () => {
  for (const dtype of ['f32', 'bf16'] as DType[]) {
    const [g, c] = randomPair([5, 37, 13], dtype);
    for (const op of ['sum', 'mean', 'max'] as const)
      for (const axis of [0, 1, 2])
        await assertParity(
          ops.reduce(op, g, axis),
          ops.reduce(op, c, axis),
          TOL[dtype] * 10,
          `${op} ${axis}`,
        );
    const [ga, ca] = randomPair([7, 1001], dtype);
    await assertParity(ops.argmax(ga), ops.argmax(ca), 0, `argmax ${dtype}`);
  }
  const [g] = pair([1, 3, 3, 2, 3], [5], 'f32');
  assert.deepEqual(await ops.argmax(g).toArray(), [1]);
});

test('Qwen2-VL patch rows made on the GPU (videosOn) equal the host processor bit for bit', async () => {
  const p = defaultProcessor({
    patch_size: 14,
    temporal_patch_size: 2,
    spatial_merge_size: 2,
  } as Qwen2VLVisionConfig);
  const clip = (n: number, w: number, h: number): RgbImage[] =>
    Array.from({ length: n }, () => ({
      width: w,
      height: h,
      data: Uint8Array.from({ length: w * h * 3 }, () => Math.floor(random() * 256)),
    }));
  for (const videos of [
    [clip(32, 112, 112), clip(32, 112, 112), clip(32, 112, 112)],
    [clip(3, 56, 84), clip(4, 112, 56)],
  ]) {
    const host = p.processVideos(videos);
    const dev = p.videosOn(gpu, videos);
    assert.deepEqual(dev.grids, host.grids);
    assert.deepEqual(await dev.pixels.data(), host.pixelValues);
    dev.pixels.dispose();
  }
});
