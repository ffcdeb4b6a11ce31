/**
 * Initial weights of a model trained from scratch, as PyTorch initialises the modules of
 * tools/reference/train_needle.py: Linear and Conv weights and biases U(±1/√fan_in) (kaiming-uniform with
 * a = √5), embeddings N(0, 1), norm weights 1 and biases 0; Vamba's Mamba blocks and α by MambaInit (the
 * initialisation the Qwen2-VL → Vamba conversion uses).
 */

import { Checkpoint } from '../io/checkpoint.js';
import type { Qwen2VLConfig } from '../models/qwen2vl/config.js';
import { canonicalName } from '../models/qwen2vl/weights.js';
import { MambaInit } from '../models/vamba/convert.js';
import type { ParamSpec } from '../nn/params.js';
import { loadCheckedParams, numelOf } from '../nn/params.js';
import type { Backend } from '../runtime/backend.js';
import type { DType } from '../runtime/dtype.js';
import * as ops from '../runtime/ops.js';
import type { Tensor } from '../runtime/tensor.js';
import { Random } from '../util/random.js';

const isNorm = (name: string) => /(norm\d*|ln_q|layernorm)\.(weight|bias)$/.test(name);

/**
 * A family's own initialisation of some tensors (values, or null for PyTorch's defaults); `rng` is the shared
 * stream, drawn in spec order.
 */
export type SpecialInit = (name: string, shape: readonly number[], rng: Random) => Float32Array | null;

/**
 * Values (f32) for every spec, drawn from one seeded stream in spec order: `special`'s where it gives them,
 * PyTorch's defaults for the module otherwise.
 */
export function pytorchInit(
  specs: readonly ParamSpec[],
  seed: number,
  special: SpecialInit = () => null,
): Map<string, Float32Array> {
  const rng = new Random(seed);
  const out = new Map<string, Float32Array>();
  // A bias takes the bound of its weight (the weight comes first in the specs).
  const fanIn = new Map<string, number>();
  for (const s of specs) {
    const own = special(s.name, s.shape, rng);
    if (own) {
      out.set(s.name, own);
      continue;
    }
    const n = numelOf(s.shape);
    const v = new Float32Array(n);
    const module = s.name.slice(0, s.name.lastIndexOf('.'));
    if (isNorm(s.name)) v.fill(s.name.endsWith('.weight') ? 1 : 0);
    else if (s.name.includes('embed_tokens')) normal(rng, v, 1);
    else {
      const fan = s.name.endsWith('.bias') ? (fanIn.get(module) ?? 1) : numelOf(s.shape.slice(1));
      if (s.name.endsWith('.weight')) fanIn.set(module, fan);
      uniform(rng, v, 1 / Math.sqrt(fan));
    }
    out.set(s.name, v);
  }
  return out;
}

/** v filled with N(0, std²) draws (Box–Muller: two standard normals per two uniforms). */
export function normal(rng: Random, v: Float32Array, std: number): Float32Array {
  for (let i = 0; i < v.length; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - rng.next()));
    const a = 2 * Math.PI * rng.next();
    v[i] = std * r * Math.cos(a);
    if (i + 1 < v.length) v[i + 1] = std * r * Math.sin(a);
  }
  return v;
}

/** v filled with U(−bound, bound) draws. */
export function uniform(rng: Random, v: Float32Array, bound: number): Float32Array {
  for (let i = 0; i < v.length; i++) v[i] = (2 * rng.next() - 1) * bound;
  return v;
}

/** Qwen2-VL and Vamba: PyTorch's defaults, Vamba's Mamba blocks and α by MambaInit. */
export function scratchWeights(
  specs: readonly ParamSpec[],
  config: Qwen2VLConfig,
  seed: number,
): Map<string, Float32Array> {
  const mamba = new MambaInit(config, seed + 1, 0.5);
  return pytorchInit(specs, seed, (name, shape) =>
    /\.(vision_mixer\.|alpha$)/.test(name) ? (mamba.make(name, shape, 'F32').data as Float32Array) : null,
  );
}

/** scratchWeights as tensors on `backend` in `dtype`, by name. */
export function scratchTensors(
  specs: readonly ParamSpec[],
  config: Qwen2VLConfig,
  seed: number,
  backend: Backend,
  dtype: DType,
): Map<string, Tensor> {
  return tensorsOf(specs, scratchWeights(specs, config, seed), backend, dtype);
}

/** Values by name as tensors of the specs' shapes on `backend` in `dtype`. */
export function tensorsOf(
  specs: readonly ParamSpec[],
  values: ReadonlyMap<string, Float32Array>,
  backend: Backend,
  dtype: DType,
): Map<string, Tensor> {
  return new Map(specs.map((s) => [s.name, ops.tensor(backend, values.get(s.name)!, s.shape, dtype)]));
}

/**
 * The weights of a Qwen2-VL-family checkpoint directory (names in either transformers layout), checked against
 * `specs`, by canonical name; a tied lm_head is not read. `what` names the config in errors.
 */
export async function checkpointTensors(
  dir: string,
  specs: readonly ParamSpec[],
  config: Qwen2VLConfig,
  backend: Backend,
  dtype: DType,
  what: string,
): Promise<Map<string, Tensor>> {
  const ckpt = await Checkpoint.open(dir);
  try {
    const store = await loadCheckedParams(ckpt, specs, {
      backend,
      dtype,
      where: dir,
      what,
      rename: canonicalName,
      skip: (n) => canonicalName(n) === 'lm_head.weight' && config.text.tie_word_embeddings,
    });
    return new Map(specs.map((s) => [s.name, store.take(s.name)]));
  } finally {
    await ckpt.close();
  }
}
