/**
 * Mamba-2 mixer: against transformers' Mamba2Mixer (fixtures from tools/reference/vamba_fixtures.py, several
 * chunk counts and ngroups 1/2/4), and self-consistency of the ways to feed a sequence (pieces with carried
 * state, single steps, reversed) — all against the one-shot forward over the whole sequence.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import { SafetensorsFile } from '../../src/io/index.js';
import {
  disposeState,
  Mamba2Block,
  type Mamba2Config,
  Mamba2Mixer,
  type Mamba2Weights,
  mamba2Config,
} from '../../src/nn/mamba2.js';
import * as ops from '../../src/runtime/ops.js';
import type { Tensor } from '../../src/runtime/tensor.js';
import { assertClose, randn, rng } from '../helpers.js';
import { relErr } from '../models/vamba-fixtures.js';

const be = cpuBackend();
const DIR = join(import.meta.dirname, '..', 'fixtures', 'vamba', 'mamba2');

async function loadCase(file: string) {
  const f = await SafetensorsFile.open(join(DIR, file));
  const m = JSON.parse(f.metadata.config) as Record<string, number>;
  const get = (n: string) => f.loadTensor(be, n, { dtype: 'f32' });
  const w: Mamba2Weights = {
    in_proj: await get('mixer.in_proj.weight'),
    conv1d_weight: await get('mixer.conv1d.weight'),
    conv1d_bias: await get('mixer.conv1d.bias'),
    dt_bias: await get('mixer.dt_bias'),
    A_log: await get('mixer.A_log'),
    D: await get('mixer.D'),
    norm_weight: await get('mixer.norm.weight'),
    out_proj: await get('mixer.out_proj.weight'),
  };
  const config = mamba2Config(m.d_model, {
    dInner: m.d_inner,
    dState: m.d_state,
    dConv: m.d_conv,
    headDim: m.d_inner / m.nheads,
    nGroups: m.ngroups,
    chunkSize: m.chunk_size,
  });
  const input = await get('input');
  const output = await f.read('output');
  await f.close();
  return { config, w, input, expected: new Float32Array(output.data.buffer as ArrayBuffer) };
}

describe('Mamba-2 mixer vs transformers Mamba2Mixer (fixtures)', () => {
  const files = readdirSync(DIR).filter((f) => f.endsWith('.safetensors'));
  it('has cases with several chunk counts and ngroups > 1', () => {
    assert.ok(files.length >= 4, `expected ≥ 4 mixer fixtures, found ${files.length}`);
    assert.ok(files.some((f) => /^g[24]-/.test(f)));
  });
  for (const file of files)
    it(file, async () => {
      const { config, w, input, expected } = await loadCase(file);
      const mixer = new Mamba2Mixer(config, w);
      const { y, state } = mixer.forward(input);
      const err = relErr(await y.data(), expected);
      assert.ok(err <= 1e-5, `${file}: relative error ${err.toExponential(2)}`);
      // The same sequence in uneven pieces with the state carried across them.
      const len = input.shape[1];
      const cuts = [0, 7, Math.min(len, 23), len].filter((v, i, a) => i === 0 || v > a[i - 1]);
      let st = null;
      const parts: number[] = [];
      for (let i = 0; i + 1 < cuts.length; i++) {
        const r = mixer.forward(ops.slice(input, 1, cuts[i], cuts[i + 1]), st);
        parts.push(...(await r.y.data()));
        st = r.state;
      }
      assert.ok(relErr(parts, expected) <= 1e-5, `${file} in pieces`);
      assertClose(await st!.ssm.data(), await state.ssm.data(), 1e-4, `${file} final state`);
    });
});

/** A random mixer with the given shape; weights uniform, never zero. */
function randomMixer(c: Mamba2Config, seed: number): Mamba2Mixer {
  const r = rng(seed);
  const nh = c.dInner / c.headDim;
  const convDim = c.dInner + 2 * c.nGroups * c.dState;
  const t = (shape: number[], lo = -0.5, hi = 0.5) =>
    ops.tensor(
      be,
      randn(
        shape.reduce((a, b) => a * b, 1),
        r,
        lo,
        hi,
      ),
      shape,
    );
  return new Mamba2Mixer(c, {
    in_proj: t([2 * c.dInner + 2 * c.nGroups * c.dState + nh, c.dModel]),
    conv1d_weight: t([convDim, 1, c.dConv]),
    conv1d_bias: t([convDim], -0.1, 0.1),
    dt_bias: t([nh], -3, -1),
    A_log: t([nh], 0, 2),
    D: t([nh], 0.5, 1.5),
    norm_weight: t([c.dInner], 0.8, 1.2),
    out_proj: t([c.dModel, c.dInner]),
  });
}

describe('Mamba-2 mixer: ways to feed a sequence', () => {
  const c = mamba2Config(12, { dInner: 24, dState: 6, headDim: 6, nGroups: 2, chunkSize: 5 });
  const input = (seed: number, len: number): Tensor =>
    ops.tensor(be, randn(len * 12, rng(seed)), [1, len, 12]);

  it('single steps equal the chunked scan', async () => {
    const mixer = randomMixer(c, 1);
    const u = input(2, 13);
    const full = await mixer.forward(u).y.data();
    const state = mixer.initialState();
    const steps: number[] = [];
    for (let t = 0; t < 13; t++) {
      const ut = ops.slice(u, 1, t, t + 1).reshape([1, 12]);
      steps.push(...(await mixer.step(ut, state).data()));
    }
    assertClose(steps, full, 1e-4, 'steps');
    disposeState(state);
  });

  it('a step after a prefix continues the prefix', async () => {
    const mixer = randomMixer(c, 3);
    const u = input(4, 9);
    const full = await mixer.forward(u).y.data();
    const prefix = mixer.forward(ops.slice(u, 1, 0, 8));
    const last = await mixer.step(ops.slice(u, 1, 8, 9).reshape([1, 12]), prefix.state).data();
    assertClose(last, full.slice(8 * 12), 1e-4, 'step after prefix');
  });

  it('reverse scans the flipped sequence', async () => {
    const mixer = randomMixer(c, 5);
    const u = input(6, 11);
    const rev = await mixer.forward(u, null, { reverse: true }).y.data();
    const manual = await ops.flip(mixer.forward(ops.flip(u, 1)).y, 1).data();
    assertClose(rev, manual, 1e-6, 'reverse');
    // …and it is not the forward scan.
    const fwd = await mixer.forward(u).y.data();
    assert.ok(Math.abs(rev[0] - fwd[0]) > 1e-4);
  });

  it('norm before gate differs from gate before norm (both configurable)', async () => {
    const a = randomMixer(c, 7);
    const b = new Mamba2Mixer({ ...c, normBeforeGate: true }, a.w);
    const u = input(8, 6);
    const ya = await a.forward(u).y.data();
    const yb = await b.forward(u).y.data();
    assert.ok(ya.some((v, i) => Math.abs(v - yb[i]) > 1e-4));
  });

  it('a block processed in chunks (in place) equals the one-shot block', async () => {
    const mixer = randomMixer(c, 9);
    const norm = ops.tensor(be, randn(12, rng(10), 0.8, 1.2), [12]);
    const block = new Mamba2Block(norm, 1e-5, mixer);
    const u = input(11, 23);
    const once = await block.forward(u).y.data();
    for (const chunk of [1, 4, 7, 23, 100]) {
      const copy = ops.clone(u);
      const got = block.forwardChunked(copy, chunk, { inPlace: true });
      assert.equal(got, copy);
      assertClose(await got.data(), once, 1e-4, `chunk ${chunk}`);
    }
  });
});
