import assert from 'node:assert/strict';
import { test } from 'node:test';
import '../../src/backends/cpu/index.js';
import { getBackend } from '../../src/runtime/device.js';
import { adamwSteps, sumSquares } from '../../src/runtime/grad-ops.js';
import * as ops from '../../src/runtime/ops.js';
import type { GradEngine } from '../../src/train/engine.js';
import { AdamW, clipFactor, decays, globalNorm } from '../../src/train/optimizer.js';
import { type MicroBatch, optimizerStep, splitEven } from '../../src/train/step.js';
import { randn, rng } from '../helpers.js';

const backend = await getBackend('cpu');
const unused = () => {
  throw new Error('not used here');
};
/** Only the optimizer kernel: these tests hand gradients in directly. */
const engine: GradEngine = {
  valueAndGrad: unused,
  valueAndGradAsync: unused,
  noGrad: (fn) => fn(),
  checkpoint: (fn) => fn(),
  crossEntropy: unused,
  klTopK: unused,
  adamwSteps,
  sumSquares,
};

/** torch.optim.AdamW in float64 (decoupled decay, bias correction). */
function adamwRef(
  p: Float64Array,
  m: Float64Array,
  v: Float64Array,
  g: ArrayLike<number>,
  o: { lr: number; b1: number; b2: number; eps: number; wd: number; step: number },
) {
  for (let i = 0; i < p.length; i++) {
    p[i] *= 1 - o.lr * o.wd;
    m[i] = o.b1 * m[i] + (1 - o.b1) * g[i];
    v[i] = o.b2 * v[i] + (1 - o.b2) * g[i] * g[i];
    const mh = m[i] / (1 - o.b1 ** o.step);
    const vh = v[i] / (1 - o.b2 ** o.step);
    p[i] -= (o.lr * mh) / (Math.sqrt(vh) + o.eps);
  }
}

test('global norm over several tensors, and the clipping factor', async () => {
  const r = rng(1);
  const a = randn(37, r);
  const b = randn(5 * 3, r);
  let ss = 0;
  for (const x of [...a, ...b]) ss += x * x;
  const ta = ops.tensor(backend, a, [37]);
  const tb = ops.tensor(backend, b, [5, 3]);
  const n = await globalNorm(engine, [ta, tb]);
  assert.ok(Math.abs(n - Math.sqrt(ss)) < 1e-5 * Math.sqrt(ss));
  assert.equal(clipFactor(0.5, 1), 1);
  assert.ok(Math.abs(clipFactor(4, 1) - 0.25) < 1e-6);
  assert.equal(clipFactor(100, 0), 1); // 0: no clipping
  ta.dispose();
  tb.dispose();
});

test('weight decay only on matrices that are not embeddings (as train_needle.py groups them)', () => {
  assert.ok(decays('model.layers.0.mlp.up_proj.weight', [8, 4]));
  assert.ok(!decays('model.embed_tokens.weight', [100, 8]));
  assert.ok(!decays('model.layers.0.input_layernorm.weight', [8]));
  assert.ok(!decays('model.layers.0.self_attn.q_proj.bias', [8]));
});

test('AdamW steps match torch.optim.AdamW in float64 (f32 weights, decay and no decay)', async () => {
  const r = rng(2);
  const w0 = randn(24, r);
  const b0 = randn(6, r);
  const w = ops.tensor(backend, w0, [4, 6]);
  const b = ops.tensor(backend, b0, [6]);
  const opt = new AdamW(
    new Map([
      ['layer.weight', w],
      ['layer.bias', b],
    ]),
    { beta1: 0.9, beta2: 0.98, eps: 1e-8, weightDecay: 0.05 },
  );
  const ref = [
    { p: Float64Array.from(w0), m: new Float64Array(24), v: new Float64Array(24), wd: 0.05 },
    { p: Float64Array.from(b0), m: new Float64Array(6), v: new Float64Array(6), wd: 0 },
  ];
  for (let step = 1; step <= 5; step++) {
    const gs = [randn(24, r), randn(6, r)];
    const grads = [ops.tensor(backend, gs[0], [4, 6]), ops.tensor(backend, gs[1], [6])];
    opt.apply(engine, grads, 1e-2 * step, 0.5);
    ref.forEach((x, i) => {
      adamwRef(
        x.p,
        x.m,
        x.v,
        gs[i].map((g) => g * 0.5),
        { lr: 1e-2 * step, b1: 0.9, b2: 0.98, eps: 1e-8, wd: x.wd, step },
      );
    });
    for (const g of grads) g.dispose();
  }
  const got = [await w.toArray(), await b.toArray()];
  ref.forEach((x, i) => {
    for (const [j, p] of x.p.entries())
      assert.ok(Math.abs(got[i][j] - p) < 2e-6, `${i}/${j}: ${got[i][j]} vs ${p}`);
  });
  assert.equal(opt.step, 5);
  opt[Symbol.dispose]();
});

test('bf16 weights: the update lands in the f32 master, the model’s bf16 tensor gets it rounded', async () => {
  const r = rng(3);
  const w0 = randn(16, r);
  const w = ops.tensor(backend, w0, [4, 4], 'bf16');
  const opt = new AdamW(new Map([['m.weight', w]]), { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 });
  const slot = opt.slots[0];
  assert.equal(slot.master.dtype, 'f32');
  assert.equal(slot.copy, w);
  const g = ops.tensor(backend, randn(16, r), [4, 4]);
  for (let i = 0; i < 3; i++) opt.apply(engine, [g], 1e-4, 1);
  const master = await slot.master.toArray();
  const model = await w.toArray();
  const bf16 = (x: number) => {
    const f = new Float32Array([x]);
    const u = new Uint32Array(f.buffer);
    u[0] = (u[0] + 0x7fff + ((u[0] >> 16) & 1)) & 0xffff0000; // round to nearest even
    return f[0];
  };
  master.forEach((x, i) => {
    assert.equal(model[i], bf16(x));
  });
  // Small steps the bf16 weight alone could not hold accumulate in the master.
  assert.ok(master.some((x, i) => x !== model[i]));
  g.dispose();
  opt[Symbol.dispose]();
  w.dispose();
});

test('optimizer state round-trips through stateTensors / load', async () => {
  const r = rng(4);
  const mk = () => ops.tensor(backend, Float32Array.from([1, 2, 3, 4]), [2, 2], 'bf16');
  const a = new AdamW(new Map([['x.weight', mk()]]), {
    beta1: 0.9,
    beta2: 0.99,
    eps: 1e-8,
    weightDecay: 0.1,
  });
  const g = ops.tensor(backend, randn(4, r), [2, 2]);
  a.apply(engine, [g], 1e-2, 1);
  const saved = new Map<string, Float32Array>();
  for (const [k, t] of a.stateTensors()) saved.set(k, (await t.data()) as Float32Array);
  assert.deepEqual([...saved.keys()].sort(), ['m.x.weight', 'master.x.weight', 'v.x.weight']);
  const b = new AdamW(new Map([['x.weight', mk()]]), {
    beta1: 0.9,
    beta2: 0.99,
    eps: 1e-8,
    weightDecay: 0.1,
  });
  b.load(saved, a.step);
  a.apply(engine, [g], 1e-2, 1);
  b.apply(engine, [g], 1e-2, 1);
  assert.deepEqual(await b.slots[0].master.toArray(), await a.slots[0].master.toArray());
  assert.deepEqual(await b.params[0].toArray(), await a.params[0].toArray());
  assert.throws(() => b.load(new Map(), 1), /optimizer state: "master.x.weight" is missing/);
  g.dispose();
});

/** Least squares on a linear model: the gradient of Σ (w·x − y)² over some rows, in float64. */
function lsqGrad(w: Float32Array, rows: { x: Float32Array; y: number }[]): Float32Array {
  const g = new Float64Array(w.length);
  for (const { x, y } of rows) {
    let e = -y;
    for (let i = 0; i < w.length; i++) e += w[i] * x[i];
    for (let i = 0; i < w.length; i++) g[i] += 2 * e * x[i];
  }
  return Float32Array.from(g);
}

test('accumulation: 2 micro-batches × accumulate 2 give the step of one batch of all the rows', async () => {
  const r = rng(5);
  const rows = Array.from({ length: 6 }, () => ({ x: randn(8, r), y: r() }));
  const w0 = randn(8, r);
  const run = async (k: number) => {
    const w = ops.tensor(backend, w0, [1, 8]);
    const opt = new AdamW(new Map([['w.weight', w]]), {
      beta1: 0.9,
      beta2: 0.999,
      eps: 1e-8,
      weightDecay: 0.01,
    });
    const norms: number[] = [];
    for (let step = 1; step <= 4; step++) {
      const now = (await w.data()) as Float32Array;
      const micro: MicroBatch[] = splitEven(rows, k).map((part) => ({
        tokens: part.length,
        run: () => ({ grads: [ops.tensor(backend, lsqGrad(now, part), [1, 8])] }),
      }));
      norms.push((await optimizerStep(engine, opt, micro, 0.05, 0.5)).gradNorm);
    }
    const out = await w.toArray();
    opt[Symbol.dispose]();
    w.dispose();
    return { out, norms };
  };
  const one = await run(1);
  const two = await run(2);
  const three = await run(3);
  for (const other of [two, three]) {
    one.out.forEach((x, i) => {
      assert.ok(Math.abs(x - other.out[i]) < 1e-6, `${x} vs ${other.out[i]}`);
    });
    one.norms.forEach((x, i) => {
      assert.ok(Math.abs(x - other.norms[i]) < 1e-5 * x);
    });
  }
  // The gradient was clipped (its norm is above 0.5), so the equality covers the clipping of the sum too.
  assert.ok(one.norms[0] > 0.5);
});

test('a step with a non-finite gradient is skipped and leaves the weights and the step count alone', async () => {
  const w = ops.tensor(backend, Float32Array.from([1, 2]), [2]);
  const opt = new AdamW(new Map([['w', w]]), { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 });
  const r = await optimizerStep(
    engine,
    opt,
    [{ tokens: 1, run: () => ({ grads: [ops.tensor(backend, Float32Array.from([Number.NaN, 1]), [2])] }) }],
    0.1,
    1,
  );
  assert.ok(r.skipped);
  assert.equal(opt.step, 0);
  assert.deepEqual(await w.toArray(), [1, 2]);
});

test('splitEven: sizes differ by at most one, order kept, no empty parts', () => {
  assert.deepEqual(splitEven([1, 2, 3, 4, 5], 2), [
    [1, 2, 3],
    [4, 5],
  ]);
  assert.deepEqual(splitEven([1, 2], 3), [[1], [2]]);
});
