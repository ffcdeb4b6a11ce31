/**
 * Counts a backend's kernel calls: on the GPU each one is at least one kernel launch crossing JavaScript and
 * Node-API, so the count per decoded token is what makes decoding host-bound. Wraps the methods of one backend
 * instance (own fields, as the CPU backend's kernels are, and prototype methods, as CUDA's) for the length of
 * `fn`, then restores them. Memory bookkeeping (allocate, release, memory, synchronize…) is not counted.
 */
import type { Backend } from '../src/runtime/backend.js';

/** Calls per kernel; `unary` and `binary` also per op (`binary:add`). */
export type CallCounts = Record<string, number>;

const NOT_KERNELS = new Set([
  'constructor',
  'allocate',
  'release',
  'memory',
  'resetPeak',
  'emptyCache',
  'synchronize',
]);

function kernelNames(backend: Backend, memory = false): string[] {
  const names = new Set<string>();
  for (let o: object | null = backend; o && o !== Object.prototype; o = Object.getPrototypeOf(o))
    for (const k of Object.getOwnPropertyNames(o))
      if (
        (!NOT_KERNELS.has(k) || (memory && (k === 'allocate' || k === 'release'))) &&
        typeof (backend as unknown as Record<string, unknown>)[k] === 'function'
      )
        names.add(k);
  return [...names];
}

/** A method whose calls are attributed to `label` (e.g. each decoder layer's `forward`, labelled by its kind). */
export interface CallPart {
  label: string;
  target: object;
  method: string;
}

/**
 * The kernel calls `fn` makes on `backend` (awaited when it returns a promise), and its result. `byPart`: the
 * calls made inside each part's method (the innermost part when they nest), summed per label.
 */
export async function countCalls<T>(
  backend: Backend,
  fn: () => T | Promise<T>,
  parts: readonly CallPart[] = [],
): Promise<{
  result: T;
  counts: CallCounts;
  total: number;
  byPart: Record<string, number>;
  /** Per label (`''`: outside every part), the calls per kernel. */
  opsByPart: Record<string, CallCounts>;
}> {
  const byPart: Record<string, number> = {};
  const opsByPart: Record<string, CallCounts> = {};
  const inside: string[] = [];
  const bump = (into: CallCounts, k: string) => {
    into[k] = (into[k] ?? 0) + 1;
  };
  const restore: (() => void)[] = [];
  for (const p of parts) {
    const obj = p.target as Record<string, (...args: unknown[]) => unknown>;
    const had = Object.hasOwn(obj, p.method);
    const original = obj[p.method];
    obj[p.method] = function (this: unknown, ...args: unknown[]) {
      inside.push(p.label);
      try {
        return original.apply(this, args);
      } finally {
        inside.pop();
      }
    };
    restore.push(() => {
      if (had) obj[p.method] = original;
      else delete obj[p.method];
    });
  }
  const watch = watchCalls(backend, (op) => {
    const part = inside.at(-1) ?? '';
    if (part) bump(byPart, part);
    opsByPart[part] ??= {};
    bump(opsByPart[part], op);
  });
  try {
    const result = await fn();
    const counts = watch.counts;
    const total = Object.entries(counts).reduce((s, [k, n]) => (k.includes(':') ? s : s + n), 0);
    return { result, counts, total, byPart, opsByPart };
  } finally {
    for (const r of restore) r();
    watch.stop();
  }
}

/** Calls per kernel (and per op or shape, labels with a colon) and the host milliseconds spent inside them, until `stop` restores the backend. */
export interface CallWatch {
  readonly counts: CallCounts;
  /** Host time inside each kernel's call (per kernel, and per op for unary/binary), ms. */
  readonly ms: Record<string, number>;
  stop(): void;
}

/**
 * Wraps every kernel method of `backend` to count its calls and time them on the host (what a GPU backend's
 * call costs the JavaScript thread: argument checks, the Node-API crossing, the launch, a wait when it syncs);
 * `onCall` sees each call's op label first. `memory`: allocate and release are watched too.
 */
/**
 * Kernels whose calls are also counted by shape (`attentionBackward:q=…,k=…`), where one step calls one kernel on
 * very different sizes (the vision tower's 64-token frames against the LLM's cross-attention): which arguments.
 */
const BY_SHAPE: Record<string, (args: unknown[]) => unknown[]> = {
  attention: (a) => [a[1], a[2]],
  attentionBackward: (a) => [a[4], a[5]],
  ssdScanBackward: (a) => [(a[3] as { x: unknown }).x, (a[3] as { B: unknown }).B],
};

function shapeLabel(name: string, args: unknown[]): string | null {
  const pick = BY_SHAPE[name];
  if (!pick) return null;
  const dims = pick(args).map((t) => (t as { shape?: readonly number[] })?.shape?.join('x') ?? '-');
  return `${name}:${dims.join(',')}`;
}

export function watchCalls(backend: Backend, onCall?: (op: string) => void, memory = false): CallWatch {
  const target = backend as unknown as Record<string, (...args: unknown[]) => unknown>;
  const counts: CallCounts = {};
  const ms: Record<string, number> = {};
  const own = new Map<string, PropertyDescriptor | undefined>();
  for (const name of kernelNames(backend, memory)) {
    own.set(name, Object.getOwnPropertyDescriptor(target, name));
    const original = target[name];
    target[name] = function (this: unknown, ...args: unknown[]) {
      // unary(out, op, x), binary(out, op, a, b, desc): the op is the second argument.
      const op =
        (name === 'unary' || name === 'binary') && typeof args[1] === 'string' ? `${name}:${args[1]}` : name;
      const shaped = shapeLabel(name, args);
      counts[name] = (counts[name] ?? 0) + 1;
      if (op !== name) counts[op] = (counts[op] ?? 0) + 1;
      if (shaped) counts[shaped] = (counts[shaped] ?? 0) + 1;
      onCall?.(op);
      const t0 = performance.now();
      try {
        return original.apply(this, args);
      } finally {
        const dt = performance.now() - t0;
        ms[name] = (ms[name] ?? 0) + dt;
        if (op !== name) ms[op] = (ms[op] ?? 0) + dt;
        if (shaped) ms[shaped] = (ms[shaped] ?? 0) + dt;
      }
    };
  }
  return {
    counts,
    ms,
    stop() {
      for (const [name, d] of own) {
        if (d) Object.defineProperty(target, name, d);
        else delete target[name];
      }
    },
  };
}
