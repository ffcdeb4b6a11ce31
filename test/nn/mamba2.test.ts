/**
 * The Mamba-2 block: against transformers' Mamba2Mixer (fixtures from tools/reference/vamba_fixtures.py) and
 * NemotronHMamba2Mixer (the Nemotron-H fixtures' first Mamba layer, grouped norm), and
 * every variant (norm after / before the gate, grouped norm, ngroups, dt limit, biases, no norm,
 * bidirectional sum / concat) against a naive sequential recurrence written here in float64, at lengths that
 * are not multiples of the chunk. Then the ways to feed a causal sequence (pieces with carried state, single
 * steps, a cache layer) against one prefill.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import { SafetensorsFile } from '../../src/io/index.js';
import { HybridCache } from '../../src/nn/cache.js';
import {
  disposeState,
  Mamba2,
  Mamba2Block,
  type Mamba2Config,
  type Mamba2State,
  mamba2Config,
} from '../../src/nn/mamba2.js';
import { ParamStore } from '../../src/nn/params.js';
import * as ops from '../../src/runtime/ops.js';
import type { Tensor } from '../../src/runtime/tensor.js';
import { assertClose, assertCloseScaled, randn, relErr, rng } from '../helpers.js';
import { base, build, D_MODEL, type Host, randomParams, variants } from './mamba2-cases.js';

const be = cpuBackend();
const DIR = join(import.meta.dirname, '..', 'fixtures', 'vamba', 'mamba2');

describe('Mamba-2 vs transformers Mamba2Mixer (fixtures)', () => {
  const files = readdirSync(DIR).filter((f) => f.endsWith('.safetensors'));
  it('has cases with several chunk counts and ngroups > 1', () => {
    assert.ok(files.length >= 4, `expected ≥ 4 mixer fixtures, found ${files.length}`);
    assert.ok(files.some((f) => /^g[24]-/.test(f)));
  });
  for (const file of files)
    it(file, async () => {
      const f = await SafetensorsFile.open(join(DIR, file));
      const m = JSON.parse(f.metadata.config) as Record<string, number>;
      const config = mamba2Config(m.d_model, {
        dInner: m.d_inner,
        dState: m.d_state,
        dConv: m.d_conv,
        headDim: m.d_inner / m.nheads,
        nGroups: m.ngroups,
        chunkSize: m.chunk_size,
      });
      const tensors = new Map<string, Tensor>();
      for (const s of Mamba2.specs('mixer', config))
        tensors.set(s.name, await f.loadTensor(be, s.name, { dtype: 'f32' }));
      const input = await f.loadTensor(be, 'input', { dtype: 'f32' });
      const output = await f.read('output');
      await f.close();
      const store = new ParamStore(tensors);
      using mixer = Mamba2.load(store, 'mixer', config);
      assert.deepEqual(store.remaining(), []);
      const expected = new Float32Array(output.data.buffer as ArrayBuffer);
      const err = relErr(await mixer.forward(input).data(), expected);
      assert.ok(err <= 1e-5, `${file}: relative error ${err.toExponential(2)}`);
    });
});

const NEMOTRON = join(import.meta.dirname, '..', 'fixtures', 'nemotron_h');

describe('Mamba-2 vs transformers NemotronHMamba2Mixer (grouped gated norm; tools/reference/nemotron_h_fixtures.py)', () => {
  const cases = readdirSync(NEMOTRON).filter((d) => !d.endsWith('.json'));
  it('has cases with one and several groups', () => assert.ok(cases.length >= 4));
  for (const name of cases)
    it(`${name}: the first Mamba layer's mixer`, async () => {
      // save_pretrained writes Python's Infinity for an open time_step_limit.
      const text = readFileSync(join(NEMOTRON, name, 'config.json'), 'utf8').replace(
        /\bInfinity\b/g,
        '1e999',
      );
      const j = JSON.parse(text);
      const dInner = j.mamba_num_heads * j.mamba_head_dim;
      const c = mamba2Config(j.hidden_size, {
        dInner,
        dState: j.ssm_state_size,
        dConv: j.conv_kernel,
        headDim: j.mamba_head_dim,
        nGroups: j.n_groups,
        chunkSize: j.chunk_size,
        normGroupSize: dInner / j.n_groups,
        normEps: j.layer_norm_epsilon,
        bias: j.use_bias,
        convBias: j.use_conv_bias,
        dtLimit: j.time_step_limit ?? [0, Number.POSITIVE_INFINITY],
      });
      const prefix = `backbone.layers.${j.hybrid_override_pattern.indexOf('M')}.mixer`;
      const model = await SafetensorsFile.open(join(NEMOTRON, name, 'model.safetensors'));
      const tensors = new Map<string, Tensor>();
      for (const s of Mamba2.specs(prefix, c)) tensors.set(s.name, await model.loadTensor(be, s.name));
      await model.close();
      const ref = await SafetensorsFile.open(join(NEMOTRON, name, 'reference.safetensors'));
      const input = await ref.loadTensor(be, 'mixer_input', { dtype: 'f32' });
      const want = await ref.read('mixer_output');
      await ref.close();
      using mixer = Mamba2.load(new ParamStore(tensors), prefix, c);
      const err = relErr(
        await mixer.forward(input).data(),
        new Float32Array(want.data.buffer as ArrayBuffer),
      );
      assert.ok(err <= 1e-5, `${name}: relative error ${err.toExponential(2)}`);
    });
});

// ---- an independent float64 reference -------------------------------------------------------------

const silu = (v: number) => v / (1 + Math.exp(-v));
const softplus = (v: number) => (v > 20 ? v : Math.log1p(Math.exp(v)));

/** One scan direction over projected rows (in time order), token by token: gated y rows [len][dInner]. */
function refScan(
  c: Mamba2Config,
  w: Host,
  sfx: { conv: string; dt: string; A: string; D: string; norm: string },
  proj: Float64Array[],
): Float64Array[] {
  const nH = c.dInner / c.headDim;
  const gd = c.nGroups * c.dState;
  const convDim = c.dInner + 2 * gd;
  const cw = w.get(`${sfx.conv}.weight`)!;
  const cb = w.get(`${sfx.conv}.bias`);
  const [dtBias, Alog, D] = [w.get(sfx.dt)!, w.get(sfx.A)!, w.get(sfx.D)!];
  const normW = w.get(`${sfx.norm}.weight`);
  const h = new Float64Array(nH * c.headDim * c.dState);
  const out: Float64Array[] = [];
  for (let t = 0; t < proj.length; t++) {
    const p = proj[t];
    const z = p.subarray(0, c.dInner);
    // Causal depthwise conv over the xBC channels of this and the previous d_conv − 1 tokens, then SiLU.
    const xbc = new Float64Array(convDim);
    for (let ch = 0; ch < convDim; ch++) {
      let s = cb ? cb[ch] : 0;
      for (let k = 0; k < c.dConv; k++) {
        const src = t - (c.dConv - 1) + k;
        if (src >= 0) s += cw[ch * c.dConv + k] * proj[src][c.dInner + ch];
      }
      xbc[ch] = silu(s);
    }
    const y = new Float64Array(c.dInner);
    for (let hd = 0; hd < nH; hd++) {
      const g = Math.floor(hd / (nH / c.nGroups));
      let dt = softplus(p[c.dInner + convDim + hd] + dtBias[hd]);
      dt = Math.min(c.dtLimit[1], Math.max(c.dtLimit[0], dt));
      const dA = Math.exp(-Math.exp(Alog[hd]) * dt);
      for (let q = 0; q < c.headDim; q++) {
        const x = xbc[hd * c.headDim + q];
        let acc = 0;
        for (let n = 0; n < c.dState; n++) {
          const i = (hd * c.headDim + q) * c.dState + n;
          h[i] = dA * h[i] + dt * x * xbc[c.dInner + g * c.dState + n];
          acc += xbc[c.dInner + gd + g * c.dState + n] * h[i];
        }
        y[hd * c.headDim + q] = acc + D[hd] * x;
      }
    }
    const gated = new Float64Array(c.dInner);
    if (!normW) for (let i = 0; i < c.dInner; i++) gated[i] = y[i] * silu(z[i]);
    else
      for (let g0 = 0; g0 < c.dInner; g0 += c.normGroupSize) {
        const v = (i: number) => (c.normBeforeGate ? y[i] : y[i] * silu(z[i]));
        let ss = 0;
        for (let i = g0; i < g0 + c.normGroupSize; i++) ss += v(i) ** 2;
        const inv = 1 / Math.sqrt(ss / c.normGroupSize + c.normEps);
        for (let i = g0; i < g0 + c.normGroupSize; i++)
          gated[i] = v(i) * inv * normW[i] * (c.normBeforeGate ? silu(z[i]) : 1);
      }
    out.push(gated);
  }
  return out;
}

/** The whole mixer on u [len][dModel] in float64: rows [len][dModel]. */
function reference(c: Mamba2Config, w: Host, u: Float32Array, len: number): Float64Array {
  const linear = (name: string, x: ArrayLike<number>, outDim: number) => {
    const W = w.get(`${name}.weight`)!;
    const b = w.get(`${name}.bias`);
    const inDim = W.length / outDim;
    const y = new Float64Array(outDim);
    for (let o = 0; o < outDim; o++) {
      let s = b ? b[o] : 0;
      for (let i = 0; i < inDim; i++) s += W[o * inDim + i] * x[i];
      y[o] = s;
    }
    return y;
  };
  const nH = c.dInner / c.headDim;
  const inOut = 2 * c.dInner + 2 * c.nGroups * c.dState + nH;
  const proj = Array.from({ length: len }, (_, t) =>
    linear('in_proj', u.subarray(t * c.dModel, (t + 1) * c.dModel), inOut),
  );
  const f = refScan(c, w, { conv: 'conv1d', dt: 'dt_bias', A: 'A_log', D: 'D', norm: 'norm' }, proj);
  let ys = f;
  if (c.bidirectional) {
    const sfx = { conv: 'conv1d_b', dt: 'dt_bias_b', A: 'A_b_log', D: 'D_b', norm: 'norm_b' };
    const b = refScan(c, w, sfx, [...proj].reverse()).reverse();
    ys = f.map((yf, t) => {
      if (c.bidirectional === 'sum') return yf.map((v, i) => v + b[t][i]);
      const cat = new Float64Array(2 * c.dInner);
      cat.set(yf);
      cat.set(b[t], c.dInner);
      return cat;
    });
  }
  const out = new Float64Array(len * c.dModel);
  for (const [t, y] of ys.entries()) out.set(linear('out_proj', y, c.dModel), t * c.dModel);
  return out;
}

describe('Mamba-2 variants vs a sequential float64 recurrence', () => {
  for (const [i, [name, c]] of variants.entries())
    it(name, async () => {
      const host = randomParams(c, 100 + i);
      using mixer = build(be, c, host);
      for (const len of [1, 13, 17]) {
        const u = randn(len * D_MODEL, rng(200 + i + len));
        const got = await mixer.forward(ops.tensor(be, u, [1, len, D_MODEL])).data();
        const err = relErr(got, reference(c, host, u, len));
        assert.ok(err <= 1e-5, `${name}, length ${len}: relative error ${err.toExponential(2)}`);
      }
    });

  it('the two directions differ (the backward scan is not the forward one)', async () => {
    const c = variants[5][1];
    const host = randomParams(c, 7);
    const u = randn(9 * D_MODEL, rng(8));
    const both = reference(c, host, u, 9);
    const fwdOnly = reference({ ...c, bidirectional: null }, host, u, 9);
    assert.ok(relErr(fwdOnly, both) > 1e-2);
    using mixer = build(be, c, host);
    assert.throws(() => mixer.prefill(ops.tensor(be, u, [1, 9, D_MODEL])), /causal/);
  });

  it('loads every parameter under the Hugging Face names', () => {
    const names = (c: Mamba2Config) => Mamba2.specs('mixer', c).map((s) => s.name);
    assert.deepEqual(names(variants[0][1]), [
      'mixer.in_proj.weight',
      'mixer.conv1d.weight',
      'mixer.conv1d.bias',
      'mixer.dt_bias',
      'mixer.A_log',
      'mixer.D',
      'mixer.norm.weight',
      'mixer.out_proj.weight',
    ]);
    const bi = names(variants[6][1]);
    for (const n of ['conv1d_b.weight', 'conv1d_b.bias', 'dt_bias_b', 'A_b_log', 'D_b', 'norm_b.weight'])
      assert.ok(bi.includes(`mixer.${n}`), n);
    const out = Mamba2.specs('mixer', variants[6][1]).find((s) => s.name === 'mixer.out_proj.weight');
    assert.deepEqual(out?.shape, [D_MODEL, 48]);
  });
});

describe('Mamba-2: ways to feed a causal sequence equal one prefill', () => {
  const c = mamba2Config(D_MODEL, { ...base, nGroups: 2 });
  const input = (seed: number, len: number): Tensor =>
    ops.tensor(be, randn(len * D_MODEL, rng(seed)), [1, len, D_MODEL]);

  it('uneven pieces with the state carried across them', async () => {
    using mixer = build(be, c, randomParams(c, 1));
    const u = input(2, 23);
    const once = mixer.prefill(u);
    const parts: number[] = [];
    let st: Mamba2State | null = null;
    for (const [a, b] of [
      [0, 7],
      [7, 8],
      [8, 23],
    ]) {
      const r = mixer.prefill(ops.slice(u, 1, a, b), st);
      parts.push(...(await r.y.data()));
      st = r.state;
    }
    assertCloseScaled(parts, await once.y.data(), 1e-4, 'pieces');
    assertCloseScaled(await st!.ssm.data(), await once.state.ssm.data(), 1e-4, 'final state');
    assertClose(await st!.conv.data(), await once.state.conv.data(), 1e-6, 'final conv state');
  });

  it('single steps from zeros', async () => {
    using mixer = build(be, c, randomParams(c, 3));
    const u = input(4, 11);
    const full = await mixer.forward(u).data();
    const state = mixer.initialState();
    const steps: number[] = [];
    for (let t = 0; t < 11; t++)
      steps.push(...(await mixer.step(ops.slice(u, 1, t, t + 1).reshape([1, D_MODEL]), state).data()));
    assertCloseScaled(steps, full, 1e-4, 'steps');
    disposeState(state);
  });

  it('through a cache layer: a prefill, then steps, leaving nothing allocated but the results', async () => {
    using mixer = build(be, c, randomParams(c, 5));
    const u = input(6, 14);
    const full = await mixer.forward(u).data();
    const before = be.memory().current;
    const cache = new HybridCache(be, { layers: [{ kind: 'mamba' }], dtype: 'f32' });
    const run = async (from: number, to: number) => {
      const x = ops.slice(u, 1, from, to);
      const y = mixer.forward(x, { cache, layer: 0 });
      cache.commit(to - from);
      x.dispose();
      try {
        return [...(await y.data())];
      } finally {
        y.dispose();
      }
    };
    const got = await run(0, 9);
    for (let t = 9; t < 14; t++) got.push(...(await run(t, t + 1)));
    assertCloseScaled(got, full, 1e-4, 'cached');
    cache[Symbol.dispose]();
    assert.equal(be.memory().current, before);
  });

  it('a block in chunks (in place) equals the one-shot block', async () => {
    const specs = Mamba2Block.specs('blk', c);
    const r = rng(9);
    const store = new ParamStore(
      specs.map((s) => {
        const n = s.shape.reduce((a, b) => a * b, 1);
        const range: [number, number] = /dt_bias/.test(s.name)
          ? [-3, -1]
          : /A_log/.test(s.name)
            ? [0, 2]
            : /norm|D$/.test(s.name)
              ? [0.8, 1.2]
              : [-0.5, 0.5];
        return [s.name, ops.tensor(be, randn(n, r, ...range), s.shape)];
      }),
    );
    using block = Mamba2Block.load(store, 'blk', c, 1e-5);
    assert.deepEqual(store.remaining(), []);
    const u = input(11, 23);
    const once = await block.forward(u).data();
    for (const chunk of [1, 4, 7, 23, 100]) {
      const copy = ops.clone(u);
      const got = block.forwardChunked(copy, chunk, { inPlace: true });
      assert.equal(got, copy);
      assertCloseScaled(await got.data(), once, 1e-4, `chunk ${chunk}`);
    }
  });

  it('dispose releases every parameter and what was derived from them', () => {
    const host = randomParams(variants[6][1], 12);
    const before = be.memory().current;
    const mixer = build(be, variants[6][1], host);
    assert.ok(be.memory().current > before);
    mixer[Symbol.dispose]();
    assert.equal(be.memory().current, before);
  });
});
