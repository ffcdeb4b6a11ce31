/** Mamba-2 test cases shared by the CPU tests (test/nn) and the CUDA parity tests (test-cuda). */
import assert from 'node:assert/strict';
import { Mamba2, type Mamba2Config, mamba2Config } from '../../src/nn/mamba2.js';
import { ParamStore } from '../../src/nn/params.js';
import type { Backend } from '../../src/runtime/backend.js';
import * as ops from '../../src/runtime/ops.js';
import { randn, rng } from '../helpers.js';

/** Parameter values by name (without the module prefix). */
export type Host = Map<string, Float32Array>;

/** Random parameters for a config (uniform, never zero; dt_bias/A_log/D/norm in their usual ranges). */
export function randomParams(c: Mamba2Config, seed: number): Host {
  const r = rng(seed);
  const host: Host = new Map();
  for (const s of Mamba2.specs('m', c)) {
    const name = s.name.slice(2);
    const n = s.shape.reduce((a, b) => a * b, 1);
    const range: [number, number] = /^dt_bias/.test(name)
      ? [-3, -1]
      : /^A_(b_)?log/.test(name)
        ? [0, 2]
        : /^D/.test(name)
          ? [0.5, 1.5]
          : /^norm/.test(name)
            ? [0.8, 1.2]
            : /bias$/.test(name)
              ? [-0.1, 0.1]
              : [-0.5, 0.5];
    host.set(name, randn(n, r, ...range));
  }
  return host;
}

/** The mixer of `host`'s values on a backend, loaded through its Hugging Face names. */
export function build(be: Backend, c: Mamba2Config, host: Host): Mamba2 {
  const specs = Mamba2.specs('mixer', c);
  const store = new ParamStore(
    specs.map((s) => [s.name, ops.tensor(be, host.get(s.name.slice(6))!, s.shape)]),
  );
  const m = Mamba2.load(store, 'mixer', c);
  assert.deepEqual(store.remaining(), []);
  return m;
}

export const D_MODEL = 12;
export const base = { dInner: 24, dState: 6, headDim: 6, chunkSize: 5 };
/** Every variant the next families need, at a chunk (5) that the test lengths are not multiples of. */
export const variants: [string, Mamba2Config][] = [
  ['norm after gate, 1 group (Vamba)', mamba2Config(D_MODEL, base)],
  ['grouped norm, 2 groups (Nemotron-H)', mamba2Config(D_MODEL, { ...base, nGroups: 2, normGroupSize: 12 })],
  [
    '4 groups, norm over all channels, dt limit',
    mamba2Config(D_MODEL, { ...base, nGroups: 4, normGroupSize: 24, dtLimit: [0.05, 0.6] }),
  ],
  [
    'norm before gate, biases (MambaMia causal)',
    mamba2Config(D_MODEL, { ...base, normBeforeGate: true, bias: true }),
  ],
  ['no norm, no conv bias', mamba2Config(D_MODEL, { ...base, rmsnorm: false, convBias: false })],
  [
    'bidirectional sum (MambaMia v2)',
    mamba2Config(D_MODEL, { ...base, normBeforeGate: true, bidirectional: 'sum' }),
  ],
  ['bidirectional concat, 2 groups', mamba2Config(D_MODEL, { ...base, nGroups: 2, bidirectional: 'concat' })],
];
