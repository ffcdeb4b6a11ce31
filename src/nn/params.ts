/**
 * Named parameters. A model declares the tensors it expects as `ParamSpec`s (Hugging Face names and
 * shapes); loaders check a checkpoint against that list and hand the modules a `ParamStore` to take
 * their tensors from. One list serves loading, validation and parameter counting.
 */
import { ModelError } from '../errors.js';
import type { TensorSource } from '../io/safetensors.js';
import type { Backend } from '../runtime/backend.js';
import type { DType } from '../runtime/dtype.js';
import type { Tensor } from '../runtime/tensor.js';

export interface ParamSpec {
  readonly name: string;
  readonly shape: readonly number[];
}

export const numelOf = (shape: readonly number[]): number => shape.reduce((a, d) => a * d, 1);

export const countParams = (specs: readonly ParamSpec[]): number =>
  specs.reduce((n, s) => n + numelOf(s.shape), 0);

/** Tensors by name; `take` hands one to its module (which then owns it). */
export class ParamStore {
  readonly #tensors: Map<string, Tensor>;

  constructor(tensors: Map<string, Tensor> | Iterable<[string, Tensor]>) {
    this.#tensors = new Map(tensors);
  }

  take(name: string): Tensor {
    const t = this.#tensors.get(name);
    if (!t) throw new ModelError(`missing parameter "${name}"`);
    this.#tensors.delete(name);
    return t;
  }

  /** Names not taken yet (a module forgot one, or the store had extras). */
  remaining(): string[] {
    return [...this.#tensors.keys()];
  }
}

/** Describes how a list of found names differs from the expected specs, or null when they agree. */
export function diffParams(
  expected: readonly ParamSpec[],
  found: ReadonlyMap<string, readonly number[]>,
): string | null {
  const want = new Map(expected.map((s) => [s.name, s.shape]));
  const missing = [...want.keys()].filter((n) => !found.has(n));
  const unexpected = [...found.keys()].filter((n) => !want.has(n));
  const wrong = [...want.entries()]
    .filter(([n, s]) => found.has(n) && !sameShape(found.get(n)!, s))
    .map(([n, s]) => `${n} is [${found.get(n)!.join(', ')}], expected [${s.join(', ')}]`);
  if (!missing.length && !unexpected.length && !wrong.length) return null;
  const list = (xs: string[]) =>
    xs.slice(0, 20).join(', ') + (xs.length > 20 ? `, … (${xs.length} in all)` : '');
  const parts: string[] = [];
  if (missing.length) parts.push(`${missing.length} missing: ${list(missing)}`);
  if (unexpected.length) parts.push(`${unexpected.length} unexpected: ${list(unexpected)}`);
  if (wrong.length) parts.push(`${wrong.length} with the wrong shape: ${list(wrong)}`);
  return parts.join('; ');
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/**
 * Loads `specs` from `source` (checkpoint names mapped to spec names by `rename`; names for which `skip` is true
 * ignored) onto `backend` as `dtype`, after checking names and shapes: a missing, unexpected or misshapen tensor
 * is a ModelError naming `what` and listing them.
 */
export async function loadCheckedParams(
  source: TensorSource,
  specs: readonly ParamSpec[],
  opts: {
    backend: Backend;
    dtype: DType;
    /** The checkpoint and the model, for messages: `${where}: the weights do not match ${what}: …`. */
    where: string;
    what: string;
    rename?: (name: string) => string;
    skip?: (name: string) => boolean;
    /** Reshapes a loaded tensor to its spec's shape (e.g. a Conv3d patch embedding to a Linear). */
    adapt?: (spec: ParamSpec, t: Tensor) => Tensor;
  },
): Promise<ParamStore> {
  const original = new Map<string, string>();
  const found = new Map<string, readonly number[]>();
  for (const name of source.names()) {
    if (opts.skip?.(name)) continue;
    const canon = opts.rename ? opts.rename(name) : name;
    if (original.has(canon))
      throw new ModelError(
        `${opts.where}: tensor "${canon}" is stored twice (as "${original.get(canon)}" and "${name}")`,
      );
    original.set(canon, name);
    found.set(canon, source.info(name).shape);
  }
  const diff = diffParams(specs, found);
  if (diff) throw new ModelError(`${opts.where}: the weights do not match ${opts.what}: ${diff}`);
  const tensors = new Map<string, Tensor>();
  try {
    for (const s of specs) {
      const t = await source.loadTensor(opts.backend, original.get(s.name)!, { dtype: opts.dtype });
      tensors.set(s.name, opts.adapt ? opts.adapt(s, t) : t);
    }
  } catch (e) {
    for (const t of tensors.values()) t.dispose();
    throw e;
  }
  return new ParamStore(tensors);
}
