// Copies, views, reductions, argmax and embedding against index arithmetic written here.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import * as ops from '../../src/runtime/ops.js';
import { assertCloseScaled, randint, randn, seeded } from '../helpers.js';

const cpu = cpuBackend();

/** Row-major flat index of `idx` in `shape`. */
const flat = (shape: number[], idx: number[]) => idx.reduce((acc, i, ax) => acc * shape[ax] + i, 0);
/** Every multi-index of `shape` in row-major order. */
function* indices(shape: number[]): Generator<number[]> {
  const total = shape.reduce((a, b) => a * b, 1);
  for (let f = 0; f < total; f++) {
    const idx = new Array<number>(shape.length);
    let rem = f;
    for (let ax = shape.length - 1; ax >= 0; ax--) {
      idx[ax] = rem % shape[ax];
      rem = Math.floor(rem / shape[ax]);
    }
    yield idx;
  }
}

test(
  'permute, transpose and flip move every element where the index map says',
  seeded(async (r) => {
    const shape = [randint(r, 1, 4), randint(r, 2, 5), randint(r, 1, 3), randint(r, 2, 4)];
    const xv = randn(
      shape.reduce((a, b) => a * b, 1),
      r,
    );
    for (const dtype of ['f32', 'bf16', 'u8'] as const) {
      const vals =
        dtype === 'u8'
          ? xv.map((_, i) => i % 251)
          : dtype === 'bf16'
            ? await ops.tensor(cpu, xv, shape, 'bf16').toArray()
            : xv;
      const x = ops.tensor(cpu, vals, shape, dtype);
      for (const perm of [
        [0, 1, 2, 3],
        [3, 2, 1, 0],
        [1, 3, 0, 2],
        [0, 2, 1, 3],
      ]) {
        const y = ops.permute(x, perm);
        const ys = perm.map((p) => shape[p]);
        assert.deepEqual(y.shape, ys);
        const ref = [...indices(ys)].map((o) => {
          const src = new Array<number>(4);
          perm.forEach((p, i) => {
            src[p] = o[i];
          });
          return vals[flat(shape, src)];
        });
        assert.deepEqual(await y.toArray(), ref, `${dtype} perm ${perm}`);
      }
      const t = ops.transpose(x, 1, -1);
      assert.deepEqual(t.shape, [shape[0], shape[3], shape[2], shape[1]]);
      for (const axis of [0, 1, 3]) {
        const f = await ops.flip(x, axis).toArray();
        const ref = [...indices(shape)].map((o) => {
          const src = [...o];
          src[axis] = shape[axis] - 1 - o[axis];
          return vals[flat(shape, src)];
        });
        assert.deepEqual(f, ref, `flip ${axis}`);
      }
    }
  }),
);

test(
  'slice, split, concat and writeSlice along every axis; narrow and reshape are views',
  seeded(async (r) => {
    const shape = [3, 5, 4];
    const xv = randn(60, r);
    const x = ops.tensor(cpu, xv, shape);
    for (let axis = 0; axis < 3; axis++) {
      const n = shape[axis];
      const a = randint(r, 0, n - 1);
      const b = randint(r, a, n);
      const s = ops.slice(x, axis, a, b);
      const ss = [...shape];
      ss[axis] = b - a;
      const ref = [...indices(ss)].map((o) => {
        const src = [...o];
        src[axis] += a;
        return xv[flat(shape, src)];
      });
      assert.deepEqual(await s.toArray(), ref, `slice axis ${axis} [${a}, ${b})`);
      const parts = ops.split(x, axis, [a, n - a]);
      assert.deepEqual(await ops.concat(parts, axis).toArray(), Array.from(xv), `split+concat ${axis}`);
      // writeSlice of the slice into zeros leaves the rest zero.
      const dst = ops.zeros(cpu, shape);
      ops.writeSlice(dst, s, axis, a);
      const w = await dst.toArray();
      [...indices(shape)].forEach((o, f) => {
        assert.equal(w[f], o[axis] >= a && o[axis] < b ? xv[f] : 0);
      });
    }
    assert.deepEqual(await ops.slice(x, -1, -2, 4).toArray(), await ops.slice(x, 2, 2, 4).toArray());
    assert.throws(() => ops.slice(x, 1, 2, 9), /out of range/);
    assert.throws(() => ops.split(x, 0, [1, 1]), /do not add up/);
    assert.throws(() => ops.concat([x, ops.zeros(cpu, [3, 4, 4])], 2), /does not match/);
    assert.throws(() => ops.writeSlice(x, ops.zeros(cpu, [3, 2, 4]), 1, 4), /cannot write/);
    // Views share memory: writing through the base shows in the narrow view and the reshape.
    const base = ops.zeros(cpu, [4, 3]);
    const rows = base.narrow(1, 3);
    const flatView = base.reshape([-1]);
    ops.writeSlice(base, ops.tensor(cpu, [1, 2, 3], [1, 3]), 0, 2);
    assert.deepEqual(await rows.toArray(), [0, 0, 0, 1, 2, 3]);
    assert.deepEqual((await flatView.toArray()).slice(6, 9), [1, 2, 3]);
    assert.deepEqual(flatView.shape, [12]);
    assert.throws(() => base.reshape([5, -1]), /cannot view/);
    assert.throws(() => base.narrow(2, 5), /out of range/);
  }),
);

test(
  'reductions over each axis, keepDims; argmax takes the first maximum',
  seeded(async (r) => {
    const shape = [3, 4, 5];
    const xv = randn(60, r);
    const x = ops.tensor(cpu, xv, shape);
    for (let axis = 0; axis < 3; axis++)
      for (const op of ['sum', 'mean', 'max'] as const) {
        const y = ops.reduce(op, x, axis, axis === 1);
        const os = shape.filter((_, i) => i !== axis);
        assert.deepEqual(y.shape, axis === 1 ? [3, 1, 5] : os);
        const ref = [...indices(os)].map((o) => {
          const vals: number[] = [];
          for (let i = 0; i < shape[axis]; i++) {
            const src = [...o];
            src.splice(axis, 0, i);
            vals.push(xv[flat(shape, src)]);
          }
          const s = vals.reduce((a, b) => a + b, 0);
          return op === 'sum' ? s : op === 'mean' ? s / vals.length : Math.max(...vals);
        });
        // Sums cancel towards zero: judged against the largest output.
        assertCloseScaled(await y.toArray(), ref, 1e-6, `${op} axis ${axis}`);
      }
    const am = await ops.argmax(ops.tensor(cpu, [1, 5, 5, 2, -1, -3, -1, -2], [2, 4])).toArray();
    assert.deepEqual(am, [1, 0]);
    const ref = [0, 1, 2].map((row) => {
      let best = 0;
      for (let j = 1; j < 20; j++) if (xv[row * 20 + j] > xv[row * 20 + best]) best = j;
      return best;
    });
    assert.deepEqual(await ops.argmax(ops.tensor(cpu, xv, [3, 20])).toArray(), ref);
  }),
);

test(
  'embedding gathers rows (any id shape, 16-bit tables) and rejects ids outside the vocabulary',
  seeded(async (r) => {
    const [vocab, dim] = [11, 6];
    const tv = randn(vocab * dim, r);
    const ids = Int32Array.from({ length: 6 }, () => randint(r, 0, vocab - 1));
    for (const dtype of ['f32', 'bf16'] as const) {
      const table = ops.tensor(cpu, tv, [vocab, dim], dtype);
      const tvals = await table.toArray();
      const y = ops.embedding(table, ops.tensor(cpu, ids, [2, 3], 'i32'));
      assert.deepEqual(y.shape, [2, 3, dim]);
      assert.deepEqual(
        await y.toArray(),
        [...ids].flatMap((id) => tvals.slice(id * dim, (id + 1) * dim)),
      );
    }
    const table = ops.tensor(cpu, tv, [vocab, dim]);
    assert.throws(
      () => ops.embedding(table, ops.tensor(cpu, new Int32Array([3, vocab]), [2], 'i32')),
      /id 11 is outside the vocabulary of 11/,
    );
    assert.throws(() => ops.embedding(table, ops.tensor(cpu, [-1], [1], 'i32')), /outside the vocabulary/);
    assert.throws(() => ops.embedding(table, ops.tensor(cpu, [1], [1])), /ids must be i32/);
  }),
);

test(
  'embeddingBag sums or averages bags of rows (empty bags are zero) and rejects bad ids and offsets',
  seeded(async (r) => {
    const [vocab, dim] = [9, 5];
    const tv = randn(vocab * dim, r);
    const ids = [4, 0, 4, 8, 2, 7, 1];
    const offsets = [0, 3, 3, 4, 7]; // bags {4, 0, 4}, {}, {8}, {2, 7, 1}
    for (const dtype of ['f32', 'bf16'] as const) {
      const table = ops.tensor(cpu, tv, [vocab, dim], dtype);
      const tvals = await table.toArray();
      for (const mode of ['sum', 'mean'] as const) {
        const y = ops.embeddingBag(
          table,
          ops.tensor(cpu, ids, [ids.length], 'i32'),
          ops.tensor(cpu, offsets, [offsets.length], 'i32'),
          mode,
        );
        assert.deepEqual(y.shape, [4, dim]);
        const want = offsets.slice(1).flatMap((end, b) => {
          const bag = ids.slice(offsets[b], end);
          return Array.from({ length: dim }, (_, c) => {
            const s = bag.reduce((acc, id) => acc + tvals[id * dim + c], 0);
            return mode === 'mean' && bag.length ? s / bag.length : s;
          });
        });
        // Bag sums cancel towards zero: judged against the largest output.
        assertCloseScaled(await y.toArray(), want, dtype === 'f32' ? 1e-6 : 1e-2);
      }
    }
    const table = ops.tensor(cpu, tv, [vocab, dim]);
    const bag = (i: number[], o: number[]) =>
      ops.embeddingBag(table, ops.tensor(cpu, i, [i.length], 'i32'), ops.tensor(cpu, o, [o.length], 'i32'));
    assert.throws(() => bag([1, vocab], [0, 2]), /id 9 is outside the table's 9 rows/);
    assert.throws(() => bag([1, 2], [0, 3]), /bag 0 spans \[0, 3\), outside the 2 ids/);
    assert.throws(() => bag([1, 2], [2, 1]), /bag 0 spans \[2, 1\)/);
    assert.throws(
      () => ops.embeddingBag(table, ops.tensor(cpu, [1], [1]), ops.tensor(cpu, [0, 1], [2], 'i32')),
      /must be i32/,
    );
  }),
);
