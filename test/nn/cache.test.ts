/**
 * The hybrid cache on a small attention + Mamba-2 stack: a continuation from a snapshot equals one pass over
 * the whole sequence, leaves the snapshot unchanged (many continuations from one prefix), shares the prefix's
 * K/V rows when it can and copies them when another continuation is writing.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import { SelfAttention } from '../../src/nn/attention.js';
import { type CacheSnapshot, HybridCache } from '../../src/nn/cache.js';
import { Linear } from '../../src/nn/linear.js';
import { Mamba2, mamba2Config } from '../../src/nn/mamba2.js';
import { ParamStore } from '../../src/nn/params.js';
import { rope1d, rotaryTensors } from '../../src/nn/rotary.js';
import * as ops from '../../src/runtime/ops.js';
import { tidy } from '../../src/runtime/scope.js';
import type { Tensor } from '../../src/runtime/tensor.js';
import { assertCloseScaled, randn, rng } from '../helpers.js';

const be = cpuBackend();
const H = 16;
const r = rng(31);
const lin = (o: number, i: number) => new Linear(ops.tensor(be, randn(o * i, r, -0.3, 0.3), [o, i]));
const attn = new SelfAttention(
  { hiddenSize: H, numHeads: 4, numKvHeads: 2, headDim: 4, qkvBias: false, oBias: false },
  lin(16, H),
  lin(8, H),
  lin(8, H),
  lin(H, 16),
);
const mc = mamba2Config(H, { dInner: 32, dState: 4, headDim: 8, nGroups: 2, chunkSize: 4 });
const mamba = Mamba2.load(
  new ParamStore(
    Mamba2.specs('m', mc).map((s) => {
      const n = s.shape.reduce((a, b) => a * b, 1);
      const range: [number, number] = /dt_bias/.test(s.name)
        ? [-3, -1]
        : /A_log/.test(s.name)
          ? [0, 2]
          : /norm|\.D$/.test(s.name)
            ? [0.8, 1.2]
            : [-0.4, 0.4];
      return [s.name, ops.tensor(be, randn(n, r, ...range), s.shape)];
    }),
  ),
  'm',
  mc,
);
const layers = [{ kind: 'mamba' } as const, { kind: 'attention', kvHeads: 2, headDim: 4 } as const];

/** Tokens [from, to) of x through mamba → attention (residual adds), with or without a cache. */
function stack(x: Float32Array, from: number, to: number, cache: HybridCache | null): Tensor {
  const n = to - from;
  let h = ops.tensor(be, x.subarray(from * H, to * H), [1, n, H]);
  h = ops.add(h, mamba.forward(h, cache && { cache, layer: 0 }));
  const pos = Array.from({ length: n }, (_, i) => from + i);
  const a = attn.forward(h.reshape([n, H]), {
    rope: rotaryTensors(be, rope1d(pos, 4, 10000)),
    cache: cache && { cache, layer: 1 },
  });
  cache?.commit(n);
  return ops.add(h.reshape([n, H]), a);
}

/** Feeds tokens [from, to): the rest of a prompt, then one token at a time. */
async function continueFrom(cache: HybridCache, x: Float32Array, from: number, to: number) {
  const out = [...(await stack(x, from, from + 2, cache).data())];
  for (let t = from + 2; t < to; t++) out.push(...(await stack(x, t, t + 1, cache).data()));
  return out;
}

describe('hybrid cache: snapshots and continuations', () => {
  const len = 15;
  const prefix = 9;
  const seqs = [0, 1, 2].map((s) => {
    const x = randn(len * H, rng(50 + s));
    x.set(randn(prefix * H, rng(49))); // one shared prefix, three different continuations
    return x;
  });
  const full = async (x: Float32Array) => (await stack(x, 0, len, null).data()).slice(prefix * H);

  let snap: CacheSnapshot;
  const makeSnapshot = () => {
    using cache = new HybridCache(be, { layers, dtype: 'f32', capacity: prefix + 8 });
    tidy(() => {
      stack(seqs[0], 0, prefix, cache);
    });
    assert.equal(cache.length, prefix);
    return cache.snapshot();
  };

  it('continuations one after another equal full passes, sharing the prefix rows', async () => {
    snap = makeSnapshot();
    for (const x of seqs) {
      using c = snap.resume(len - prefix);
      assert.equal(c.length, prefix);
      assert.equal(c.capacity, prefix + 8, 'wrote into the snapshot buffers, no copy');
      assertCloseScaled(await continueFrom(c, x, prefix, len), await full(x), 1e-5, 'continuation');
    }
  });

  it('a concurrent continuation reads the shared prefix and writes its own rows; both stay right', async () => {
    using a = snap.resume(len - prefix);
    using b = snap.resume(len - prefix);
    assert.equal(a.capacity, prefix + 8);
    assert.equal(b.capacity, len, 'b keeps the prefix where it is and has room for its own tokens');
    assert.equal(b.bytes, snap.bytes + (len - prefix) * 4 * 2 * 2 * 4, 'b holds no copy of the prefix');
    // Interleave the two so that a shared row would be overwritten.
    const ga = [...(await stack(seqs[1], prefix, prefix + 2, a).data())];
    const gb = [...(await stack(seqs[2], prefix, prefix + 2, b).data())];
    ga.push(...(await continueFrom(a, seqs[1], prefix + 2, len)));
    gb.push(...(await continueFrom(b, seqs[2], prefix + 2, len)));
    assertCloseScaled(ga, await full(seqs[1]), 1e-5, 'a');
    assertCloseScaled(gb, await full(seqs[2]), 1e-5, 'b');
  });

  it('a continuation longer than the room grows into its own buffers', async () => {
    const long = 40;
    const x = randn(long * H, rng(60));
    x.set(seqs[0].subarray(0, prefix * H));
    using c = snap.resume(2);
    const got = await continueFrom(c, x, prefix, long);
    assert.ok(c.capacity >= long);
    const want = (await stack(x, 0, long, null).data()).slice(prefix * H);
    assertCloseScaled(got, want, 1e-5, 'long continuation');
    // The snapshot still answers correctly afterwards.
    using d = snap.resume(len - prefix);
    assertCloseScaled(await continueFrom(d, seqs[1], prefix, len), await full(seqs[1]), 1e-5, 'after growth');
  });

  it('a continuation outgrowing the room after a long prefix keeps the prefix shared, not copied', async () => {
    const P = 64;
    const x = randn((P + 8) * H, rng(61));
    using cache = new HybridCache(be, { layers, dtype: 'f32', capacity: P + 2 });
    tidy(() => {
      stack(x, 0, P, cache);
    });
    using s = cache.snapshot();
    cache[Symbol.dispose]();
    using c = s.resume(2);
    const got = await continueFrom(c, x, P, P + 8);
    assertCloseScaled(got, (await stack(x, 0, P + 8, null).data()).slice(P * H), 1e-5, 'continuation');
    // Its own rows (8 tokens, 64 bytes each) and the Mamba states' copy: no second copy of the prefix's 64.
    const row = 2 * 2 * 4 * 4;
    assert.ok(c.bytes - s.bytes <= 2 * 8 * row, `${c.bytes - s.bytes} bytes beyond the snapshot's`);
  });

  it('a snapshot taken after another keeps its rows when the earlier one is resumed', async () => {
    using c = snap.resume(len - prefix);
    stack(seqs[1], prefix, prefix + 3, c);
    using later = c.snapshot();
    c[Symbol.dispose]();
    using d = snap.resume(len - prefix); // must not write over `later`'s rows 9..11
    await continueFrom(d, seqs[2], prefix, len);
    using e = later.resume(len - prefix - 3);
    assertCloseScaled(
      await continueFrom(e, seqs[1], prefix + 3, len),
      (await full(seqs[1])).slice(3 * H),
      1e-5,
    );
  });

  it('snapshots hold the Mamba state by copy and free everything on dispose', () => {
    const before = be.memory().current;
    const s = makeSnapshot();
    assert.ok(s.bytes > 0);
    const c = s.resume(4);
    assert.notEqual(c.mambaState(0), s.states[0], 'the continuation steps its own copy');
    assert.throws(() => c.mambaState(1), /not a Mamba layer/);
    c[Symbol.dispose]();
    s[Symbol.dispose]();
    assert.equal(be.memory().current, before);
    snap[Symbol.dispose]();
    assert.ok(be.memory().current < before, 'the first snapshot released too');
  });
});
