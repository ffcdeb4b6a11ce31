/**
 * A `TensorSource` that makes weights instead of reading them: full-size models (Qwen2-VL-7B, Vamba 11.3 B)
 * for benchmarks without a 22 GB download. It is handed to the same loaders as a checkpoint
 * (`loadQwen2VLParams`, `loadVambaParams`), so names, shapes and every module are exercised unchanged.
 *
 * Values follow Hugging Face's `_init_weights` closely enough for activations to stay finite: norm weights 1,
 * norm and Linear biases 0, everything else uniform with std `std` (0.02, `initializer_range`); tensors with
 * their own initialiser (Mamba's A_log, dt_bias, D, conv1d, Vamba's α) get it through `special`.
 *
 * Large tensors are filled on the device: one table of random rows is uploaded once, and each tensor is an
 * `embedding` gather of random rows of it, so the host only draws one index per row (1/256 of the values).
 * Rows repeat across tensors (a 4096-row pool), which changes no timing or memory figure.
 */
import type { Backend } from '../runtime/backend.js';
import type { DType } from '../runtime/dtype.js';
import * as ops from '../runtime/ops.js';
import type { Tensor } from '../runtime/tensor.js';
import { Random } from '../util/random.js';
import type { HostTensor } from './convert.js';
import type { LoadOptions, TensorSource } from './safetensors.js';
import type { TensorInfo } from './safetensors-format.js';

/** A tensor's own initial values (f32), or null for the default rules. */
export type SpecialInit = (name: string, shape: readonly number[]) => Float32Array | null;

export interface RandomWeightsOptions {
  seed?: number;
  /** Standard deviation of the uniform default (default 0.02). */
  std?: number;
  special?: SpecialInit;
}

const ROW = 256;
const POOL_ROWS = 4096;
/** Tensors smaller than this are drawn on the host. */
const HOST_LIMIT = 1 << 20;

const numel = (shape: readonly number[]) => shape.reduce((a, d) => a * d, 1);

export class RandomWeights implements TensorSource, Disposable {
  readonly #shapes: Map<string, readonly number[]>;
  readonly #rng: Random;
  readonly #std: number;
  readonly #special: SpecialInit;
  readonly #pools = new Map<string, Tensor>();

  constructor(specs: Iterable<{ name: string; shape: readonly number[] }>, opts: RandomWeightsOptions = {}) {
    this.#shapes = new Map([...specs].map((s) => [s.name, s.shape]));
    this.#rng = new Random(opts.seed ?? 0);
    this.#std = opts.std ?? 0.02;
    this.#special = opts.special ?? (() => null);
  }

  names(): string[] {
    return [...this.#shapes.keys()];
  }

  has(name: string): boolean {
    return this.#shapes.has(name);
  }

  info(name: string): TensorInfo {
    const shape = this.#shape(name);
    return { name, dtype: 'F32', shape, begin: 0, end: 4 * numel(shape) };
  }

  async read(name: string): Promise<HostTensor> {
    const shape = this.#shape(name);
    return { dtype: 'F32', shape, data: this.#fixed(name, shape) ?? this.#uniform(numel(shape)) };
  }

  async loadTensor(backend: Backend, name: string, opts: LoadOptions = {}): Promise<Tensor> {
    const shape = this.#shape(name);
    const dtype = opts.dtype ?? 'f32';
    const n = numel(shape);
    const fixed = this.#fixed(name, shape);
    if (fixed || n < HOST_LIMIT || n % ROW)
      return ops.tensor(backend, fixed ?? this.#uniform(n), shape, dtype);
    const ids = new Int32Array(n / ROW);
    for (let i = 0; i < ids.length; i++) ids[i] = Math.floor(this.#rng.next() * POOL_ROWS);
    const idx = ops.tensor(backend, ids, [ids.length], 'i32');
    const rows = ops.embedding(this.#pool(backend, dtype), idx);
    idx.dispose();
    const t = rows.reshape(shape);
    rows.dispose();
    return t;
  }

  [Symbol.dispose](): void {
    for (const p of this.#pools.values()) p.dispose();
    this.#pools.clear();
  }

  #shape(name: string): readonly number[] {
    const s = this.#shapes.get(name);
    if (!s) throw new RangeError(`random weights: no tensor named "${name}"`);
    return s;
  }

  /** Norm weights 1, norm/Linear biases 0, a special initialiser's values, or null for random. */
  #fixed(name: string, shape: readonly number[]): Float32Array | null {
    const special = this.#special(name, shape);
    if (special) return special;
    if (/(norm|ln_q)[^.]*\.weight$/.test(name)) return new Float32Array(numel(shape)).fill(1);
    if (/\.bias$/.test(name)) return new Float32Array(numel(shape));
    return null;
  }

  /** U(±std·√3): mean 0, standard deviation std. */
  #uniform(n: number): Float32Array {
    const v = new Float32Array(n);
    const bound = this.#std * Math.sqrt(3);
    for (let i = 0; i < n; i++) v[i] = (2 * this.#rng.next() - 1) * bound;
    return v;
  }

  #pool(backend: Backend, dtype: DType): Tensor {
    const key = `${backend.name}:${dtype}`;
    let p = this.#pools.get(key);
    if (!p) {
      p = ops.tensor(backend, this.#uniform(POOL_ROWS * ROW), [POOL_ROWS, ROW], dtype);
      this.#pools.set(key, p);
    }
    return p;
  }
}
