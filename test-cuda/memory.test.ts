import assert from 'node:assert/strict';
import { test } from 'node:test';
import { OutOfMemoryError } from '../src/errors.js';
import * as ops from '../src/runtime/ops.js';
import { gpu } from './helpers.js';

test('memory stats follow allocations; freed blocks are cached and reused', async () => {
  await gpu.synchronize();
  const before = gpu.memory();
  gpu.resetPeak();
  const a = ops.empty(gpu, [1000, 1000], 'f32'); // 4 MB
  const b = ops.empty(gpu, [333], 'bf16'); // 666 B
  const mid = gpu.memory();
  assert.equal(mid.current - before.current, 4_000_000 + 666);
  assert.equal(mid.peak, mid.current);
  assert.ok(mid.reserved >= mid.current);
  a.dispose();
  b.dispose();
  const after = gpu.memory();
  assert.equal(after.current, before.current);
  assert.equal(after.peak, mid.peak, 'peak survives frees');
  assert.ok(after.reserved >= mid.current - before.current, 'freed blocks stay reserved (cached)');
  const c = ops.empty(gpu, [1000, 1000], 'f32');
  assert.equal(gpu.memory().reserved, after.reserved, 'same size class reuses the cached block');
  c.dispose();
  gpu.resetPeak();
  assert.equal(gpu.memory().peak, gpu.memory().current);
});

test('an impossible allocation raises OutOfMemoryError with the numbers, and the device keeps working', () => {
  assert.throws(
    () => ops.empty(gpu, [2 ** 50], 'u8'),
    (e: unknown) =>
      e instanceof OutOfMemoryError &&
      e.kind === 'oom' &&
      /requested 1073741824 MiB/.test(e.message) &&
      /free of/.test(e.message) &&
      /this process holds/.test(e.message),
  );
  const t = ops.full(gpu, [5], 2, 'f32');
  return t.toArray().then((v) => assert.deepEqual(v, [2, 2, 2, 2, 2]));
});

test('release of a disposed tensor twice is an error, not a double free', () => {
  const t = ops.empty(gpu, [10], 'f32');
  const storage = t.storage;
  t.dispose();
  assert.throws(() => gpu.release(storage), /already released/);
});
