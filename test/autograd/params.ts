/** Finding a loaded model's parameters for tests that train it. */
import { isTensor } from '../../src/runtime/scope.js';
import type { Tensor } from '../../src/runtime/tensor.js';

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

/** The parameters among them: all but the views of a larger one (weights split at load share its memory). */
export function parametersOf(root: unknown): { params: Tensor[]; names: string[] } {
  const found = tensorsOf(root);
  const all = [...found.keys()];
  const params = all.filter((t) => !all.some((p) => p.buffer === t.buffer && p.size > t.size));
  return { params, names: params.map((p) => found.get(p)!) };
}
