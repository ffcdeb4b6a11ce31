/** Model-level helpers for the autograd tests: finding a loaded model's parameters, a scalar score, checks. */
import assert from 'node:assert/strict';
import * as ops from '../../src/runtime/ops.js';
import { isTensor } from '../../src/runtime/scope.js';
import type { Tensor } from '../../src/runtime/tensor.js';
import { rng } from '../helpers.js';
import { cpu } from './gradcheck.js';

/** Every float tensor reachable from a model object, by its path (parameters and what was derived at load). */
export function tensorsOf(root: unknown): Map<Tensor, string> {
  const out = new Map<Tensor, string>();
  const seen = new Set<unknown>();
  const walk = (v: unknown, path: string) => {
    if (v === null || typeof v !== 'object' || seen.has(v)) return;
    seen.add(v);
    if (isTensor(v)) {
      if (!v.disposed && v.dtype !== 'i32' && v.dtype !== 'u8') out.set(v, path);
      return;
    }
    const entries = v instanceof Map ? [...v.entries()] : Object.entries(v);
    for (const [k, x] of entries) walk(x, path ? `${path}.${k}` : String(k));
  };
  walk(root, '');
  return out;
}

/**
 * The tensors a model reads for named loaded weights: the loaded tensor, or, where loading replaced it (q/k/v
 * fused at load free theirs), the model's tensor at that name's path (a view of the fused weight).
 */
export function readTensors(model: unknown, named: readonly (readonly [string, Tensor])[]): Tensor[] {
  const live = new Map([...tensorsOf(model)].map(([t, path]) => [path, t]));
  return named.map(([n, t]) => (t.disposed ? live.get(n)! : t));
}

/** The parameters among them: all but the views of a larger one (weights split at load share its memory). */
export function parametersOf(root: unknown): { params: Tensor[]; names: string[] } {
  const found = tensorsOf(root);
  const all = [...found.keys()];
  const params = all.filter((t) => !all.some((p) => p.buffer === t.buffer && p.size > t.size));
  return { params, names: params.map((p) => found.get(p)!) };
}

/** Σ logits·R for a fixed random R: a scalar that depends on every logit. */
export function projection(rows: number, vocab: number): Tensor {
  const r = rng(11);
  return ops.tensor(
    cpu,
    Float32Array.from({ length: rows * vocab }, () => r() * 2 - 1),
    [rows, vocab],
  );
}
export const score = (logits: Tensor, R: Tensor) => ops.sum(ops.sum(ops.mul(logits, R), -1), -1);

export async function assertFiniteGrads(
  grads: Tensor[],
  names: string[],
  mustMove: (name: string) => boolean,
) {
  for (const [i, g] of grads.entries()) {
    const v = await g.toArray();
    assert.ok(v.every(Number.isFinite), `${names[i]}: non-finite gradient`);
    if (mustMove(names[i]))
      assert.ok(
        v.some((x) => x !== 0),
        `${names[i]}: zero gradient`,
      );
    g.dispose();
  }
}
