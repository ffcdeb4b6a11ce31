/**
 * The MambaMia compressor on tiny random configs (CPU): its config, the secondary sampling rule, what a causal
 * scan can and a bidirectional one cannot ignore, and the errors for inputs it cannot take.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import { InputError, ModelError } from '../../src/errors.js';
import { MambaMiaCompressor } from '../../src/models/mambamia/compressor.js';
import { type MambaMiaConfig, parseMambaMiaConfig } from '../../src/models/mambamia/config.js';
import { keptFrames } from '../../src/models/mambamia/sampling.js';
import { ParamStore } from '../../src/nn/params.js';
import * as ops from '../../src/runtime/ops.js';
import type { Tensor } from '../../src/runtime/tensor.js';
import { randn, rng } from '../helpers.js';

const be = cpuBackend();

const TINY = {
  input_size: 6,
  output_size: 10,
  hidden_size: 8,
  num_hidden_layers: 2,
  num_heads: 4,
  head_dim: 4,
  state_size: 4,
  chunk_size: 5,
  mambamia_chunk_size: 3,
};

/** A compressor with random weights (ranges as in test/nn/mamba2-cases.ts). */
function randomCompressor(c: MambaMiaConfig, seed: number): MambaMiaCompressor {
  const r = rng(seed);
  const store = new ParamStore(
    MambaMiaCompressor.specs('', c).map((s) => {
      const n = s.shape.reduce((a, b) => a * b, 1);
      const range: [number, number] = /dt_bias/.test(s.name)
        ? [-3, -1]
        : /A_(b_)?log/.test(s.name)
          ? [0, 2]
          : /norm/.test(s.name)
            ? [0.8, 1.2]
            : [-0.5, 0.5];
      return [s.name, ops.tensor(be, randn(n, r, ...range), s.shape)];
    }),
  );
  return MambaMiaCompressor.load(store, '', c);
}

const features = (frames: number, patches: number, width: number, seed: number): Tensor =>
  ops.tensor(be, randn(frames * patches * width, rng(seed)), [frames, patches, width]);

async function values(t: Tensor): Promise<number[]> {
  try {
    return Array.from(await t.data());
  } finally {
    t.dispose();
  }
}

describe('MambaMia config', () => {
  it('takes the derivative defaults and derives the switches from version', () => {
    const v04 = parseMambaMiaConfig({});
    assert.equal(v04.hidden_size, 3072);
    assert.equal(v04.num_heads, 96);
    assert.equal(v04.mambamia_chunk_size, 10);
    assert.equal(v04.mambamia_gated_aggregation, true);
    assert.equal(v04.mambamia_bidirectional, false);
    const v2 = parseMambaMiaConfig({ version: 'v2' });
    assert.deepEqual([v2.mambamia_bidirectional, v2.mambamia_gated_aggregation], [true, false]);
    assert.equal(v2.mambamia_bidirectional_combine, 'sum');
  });

  it('names the key that is wrong', () => {
    assert.throws(() => parseMambaMiaConfig({ version: 'v3' }), /"version" must be one of v0, v04, v2/);
    assert.throws(() => parseMambaMiaConfig({ ...TINY, num_heads: 3 }), ModelError);
    assert.throws(
      () => parseMambaMiaConfig({ mambamia_bidirectional_combine: 'mean' }),
      /"mambamia_bidirectional_combine" must be "sum" or "concat"/,
    );
    assert.throws(
      () => parseMambaMiaConfig({ mambamia_frame_sampling: 0 }),
      /"mambamia_frame_sampling" must be in \(0, 1\]/,
    );
  });
});

describe('MambaMia secondary sampling', () => {
  it('keeps one frame of every run of 1/s: the last or the first', () => {
    assert.deepEqual(keptFrames(10, 1 / 3, 'last'), [2, 5, 8]);
    assert.deepEqual(keptFrames(10, 1 / 3, 'first'), [0, 3, 6, 9]);
    assert.deepEqual(keptFrames(5, 0.5, 'last'), [1, 3]);
    assert.deepEqual(keptFrames(4, 1, 'first'), [0, 1, 2, 3]);
    assert.deepEqual(keptFrames(7, 0.4, 'last'), [2, 4]);
  });

  it("gives the paper's token counts (k = 10 on 100 patches, s = 1/3): 128 frames → 430, 256 → 860", () => {
    assert.equal(keptFrames(128, 1 / 3, 'first').length * 10, 430);
    assert.equal(keptFrames(256, 1 / 3, 'first').length * 10, 860);
  });
});

describe('MambaMia compressor (tiny random weights)', () => {
  it('a causal stack: the tokens of the first frames do not depend on later frames', async () => {
    const c = parseMambaMiaConfig({ ...TINY, version: 'v04' });
    using m = randomCompressor(c, 1);
    using all = features(4, 6, 6, 2);
    using head = ops.slice(all, 0, 0, 2);
    const full = await values(m.forward(all));
    const part = await values(m.forward(head));
    assert.equal(full.length, 8 * 10);
    for (const [i, v] of part.entries())
      assert.ok(Math.abs(v - full[i]) <= 1e-5 * Math.max(1, Math.abs(v)), `token value ${i}`);
  });

  it('a bidirectional stack (concat): the first tokens see the last frame', async () => {
    const c = parseMambaMiaConfig({
      ...TINY,
      version: 'v2',
      mambamia_gated_aggregation: true,
      mambamia_bidirectional_combine: 'concat',
    });
    using m = randomCompressor(c, 3);
    const a = features(3, 6, 6, 4);
    const host = Float32Array.from(await a.data());
    host[host.length - 1] += 1;
    using b = ops.tensor(be, host, a.shape);
    const first = (await values(m.forward(a))).slice(0, 10);
    const second = (await values(m.forward(b))).slice(0, 10);
    a.dispose();
    assert.ok(
      first.some((v, i) => Math.abs(v - second[i]) > 1e-6),
      'the first token did not change',
    );
  });

  it('counts its tokens: k patches each, then ×s by frames', async () => {
    const c = parseMambaMiaConfig({ ...TINY, mambamia_frame_sampling: 1 / 3 });
    using m = randomCompressor(c, 5);
    using x = features(7, 6, 6, 6);
    using out = m.forward(x);
    assert.deepEqual(out.shape, [3 * 2, 10]);
    assert.equal(MambaMiaCompressor.tokenCount(c, 7, 6), 6);
  });

  it('refuses inputs it cannot group, saying why', () => {
    const c = parseMambaMiaConfig({ ...TINY, mambamia_frame_sampling: 0.5 });
    using m = randomCompressor(c, 7);
    using odd = features(5, 5, 6, 8);
    assert.throws(
      () => m.forward(odd),
      (e: unknown) => {
        assert.ok(e instanceof InputError);
        assert.match(e.message, /5 frames × 5 patches = 25 tokens are not a multiple of k = 3/);
        return true;
      },
    );
    using perFrame = features(3, 5, 6, 9);
    assert.throws(() => m.forward(perFrame), /5 patches per frame are not a multiple of k = 3/);
    using wide = features(3, 6, 7, 10);
    assert.throws(() => m.forward(wide), /features must be \[frames, patches, 6\], got \[3, 6, 7\]/);
  });
});
