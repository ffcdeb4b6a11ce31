// Tensor memory ownership: tidy/keep/dispose/using, views, use-after-dispose and front-end shape errors.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import * as ops from '../../src/runtime/ops.js';
import { keep, tidy, tidyAsync } from '../../src/runtime/scope.js';
import { ShapeError } from '../../src/runtime/shape.js';

const cpu = cpuBackend();
const live = () => cpu.memory().current;

test('tidy frees everything made inside except what it returns (arrays, objects, Maps)', () => {
  const start = live();
  const { a, list, map } = tidy(() => {
    const x = ops.full(cpu, [4], 1);
    const y = ops.add(x, x);
    ops.mul(y, y);
    return { a: y, list: [ops.full(cpu, [2], 2)], map: new Map([['m', ops.full(cpu, [3], 3)]]) };
  });
  assert.equal(live() - start, (4 + 2 + 3) * 4);
  for (const t of [a, list[0], map.get('m')!]) t.dispose();
  assert.equal(live(), start);
  // An exception inside frees everything and propagates.
  assert.throws(
    () =>
      tidy(() => {
        ops.full(cpu, [100], 1);
        throw new Error('boom');
      }),
    /boom/,
  );
  assert.equal(live(), start);
  assert.throws(() => tidy((async () => ops.full(cpu, [1], 1)) as never), /synchronous/);
});

test('keep and nested tidy: survivors move to the enclosing scope', () => {
  const start = live();
  let kept!: ReturnType<typeof ops.full>;
  const outer = tidy(() => {
    const inner = tidy(() => {
      kept = keep(ops.full(cpu, [5], 1));
      ops.full(cpu, [7], 1);
      return ops.full(cpu, [2], 1);
    });
    assert.equal(live() - start, (5 + 2) * 4, 'inner scope freed its temporary');
    ops.add(inner, inner); // a temporary of the outer scope
    return 42;
  });
  assert.equal(outer, 42);
  // The inner result belonged to the outer scope and was freed with it; the kept one lives on.
  assert.equal(live() - start, 5 * 4);
  assert.equal(kept.disposed, false);
  kept.dispose();
  assert.equal(live(), start);
});

test('tidyAsync: its scope spans awaits, frees all but the result and kept tensors, and frees on errors', async () => {
  const start = live();
  let kept!: ReturnType<typeof ops.full>;
  const out = await tidyAsync(async () => {
    const x = ops.full(cpu, [4], 1);
    await new Promise((r) => setTimeout(r, 1));
    const y = tidy(() => ops.add(x, ops.full(cpu, [4], 2))); // survives into the async scope
    await Promise.resolve();
    kept = keep(ops.full(cpu, [3], 1));
    return ops.mul(y, y);
  });
  assert.equal(live() - start, (4 + 3) * 4, 'the result and the kept tensor are left');
  assert.deepEqual(await out.toArray(), [9, 9, 9, 9]);
  out.dispose();
  kept.dispose();
  await assert.rejects(
    tidyAsync(async () => {
      ops.full(cpu, [6], 1);
      await Promise.resolve();
      throw new Error('boom');
    }),
    /boom/,
  );
  assert.equal(live(), start);
});

test('views keep the buffer alive until the last one is disposed; dispose is idempotent', async () => {
  const start = live();
  const base = ops.tensor(cpu, [1, 2, 3, 4, 5, 6], [3, 2]);
  const view = base.reshape([6]);
  const rows = base.narrow(1, 3);
  base.dispose();
  base.dispose();
  assert.equal(live() - start, 24, 'buffer still held by the views');
  assert.deepEqual(await rows.toArray(), [3, 4, 5, 6]);
  view.dispose();
  assert.equal(live() - start, 24);
  rows.dispose();
  assert.equal(live(), start);
});

test('`using` disposes at the end of the block', () => {
  const start = live();
  {
    using t = ops.full(cpu, [8], 1);
    assert.equal(live() - start, 32);
    assert.equal(t.size, 8);
  }
  assert.equal(live(), start);
});

test('use after dispose is an error naming the op and tensor', async () => {
  const t = ops.full(cpu, [2, 3], 1);
  t.dispose();
  assert.throws(() => ops.add(t, t), /add: tensor \[2, 3\] f32 was already disposed/);
  assert.throws(() => t.reshape([6]), /already disposed/);
  await assert.rejects(t.toArray(), /read: tensor \[2, 3\] f32 was already disposed/);
  for (const use of [
    () => ops.sum(t),
    () => ops.argmax(t),
    () => ops.flip(t, 0),
    () => ops.sample(t, new Float32Array(2)),
  ])
    assert.throws(use, /already disposed/);
  const ids = ops.tensor(cpu, new Int32Array([0]), [1], 'i32');
  ids.dispose();
  assert.throws(
    () => ops.embedding(ops.zeros(cpu, [2, 2]), ids),
    /embedding: tensor \[1\] i32 was already disposed/,
  );
});

test('a kernel error (embedding id out of range) does not leak the output', () => {
  const table = ops.zeros(cpu, [4, 3]);
  const ids = ops.tensor(cpu, new Int32Array([1, 9]), [2], 'i32');
  const start = live();
  assert.throws(() => ops.embedding(table, ids), /id 9 is outside the vocabulary of 4/);
  assert.equal(live(), start);
});

test('shape errors name the op and the shapes', () => {
  const a = ops.zeros(cpu, [2, 3]);
  const b = ops.zeros(cpu, [4, 5]);
  assert.throws(
    () => ops.matmul(a, b),
    (e: Error) =>
      e instanceof ShapeError &&
      /matmul: inner dimensions 3 and 4 differ \(a \[2, 3\], b \[4, 5\]\)/.test(e.message),
  );
  assert.throws(
    () => ops.matmul(a, ops.zeros(cpu, [3, 2]), { bias: ops.zeros(cpu, [3]) }),
    /bias f32 \[3\] does not match n = 2/,
  );
  assert.throws(() => ops.linear(a, b), /linear: input \[2, 3\] does not match weight \[4, 5\]/);
  assert.throws(() => ops.permute(a, [0, 0]), /not a permutation/);
  assert.throws(() => ops.tensor(cpu, [1, 2, 3], [2, 2]), /3 values do not fill shape \[2, 2\]/);
  assert.throws(() => ops.empty(cpu, [2, -1]), /invalid shape/);
  assert.throws(() => ops.reduce('sum', a, 2), /axis 2 is out of range for rank 2/);
  assert.throws(() => ops.unary('exp', ops.zeros(cpu, [2], 'i32')), /expected a float tensor, got i32/);
  assert.throws(() => ops.attention(a, a, a), /expected \[batch, seq, heads, dim\]/);
  assert.throws(() => ops.ssmStep({ x: a, dt: a, A: a, B: a, C: a, state: a }), /ssmStep: x must be/);
});

test('memory stats: peak tracks the high-water mark and resetPeak lowers it to current', () => {
  cpu.resetPeak();
  const base = cpu.memory();
  assert.equal(base.peak, base.current);
  const t = ops.zeros(cpu, [1000]);
  t.dispose();
  const after = cpu.memory();
  assert.equal(after.current, base.current);
  assert.equal(after.peak, base.current + 4000);
  assert.ok(after.reserved >= after.current);
});
