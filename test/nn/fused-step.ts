// A one-token decode step of self-attention (with a KV cache and RoPE, plain or continuing a prefix another
// continuation writes after) and of a gated MLP, loaded fused (SelfAttention.load, GatedMLP.load: q‖k‖v and
// gate‖up as one weight) or as separate projections, from the same seeded weights on any backend. Shared by
// test/nn/fused-step.test.ts (CPU) and test-cuda/decode.test.ts (GPU against the CPU).

import { SelfAttention, type SelfAttentionConfig } from '../../src/nn/attention.js';
import { HybridCache } from '../../src/nn/cache.js';
import { Linear } from '../../src/nn/linear.js';
import { GatedMLP } from '../../src/nn/mlp.js';
import { type ParamSpec, ParamStore } from '../../src/nn/params.js';
import { rope1d, rotaryTensors } from '../../src/nn/rotary.js';
import type { Backend } from '../../src/runtime/backend.js';
import type { DType } from '../../src/runtime/dtype.js';
import * as ops from '../../src/runtime/ops.js';
import { tidy } from '../../src/runtime/scope.js';
import type { Tensor } from '../../src/runtime/tensor.js';
import { randn, rng } from '../helpers.js';

export const HIDDEN = 48;
export const ATTN: SelfAttentionConfig = {
  hiddenSize: HIDDEN,
  numHeads: 6,
  numKvHeads: 2,
  headDim: 16,
  qkvBias: true,
  oBias: false,
};
const INTER = 40;

function store(be: Backend, specs: ParamSpec[], dtype: DType): ParamStore {
  const r = rng(7);
  return new ParamStore(
    specs.map((s) => [
      s.name,
      ops.tensor(
        be,
        randn(
          s.shape.reduce((a, b) => a * b, 1),
          r,
          -0.3,
          0.3,
        ),
        s.shape,
        dtype,
      ),
    ]),
  );
}

const tokens = (be: Backend, from: number, n: number, dtype: DType) =>
  ops.tensor(be, randn(n * HIDDEN, rng(100 + from), -1, 1), [n, HIDDEN], dtype);

/**
 * Attention output [1, hidden] of the token at position 7: 6 prompt tokens prefilled, a 7th decoded, then the
 * step under test. `segmented`: the steps run on a continuation of a snapshot of the prompt that another
 * continuation writes after (so the prefix is read from the shared buffers).
 */
export async function attentionStep(
  be: Backend,
  fused: boolean,
  dtype: DType,
  segmented = false,
): Promise<Float32Array> {
  const specs = SelfAttention.specs('a', ATTN);
  const attn = fused
    ? SelfAttention.load(store(be, specs, dtype), 'a', ATTN)
    : new SelfAttention(ATTN, ...SelfAttention.projections(store(be, specs, dtype), 'a', ATTN));
  using _ = attn;
  const layers = [{ kind: 'attention', kvHeads: ATTN.numKvHeads, headDim: ATTN.headDim } as const];
  const run = (cache: HybridCache, from: number, n: number) =>
    tidy(() => {
      const pos = Array.from({ length: n }, (_, i) => from + i);
      const out = attn.forward(tokens(be, from, n, dtype), {
        rope: rotaryTensors(be, rope1d(pos, ATTN.headDim, 10000)),
        cache: { cache, layer: 0 },
      });
      cache.commit(n);
      return out;
    });
  using prompt = new HybridCache(be, { layers, dtype, capacity: 8 });
  run(prompt, 0, 6).dispose();
  using snap = segmented ? prompt.snapshot() : null;
  using other = snap?.resume(4);
  using resumed = snap?.resume(4);
  if (other) run(other, 6, 1).dispose(); // writes after the prefix: `resumed` must keep to its own buffers
  const cache = resumed ?? prompt;
  run(cache, 6, 1).dispose();
  if (segmented !== !!cache.room(0, 1).prefix)
    throw new Error('the cache is not segmented as the test wants');
  using out = run(cache, 7, 1);
  return Float32Array.from(await out.data());
}

/** Gated MLP output [1, hidden] of one token. */
export async function mlpStep(be: Backend, fused: boolean, dtype: DType): Promise<Float32Array> {
  const p = store(be, GatedMLP.specs('m', HIDDEN, INTER), dtype);
  const part = (n: string) => Linear.load(p, `m.${n}`, false);
  using mlp = fused
    ? GatedMLP.load(p, 'm')
    : new GatedMLP(part('gate_proj'), part('up_proj'), part('down_proj'));
  using x: Tensor = tokens(be, 0, 1, dtype);
  using y = mlp.forward(x);
  return Float32Array.from(await y.data());
}
