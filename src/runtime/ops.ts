/**
 * The op front-end: every op validates its arguments, computes the output shape, allocates the output on the
 * inputs' backend and calls the backend kernel. Model code uses only these functions, so it runs unchanged
 * on every backend. While autograd records (grad-hook.ts), each op also reports itself to the tape.
 */
import type {
  AttentionDesc,
  AttentionMassDesc,
  Backend,
  BinaryOp,
  ResidualAdd,
  SsdDesc,
  UnaryOp,
} from './backend.js';
import { BYTES_PER_ELEMENT, type DType, fromF32, isFloat, type RawArray } from './dtype.js';
import { active } from './grad-hook.js';
import {
  axisOf,
  broadcastShapes,
  broadcastStrides,
  fmt,
  numel,
  type Shape,
  ShapeError,
  sameShape,
} from './shape.js';
import { Buffer, Tensor } from './tensor.js';

// ---- creation ----------------------------------------------------------------------------------

/** An uninitialised tensor on `backend`. */
export function empty(backend: Backend, shape: Shape, dtype: DType = 'f32'): Tensor {
  for (const d of shape)
    if (!Number.isInteger(d) || d < 0)
      throw new ShapeError(`empty: invalid shape ${fmt(shape)} (dims must be integers ≥ 0)`);
  const bytes = numel(shape) * BYTES_PER_ELEMENT[dtype];
  return new Tensor(new Buffer(backend, backend.allocate(bytes)), dtype, [...shape]);
}

export function full(backend: Backend, shape: Shape, value: number, dtype: DType = 'f32'): Tensor {
  const t = empty(backend, shape, dtype);
  backend.fill(t, value);
  return t;
}

export const zeros = (backend: Backend, shape: Shape, dtype: DType = 'f32'): Tensor =>
  full(backend, shape, 0, dtype);

/**
 * A tensor from host values. Numbers (or a Float32Array for a 16-bit dtype) are converted to `dtype`; a typed
 * array matching the dtype's raw layout (Uint16Array for bf16/f16, Int32Array for i32…) is copied as is.
 */
export function tensor(
  backend: Backend,
  values: ArrayLike<number> | RawArray,
  shape: Shape,
  dtype: DType = 'f32',
): Tensor {
  if (numel(shape) !== values.length)
    throw new ShapeError(
      `tensor: ${values.length} values do not fill shape ${fmt(shape)} (${numel(shape)} elements)`,
    );
  const raw = isRawFor(dtype, values) ? values : fromF32(dtype, values);
  const t = empty(backend, shape, dtype);
  backend.upload(t, raw);
  return t;
}

function isRawFor(dtype: DType, v: ArrayLike<number>): v is RawArray {
  switch (dtype) {
    case 'f32':
      return v instanceof Float32Array;
    case 'bf16':
    case 'f16':
      return v instanceof Uint16Array;
    case 'i32':
      return v instanceof Int32Array;
    case 'u8':
      return v instanceof Uint8Array;
  }
}

// ---- shape ops ---------------------------------------------------------------------------------

export function cast(x: Tensor, dtype: DType): Tensor {
  x.assertLive('cast');
  const out = empty(x.backend, x.shape, dtype);
  x.backend.cast(out, x);
  if (active) active.record('cast', [x], [out], {});
  return out;
}

/** A contiguous copy. */
export const clone = (x: Tensor): Tensor => cast(x, x.dtype);

export function permute(x: Tensor, perm: readonly number[]): Tensor {
  x.assertLive('permute');
  if (perm.length !== x.rank || [...perm].sort((a, b) => a - b).some((p, i) => p !== i))
    throw new ShapeError(
      `permute: ${fmt(perm)} is not a permutation of the ${x.rank} axes of ${fmt(x.shape)}`,
    );
  const out = empty(
    x.backend,
    perm.map((p) => x.shape[p]),
    x.dtype,
  );
  x.backend.permute(out, x, perm);
  if (active) active.record('permute', [x], [out], { perm: [...perm] });
  return out;
}

/** Swaps two axes (copy). */
export function transpose(x: Tensor, a = -2, b = -1): Tensor {
  const i = axisOf(a, x.rank, 'transpose');
  const j = axisOf(b, x.rank, 'transpose');
  const perm = x.shape.map((_, k) => k);
  perm[i] = j;
  perm[j] = i;
  return permute(x, perm);
}

function split3(shape: Shape, axis: number): [number, number, number] {
  return [numel(shape.slice(0, axis)), shape[axis], numel(shape.slice(axis + 1))];
}

/** x[..., start:end, ...] along `axis` (copy; use `Tensor.narrow` for a view along axis 0). */
export function slice(x: Tensor, axis: number, start: number, end: number): Tensor {
  x.assertLive('slice');
  const a = axisOf(axis, x.rank, 'slice');
  const n = x.shape[a];
  if (start < 0) start += n;
  if (end < 0) end += n;
  if (start < 0 || end > n || start > end)
    throw new ShapeError(`slice: [${start}, ${end}) out of range for axis ${a} of ${fmt(x.shape)}`);
  const shape = [...x.shape];
  shape[a] = end - start;
  const out = empty(x.backend, shape, x.dtype);
  const [outer, dim, inner] = split3(x.shape, a);
  x.backend.readSlice(out, x, outer, dim, inner, start);
  if (active) active.record('slice', [x], [out], { axis: a, start });
  return out;
}

/** Splits along `axis` into pieces of the given sizes (copies). */
export function split(x: Tensor, axis: number, sizes: readonly number[]): Tensor[] {
  const a = axisOf(axis, x.rank, 'split');
  if (sizes.reduce((s, v) => s + v, 0) !== x.shape[a])
    throw new ShapeError(`split: sizes ${fmt(sizes)} do not add up to axis ${a} of ${fmt(x.shape)}`);
  let at = 0;
  return sizes.map((s) => {
    const piece = slice(x, a, at, at + s);
    at += s;
    return piece;
  });
}

/** Writes `x` into `dst` at [start, start + x.shape[axis]) along `axis`, in place (KV caches). */
export function writeSlice(dst: Tensor, x: Tensor, axis: number, start: number): void {
  dst.assertLive('writeSlice');
  x.assertLive('writeSlice');
  const a = axisOf(axis, dst.rank, 'writeSlice');
  const ok =
    x.rank === dst.rank &&
    x.shape.every((d, i) => i === a || d === dst.shape[i]) &&
    start >= 0 &&
    start + x.shape[a] <= dst.shape[a];
  if (!ok || x.dtype !== dst.dtype || x.backend !== dst.backend)
    throw new ShapeError(
      `writeSlice: cannot write ${x.dtype} ${fmt(x.shape)} into ${dst.dtype} ${fmt(dst.shape)} at ${start} along axis ${a}`,
    );
  writeSliceUnrecorded(dst, x, a, start);
  if (active) active.recordInPlace('writeSlice', dst, [x], { axis: a, start });
}

function writeSliceUnrecorded(dst: Tensor, x: Tensor, axis: number, start: number): void {
  const [outer, outDim, inner] = split3(dst.shape, axis);
  dst.backend.writeSlice(dst, x, outer, outDim, inner, start);
}

export function concat(xs: readonly Tensor[], axis = 0): Tensor {
  if (!xs.length) throw new ShapeError('concat: no tensors given');
  const first = xs[0];
  const a = axisOf(axis, first.rank, 'concat');
  for (const x of xs) {
    x.assertLive('concat');
    if (
      x.rank !== first.rank ||
      x.dtype !== first.dtype ||
      x.backend !== first.backend ||
      x.shape.some((d, i) => i !== a && d !== first.shape[i])
    )
      throw new ShapeError(
        `concat: ${x.dtype} ${fmt(x.shape)} does not match ${first.dtype} ${fmt(first.shape)} along axis ${a}`,
      );
  }
  const shape = [...first.shape];
  shape[a] = xs.reduce((s, x) => s + x.shape[a], 0);
  const out = empty(first.backend, shape, first.dtype);
  let at = 0;
  for (const x of xs) {
    writeSliceUnrecorded(out, x, a, at);
    at += x.shape[a];
  }
  if (active) active.record('concat', xs, [out], { axis: a });
  return out;
}

/** Reverses along `axis`. */
export function flip(x: Tensor, axis: number): Tensor {
  x.assertLive('flip');
  const a = axisOf(axis, x.rank, 'flip');
  const out = empty(x.backend, x.shape, x.dtype);
  const [outer, dim, inner] = split3(x.shape, a);
  x.backend.flip(out, x, outer, dim, inner);
  if (active) active.record('flip', [x], [out], { axis: a });
  return out;
}

// ---- elementwise -------------------------------------------------------------------------------

function requireFloat(x: Tensor, what: string): void {
  if (!isFloat(x.dtype)) throw new TypeError(`${what}: expected a float tensor, got ${x.dtype}`);
}

export function unary(op: UnaryOp, x: Tensor): Tensor {
  x.assertLive(op);
  requireFloat(x, op);
  const out = empty(x.backend, x.shape, x.dtype);
  x.backend.unary(out, op, x);
  if (active) active.record('unary', [x], [out], { op });
  return out;
}

export const silu = (x: Tensor) => unary('silu', x);
export const gelu = (x: Tensor) => unary('gelu', x);
export const geluTanh = (x: Tensor) => unary('gelu_tanh', x);
export const quickGelu = (x: Tensor) => unary('quick_gelu', x);
export const relu2 = (x: Tensor) => unary('relu2', x);
export const sigmoid = (x: Tensor) => unary('sigmoid', x);
export const softplus = (x: Tensor) => unary('softplus', x);
export const exp = (x: Tensor) => unary('exp', x);

export function binary(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  a.assertLive(op);
  b.assertLive(op);
  if (a.backend !== b.backend)
    throw new TypeError(`${op}: tensors live on ${a.backend.name} and ${b.backend.name}`);
  if (a.dtype !== b.dtype)
    throw new TypeError(`${op}: dtypes differ (${a.dtype} and ${b.dtype}); cast one first`);
  const outShape = broadcastShapes(a.shape, b.shape, op);
  const out = empty(a.backend, outShape, a.dtype);
  a.backend.binary(out, op, a, b, {
    outShape,
    aStrides: broadcastStrides(a.shape, outShape),
    bStrides: broadcastStrides(b.shape, outShape),
  });
  if (active) active.record('binary', [a, b], [out], { op });
  return out;
}

export const add = (a: Tensor, b: Tensor) => binary('add', a, b);
export const sub = (a: Tensor, b: Tensor) => binary('sub', a, b);
export const mul = (a: Tensor, b: Tensor) => binary('mul', a, b);
export const div = (a: Tensor, b: Tensor) => binary('div', a, b);
export const maximum = (a: Tensor, b: Tensor) => binary('max', a, b);
export const minimum = (a: Tensor, b: Tensor) => binary('min', a, b);
/** silu(a)·b rounded once: SwiGLU's gating without a pass for silu(a). */
export const siluMul = (a: Tensor, b: Tensor) => binary('silu_mul', a, b);

/** x·scale + shift. */
export function affine(x: Tensor, scale: number, shift = 0): Tensor {
  x.assertLive('affine');
  requireFloat(x, 'affine');
  const out = empty(x.backend, x.shape, x.dtype);
  x.backend.affine(out, x, scale, shift);
  if (active) active.record('affine', [x], [out], { scale, shift });
  return out;
}

export const scale = (x: Tensor, s: number) => affine(x, s, 0);

// ---- linear algebra ----------------------------------------------------------------------------

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
  bias?: Tensor | null;
  alpha?: number;
  /** 'f32': bf16/f16 operands give an f32 result (f32 accumulation either way); no bias then. */
  outDtype?: 'f32';
}

/**
 * Batched matrix product. a [...batch, m, k] (or [...batch, k, m] with transA), b [...batch, k, n] or [k, n]
 * shared by all batches (or the transposes with transB). Result [...batch, m, n] in a's dtype, or in f32 with
 * `outDtype` (what backward passes take from bf16 operands: the tensor-core product, not widened copies).
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  a.assertLive('matmul');
  b.assertLive('matmul');
  const { transA = false, transB = false, bias = null, alpha = 1, outDtype = a.dtype } = opts;
  const bad = (why: string) =>
    new ShapeError(
      `matmul: ${why} (a ${fmt(a.shape)}${transA ? 'ᵀ' : ''}, b ${fmt(b.shape)}${transB ? 'ᵀ' : ''})`,
    );
  if (a.rank < 2 || b.rank < 2) throw bad('operands need rank ≥ 2');
  if (a.dtype !== b.dtype) throw bad(`dtypes differ (${a.dtype}, ${b.dtype})`);
  if (a.backend !== b.backend) throw bad('operands live on different backends');
  requireFloat(a, 'matmul');
  const m = a.shape[a.rank - (transA ? 1 : 2)];
  const k = a.shape[a.rank - (transA ? 2 : 1)];
  const kb = b.shape[b.rank - (transB ? 1 : 2)];
  const n = b.shape[b.rank - (transB ? 2 : 1)];
  if (k !== kb) throw bad(`inner dimensions ${k} and ${kb} differ`);
  const batchA = a.shape.slice(0, -2);
  const batchB = b.shape.slice(0, -2);
  const bBatched = batchB.length > 0;
  if (bBatched && !sameShape(batchA, batchB)) throw bad('batch dimensions differ');
  if (outDtype !== a.dtype && bias) throw bad(`an ${outDtype} result of ${a.dtype} operands takes no bias`);
  if (bias) {
    bias.assertLive('matmul bias');
    if (bias.size !== n || bias.dtype !== a.dtype)
      throw bad(`bias ${bias.dtype} ${fmt(bias.shape)} does not match n = ${n}`);
  }
  const out = empty(a.backend, [...batchA, m, n], outDtype);
  a.backend.matmul(out, a, b, bias, { batch: numel(batchA), m, n, k, transA, transB, bBatched, alpha });
  if (active) active.record('matmul', [a, b, bias], [out], { transA, transB, alpha });
  return out;
}

/** alpha·(x @ weightᵀ) + bias, with weight [out, in] as stored by PyTorch's nn.Linear. */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null, alpha = 1): Tensor {
  if (weight.rank !== 2 || x.shape[x.rank - 1] !== weight.shape[1])
    throw new ShapeError(
      `linear: input ${fmt(x.shape)} does not match weight ${fmt(weight.shape)} ([out, in])`,
    );
  const lead = x.shape.slice(0, -1);
  const x2 = x.reshape([numel(lead), weight.shape[1]]);
  try {
    const y = matmul(x2, weight, { transB: true, bias, alpha });
    const out = y.reshape([...lead, weight.shape[0]]);
    y.dispose();
    return out;
  } finally {
    x2.dispose();
  }
}

// ---- normalisation -----------------------------------------------------------------------------

export interface RmsNormOptions {
  eps: number;
  /** Gated RMSNorm (Mamba-2): multiply by silu(gate) before (default) or after normalising. */
  gate?: Tensor | null;
  normBeforeGate?: boolean;
  /** Grouped statistics (Nemotron-H): groups of this many channels; default the whole last axis. */
  groupSize?: number;
}

export function rmsNorm(x: Tensor, weight: Tensor | null, opts: RmsNormOptions): Tensor {
  return rmsNormWith(x, weight, opts, null);
}

/**
 * The pre-norm residual step in one pass over memory: `sum` = x + residual (the new residual stream, in x's
 * dtype) and `out` = rmsNorm(sum), equal to `add` then `rmsNorm`.
 */
export function addRmsNorm(
  x: Tensor,
  residual: Tensor,
  weight: Tensor | null,
  opts: RmsNormOptions,
): { sum: Tensor; out: Tensor } {
  return withResidualSum(x, residual, 'addRmsNorm', (r) => rmsNormWith(x, weight, opts, r));
}

function rmsNormWith(
  x: Tensor,
  weight: Tensor | null,
  opts: RmsNormOptions,
  residual: ResidualAdd | null,
): Tensor {
  x.assertLive('rmsNorm');
  requireFloat(x, 'rmsNorm');
  const dim = x.shape[x.rank - 1];
  const groupSize = opts.groupSize ?? dim;
  if (dim % groupSize !== 0) throw new ShapeError(`rmsNorm: group size ${groupSize} does not divide ${dim}`);
  if (weight && weight.size !== dim)
    throw new ShapeError(`rmsNorm: weight ${fmt(weight.shape)} does not match last axis ${dim}`);
  const gate = opts.gate ?? null;
  if (gate && !sameShape(gate.shape, x.shape))
    throw new ShapeError(`rmsNorm: gate ${fmt(gate.shape)} differs from x ${fmt(x.shape)}`);
  const out = empty(x.backend, x.shape, x.dtype);
  x.backend.rmsNorm(
    out,
    x,
    weight,
    gate,
    { rows: x.size / dim, dim, eps: opts.eps, groupSize, normBeforeGate: opts.normBeforeGate ?? false },
    residual,
  );
  if (active)
    active.record(
      'rmsNorm',
      [x, weight, gate, residual?.add ?? null],
      residual ? [out, residual.sum] : [out],
      { eps: opts.eps, groupSize, normBeforeGate: opts.normBeforeGate ?? false },
    );
  return out;
}

export function layerNorm(x: Tensor, weight: Tensor | null, bias: Tensor | null, eps: number): Tensor {
  return layerNormWith(x, weight, bias, eps, null);
}

/** `sum` = x + residual and `out` = layerNorm(sum) in one pass (see addRmsNorm). */
export function addLayerNorm(
  x: Tensor,
  residual: Tensor,
  weight: Tensor | null,
  bias: Tensor | null,
  eps: number,
): { sum: Tensor; out: Tensor } {
  return withResidualSum(x, residual, 'addLayerNorm', (r) => layerNormWith(x, weight, bias, eps, r));
}

function layerNormWith(
  x: Tensor,
  weight: Tensor | null,
  bias: Tensor | null,
  eps: number,
  residual: ResidualAdd | null,
): Tensor {
  x.assertLive('layerNorm');
  requireFloat(x, 'layerNorm');
  const dim = x.shape[x.rank - 1];
  for (const p of [weight, bias])
    if (p && p.size !== dim)
      throw new ShapeError(`layerNorm: parameter ${fmt(p.shape)} does not match last axis ${dim}`);
  const out = empty(x.backend, x.shape, x.dtype);
  x.backend.layerNorm(
    out,
    x,
    weight,
    bias,
    { rows: x.size / dim, dim, eps, groupSize: dim, normBeforeGate: false },
    residual,
  );
  if (active)
    active.record(
      'layerNorm',
      [x, weight, bias, residual?.add ?? null],
      residual ? [out, residual.sum] : [out],
      {
        eps,
      },
    );
  return out;
}

/** Checks x and the residual (same shape, dtype and backend), allocates their sum and runs the fused norm. */
function withResidualSum(
  x: Tensor,
  residual: Tensor,
  op: string,
  norm: (r: ResidualAdd) => Tensor,
): { sum: Tensor; out: Tensor } {
  x.assertLive(op);
  residual.assertLive(op);
  if (!sameShape(residual.shape, x.shape) || residual.dtype !== x.dtype)
    throw new ShapeError(
      `${op}: residual ${fmt(residual.shape)} ${residual.dtype} differs from x ${fmt(x.shape)} ${x.dtype}`,
    );
  if (residual.backend !== x.backend)
    throw new ShapeError(`${op}: x and the residual live on different backends`);
  const sum = empty(x.backend, x.shape, x.dtype);
  try {
    return { sum, out: norm({ add: residual, sum }) };
  } catch (e) {
    sum.dispose();
    throw e;
  }
}

/** Softmax over the last axis. */
export function softmax(x: Tensor): Tensor {
  x.assertLive('softmax');
  requireFloat(x, 'softmax');
  const dim = x.shape[x.rank - 1];
  const out = empty(x.backend, x.shape, x.dtype);
  x.backend.softmax(out, x, x.size / (dim || 1), dim);
  if (active) active.record('softmax', [x], [out], {});
  return out;
}

// ---- rotary ------------------------------------------------------------------------------------

/**
 * Rotate-half rotary embedding: x [batch, seq, heads, headDim] (or [seq, heads, headDim]); cos/sin f32
 * [seq, rotDim] or [batch, seq, rotDim]. The tables encode the variant (1-D, M-RoPE sections, 2-D vision).
 */
/**
 * x rotated by the cos/sin tables. `out` (x's shape and dtype; x itself for in place) receives the result
 * instead of a new tensor: a decode step rotates q‖k inside the row that holds v after them, so k‖v stay one
 * block (not while autograd records).
 */
export function rotary(x: Tensor, cos: Tensor, sin: Tensor, opts: { out?: Tensor } = {}): Tensor {
  x.assertLive('rotary');
  const x4 = x.rank === 3 ? [1, ...x.shape] : [...x.shape];
  if (x4.length !== 4)
    throw new ShapeError(`rotary: x must be [batch, seq, heads, headDim], got ${fmt(x.shape)}`);
  const [batch, seq, heads, headDim] = x4;
  if (cos.dtype !== 'f32' || sin.dtype !== 'f32' || !sameShape(cos.shape, sin.shape))
    throw new TypeError(
      `rotary: cos/sin must be f32 tables of one shape, got ${cos.dtype} ${fmt(cos.shape)} and ${sin.dtype} ${fmt(sin.shape)}`,
    );
  const rotaryDim = cos.shape[cos.rank - 1];
  const tSeq = cos.shape[cos.rank - 2];
  const tBatch = cos.rank === 3 ? cos.shape[0] : 1;
  if (tSeq !== seq || (tBatch !== 1 && tBatch !== batch) || rotaryDim > headDim || rotaryDim % 2)
    throw new ShapeError(`rotary: table ${fmt(cos.shape)} does not fit x ${fmt(x.shape)}`);
  if (opts.out) {
    opts.out.assertLive('rotary');
    if (!sameShape(opts.out.shape, x.shape) || opts.out.dtype !== x.dtype)
      throw new ShapeError(
        `rotary: out ${opts.out.dtype} ${fmt(opts.out.shape)} must be x's (${x.dtype} ${fmt(x.shape)})`,
      );
    if (active) throw new Error('rotary: an out tensor while autograd records (the tape would lose x)');
  }
  const out = opts.out ?? empty(x.backend, x.shape, x.dtype);
  x.backend.rotary(out, x, cos, sin, { batch, seq, heads, headDim, rotaryDim, tableShared: tBatch === 1 });
  if (opts.out) return out;
  if (active) active.record('rotary', [x, cos, sin], [out], {});
  return out;
}

/**
 * The cos/sin tables [seq, 2·half] of a rotary embedding, computed on `backend` from the positions only:
 * frequency j rotates by position row `rowOf[j]` (one row for 1-D RoPE, three for M-RoPE, two for 2-D
 * vision RoPE); see Backend.ropeTable.
 */
export function ropeTable(
  backend: Backend,
  positions: readonly ArrayLike<number>[],
  invFreq: Float32Array,
  rowOf: Int32Array,
): { cos: Tensor; sin: Tensor } {
  const seq = positions[0]?.length ?? 0;
  if (!positions.length || positions.some((r) => r.length !== seq))
    throw new ShapeError(
      `ropeTable: position rows must have one length, got ${positions.map((r) => r.length).join(', ')}`,
    );
  if (rowOf.length !== invFreq.length || rowOf.some((r) => r < 0 || r >= positions.length))
    throw new RangeError(
      `ropeTable: rowOf must pick one of the ${positions.length} position rows per frequency`,
    );
  const flat = new Float32Array(positions.length * seq);
  for (const [i, r] of positions.entries()) flat.set(r, i * seq);
  const dims = [seq, 2 * invFreq.length];
  const cos = empty(backend, dims, 'f32');
  const sin = empty(backend, dims, 'f32');
  using p = tensor(backend, flat, [positions.length, seq], 'f32');
  using f = tensor(backend, invFreq, [invFreq.length], 'f32');
  using r = tensor(backend, rowOf, [rowOf.length], 'i32');
  backend.ropeTable(cos, sin, p, f, r);
  return { cos, sin };
}

// ---- attention ---------------------------------------------------------------------------------

export interface AttentionOptions {
  causal?: boolean;
  /** Absolute position of the first query (length of the cached prefix) for causal masking. */
  queryOffset?: number;
  /** Only the first kvLength keys are valid (pre-allocated caches). */
  kvLength?: number;
  scale?: number;
  /** Cumulative segment boundaries [0, …, seq] for block-diagonal attention (batch 1). */
  segments?: Int32Array | readonly number[] | null;
  /** Additive f32 mask [batch or 1, sq, kvLength]. */
  mask?: Tensor | null;
  /** Also return the attention probabilities [batch, hq, sq, kvLength] (f32). */
  returnWeights?: boolean;
}

/** Validates attention's operands and options (as `what`) and returns the kernel descriptor. */
export function attentionDesc(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: AttentionOptions,
  what: string,
): AttentionDesc {
  for (const t of [q, k, v]) t.assertLive(what);
  const r4 = (t: Tensor) => (t.rank === 3 ? [1, ...t.shape] : [...t.shape]);
  const [qs, ks, vs] = [r4(q), r4(k), r4(v)];
  const bad = (why: string) =>
    new ShapeError(`${what}: ${why} (q ${fmt(q.shape)}, k ${fmt(k.shape)}, v ${fmt(v.shape)})`);
  if (qs.length !== 4 || ks.length !== 4 || vs.length !== 4)
    throw bad('expected [batch, seq, heads, dim] tensors');
  const [batch, sq, hq, d] = qs;
  const [kb, skv, hkv, kd] = ks;
  if (kb !== batch || vs[0] !== batch || vs[1] !== skv || vs[2] !== hkv) throw bad('k and v do not match');
  if (kd !== d) throw bad(`head dims differ (${d}, ${kd})`);
  if (hkv === 0 || hq % hkv !== 0) throw bad(`${hq} query heads are not a multiple of ${hkv} kv heads`);
  if (q.dtype !== k.dtype || q.dtype !== v.dtype) throw bad('dtypes differ');
  const kvLength = opts.kvLength ?? skv;
  if (kvLength < 0 || kvLength > skv) throw bad(`kvLength ${kvLength} exceeds ${skv} keys`);
  const queryOffset = opts.queryOffset ?? 0;
  const causal = opts.causal ?? false;
  if (causal && queryOffset + sq > kvLength)
    throw bad(`causal queries at ${queryOffset}..${queryOffset + sq} exceed ${kvLength} keys`);
  let segments: Int32Array | null = null;
  if (opts.segments) {
    segments = Int32Array.from(opts.segments);
    const ok =
      batch === 1 &&
      sq === kvLength &&
      segments[0] === 0 &&
      segments[segments.length - 1] === sq &&
      segments.every((s, i) => i === 0 || s >= segments![i - 1]);
    if (!ok) throw bad(`segments ${fmt([...segments])} must rise from 0 to the sequence length with batch 1`);
  }
  const mask = opts.mask ?? null;
  if (mask) {
    const ms = mask.rank === 2 ? [1, ...mask.shape] : mask.shape;
    if (
      mask.dtype !== 'f32' ||
      ms.length !== 3 ||
      (ms[0] !== 1 && ms[0] !== batch) ||
      ms[1] !== sq ||
      ms[2] !== kvLength
    )
      throw bad(`mask ${mask.dtype} ${fmt(mask.shape)} must be f32 [batch|1, ${sq}, ${kvLength}]`);
  }
  return {
    batch,
    sq,
    skv,
    kvLength,
    hq,
    hkv,
    d,
    dv: vs[3],
    scale: opts.scale ?? 1 / Math.sqrt(d),
    causal,
    queryOffset,
    segments,
  };
}

/**
 * Scaled dot-product attention with GQA. q [batch, sq, hq, d], k [batch, skv, hkv, d], v [batch, skv, hkv, dv]
 * (rank-3 inputs mean batch 1). Returns [batch, sq, hq, dv] (rank follows q).
 */
export function attention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: AttentionOptions = {},
): { out: Tensor; weights: Tensor | null } {
  const desc = attentionDesc(q, k, v, opts, 'attention');
  const { batch, sq, hq, kvLength, dv } = desc;
  const mask = opts.mask ?? null;
  const outShape = q.rank === 3 ? [sq, hq, dv] : [batch, sq, hq, dv];
  const out = empty(q.backend, outShape, q.dtype);
  const weights = opts.returnWeights ? empty(q.backend, [batch, hq, sq, kvLength], 'f32') : null;
  q.backend.attention(out, q, k, v, mask, weights, desc);
  if (active) active.record('attention', [q, k, v, mask], weights ? [out, weights] : [out], desc);
  return { out, weights };
}

/**
 * Where one query position looks (the relevance probe, nn/attention-probe.ts): its softmax mass per key over
 * the first kvLength keys of k, summed over the query heads, for keys [from, to) → f32 [to − from]. q
 * [1, 1, hq, d] (or [1, hq, d]), k [1, skv, hkv, d]. Backends with a kernel for it (CUDA) skip the
 * attention output and spread the keys over the device; the others take the attention op's weights.
 */
export function attentionMass(
  q: Tensor,
  k: Tensor,
  opts: { kvLength?: number; from?: number; to?: number; scale?: number } = {},
): Tensor {
  q.assertLive('attentionMass');
  k.assertLive('attentionMass');
  const hq = q.shape[q.rank - 2];
  const d = q.shape[q.rank - 1];
  const [kb, skv, hkv, kd] = k.shape;
  const kvLength = opts.kvLength ?? skv;
  const from = opts.from ?? 0;
  const to = opts.to ?? kvLength;
  if (q.size !== hq * d || k.rank !== 4 || kb !== 1 || kd !== d || q.dtype !== k.dtype || hq % hkv)
    throw new ShapeError(
      `attentionMass: q ${q.dtype} ${fmt(q.shape)} must be one position [1, 1, heads, ${kd}] of k's dtype and k ${k.dtype} ${fmt(k.shape)} [1, keys, kv heads, dim] with heads a multiple of kv heads`,
    );
  if (
    !(
      Number.isInteger(kvLength) &&
      0 < kvLength &&
      kvLength <= skv &&
      0 <= from &&
      from < to &&
      to <= kvLength
    )
  )
    throw new ShapeError(`attentionMass: keys [${from}, ${to}) of ${kvLength} valid (${skv} in k)`);
  const scale = opts.scale ?? 1 / Math.sqrt(d);
  const b = q.backend;
  if (b.attentionMass) {
    const desc: AttentionMassDesc = { skv, kvLength, hq, hkv, d, from, to, scale };
    const out = empty(b, [to - from], 'f32');
    using scores = empty(b, [hq, kvLength], 'f32');
    using stats = empty(b, [hq, 2], 'f32');
    b.attentionMass(out, scores, stats, q, k, desc);
    return out;
  }
  using row = q.reshape([1, 1, hq, d]);
  const { out, weights } = attention(row, k, k, { kvLength, scale, returnWeights: true });
  out.dispose();
  using w = weights!;
  using perHead = w.reshape([hq, kvLength]);
  using span = slice(perHead, 1, from, to);
  return sum(span, 0);
}

/**
 * One query row's keys/values: the first `length` rows of k/v [1, skv, hkv, d], after the first
 * `prefix.length` rows of the prefix's k/v when given (a cache continuing a shared prefix without copying it).
 */
export interface RowKV {
  k: Tensor;
  v: Tensor;
  length: number;
  prefix?: { k: Tensor; v: Tensor; length: number } | null;
}

/**
 * Decode attention of `rows` sequences at once: query row i (q [rows, hq, d]) attends to its own keys (the
 * prefix's, then kvs[i]'s); a single query sees its whole history, so causal masking is moot. Returns
 * [rows, hq, dv]. Backends without a batched kernel run one attention per row on views (joining a prefix
 * and its row's keys first).
 */
export function attentionRows(q: Tensor, kvs: readonly RowKV[], opts: { scale?: number } = {}): Tensor {
  q.assertLive('attentionRows');
  const [rows, hq, d] = q.shape;
  if (q.rank !== 3 || rows !== kvs.length)
    throw new ShapeError(`attentionRows: q ${fmt(q.shape)} must be [${kvs.length}, heads, dim]`);
  if (!rows) throw new ShapeError('attentionRows: no rows');
  const [, , hkv, dv] = kvs[0].v.shape;
  const fits = (k: Tensor, v: Tensor, length: number, min: number) => {
    k.assertLive('attentionRows');
    v.assertLive('attentionRows');
    return (
      k.rank === 4 &&
      k.shape[0] === 1 &&
      sameShape(k.shape.slice(2), [hkv, d]) &&
      sameShape(v.shape, [1, k.shape[1], hkv, dv]) &&
      k.dtype === q.dtype &&
      v.dtype === q.dtype &&
      Number.isInteger(length) &&
      length >= min &&
      length <= k.shape[1]
    );
  };
  for (const [i, { k, v, length, prefix }] of kvs.entries())
    if (!fits(k, v, length, prefix ? 0 : 1) || (prefix && !fits(prefix.k, prefix.v, prefix.length, 1)))
      throw new ShapeError(
        `attentionRows: row ${i}'s k ${k.dtype} ${fmt(k.shape)} / v ${fmt(v.shape)} (length ${length}${prefix ? `, prefix ${prefix.length}` : ''}) do not fit q ${q.dtype} ${fmt(q.shape)}`,
      );
  if (hkv === 0 || hq % hkv) throw new ShapeError(`attentionRows: ${hq} heads, ${hkv} kv heads`);
  const scale = opts.scale ?? 1 / Math.sqrt(d);
  const out = empty(q.backend, [rows, hq, dv], q.dtype);
  const b = q.backend;
  if (b.attentionRows) {
    b.attentionRows(out, q, kvs, { rows, hq, hkv, d, dv, scale });
    if (active) active.record('attentionRows', [q, ...kvs.flatMap((r) => [r.k, r.v])], [out], {});
    return out;
  }
  for (const [i, r] of kvs.entries()) {
    const joined = r.prefix
      ? [r.prefix.k, r.prefix.v].map((pre, j) =>
          concat([slice(pre, 1, 0, r.prefix!.length), slice(j ? r.v : r.k, 1, 0, r.length)], 1),
        )
      : null;
    const [k, v] = joined ?? [r.k, r.v];
    const length = (r.prefix?.length ?? 0) + r.length;
    using qi = q.narrow(i, i + 1);
    using oi = out.narrow(i, i + 1);
    b.attention(oi, qi, k, v, null, null, {
      batch: 1,
      sq: 1,
      skv: k.shape[1],
      kvLength: length,
      hq,
      hkv,
      d,
      dv,
      scale,
      causal: false,
      queryOffset: 0,
      segments: null,
    });
    for (const t of joined ?? []) t.dispose();
  }
  if (active) active.record('attentionRows', [q, ...kvs.flatMap((r) => [r.k, r.v])], [out], {});
  return out;
}

/**
 * Row i of x [n, ...] into dsts[i].dst, a tensor of rows of the same size (e.g. a K/V buffer [1, capacity,
 * heads, dim]), at row dsts[i].at: the new keys of n sequences appended to their caches in one call.
 */
export function scatterRows(x: Tensor, dsts: readonly { dst: Tensor; at: number }[]): void {
  x.assertLive('scatterRows');
  const n = x.shape[0];
  if (x.rank < 2 || n !== dsts.length)
    throw new ShapeError(`scatterRows: x ${fmt(x.shape)} must have ${dsts.length} rows`);
  const row = x.size / n;
  for (const [i, { dst, at }] of dsts.entries()) {
    dst.assertLive('scatterRows');
    if (
      dst.dtype !== x.dtype ||
      dst.size % row ||
      !Number.isInteger(at) ||
      at < 0 ||
      (at + 1) * row > dst.size
    )
      throw new ShapeError(
        `scatterRows: row ${i} does not fit ${dst.dtype} ${fmt(dst.shape)} at row ${at} (rows of ${row} ${x.dtype})`,
      );
  }
  const b = x.backend;
  if (b.scatterRows) b.scatterRows(x, dsts, row);
  else
    for (const [i, { dst, at }] of dsts.entries()) {
      const xi = new Tensor(x.buffer.retain(), x.dtype, [1, ...x.shape.slice(1)], x.offset + i * row);
      b.writeSlice(dst, xi, 1, dst.size / row, row, at);
      xi.dispose();
    }
  if (active) for (const { dst } of dsts) active.recordInPlace('scatterRows', dst, [x], {});
}

// ---- state-space ops ---------------------------------------------------------------------------

/**
 * Causal depthwise conv1d over x [batch, len, channels] (channels last) with weight [channels, width]
 * (PyTorch's [channels, 1, width] reshaped). `state` [batch, width−1, channels] carries the previous inputs.
 * Returns y and the state after x.
 */
export function conv1dCausal(
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null,
  opts: { state?: Tensor | null; silu?: boolean } = {},
): { y: Tensor; state: Tensor } {
  x.assertLive('conv1dCausal');
  const w = weight.rank === 3 ? weight.reshape([weight.shape[0], weight.shape[2]]) : weight;
  try {
    if (x.rank !== 3 || w.rank !== 2 || w.shape[0] !== x.shape[2])
      throw new ShapeError(
        `conv1dCausal: x ${fmt(x.shape)} must be [batch, len, channels] and weight ${fmt(weight.shape)} [channels, width]`,
      );
    const [batch, len, channels] = x.shape;
    const width = w.shape[1];
    const state = opts.state ?? null;
    if (state && !sameShape(state.shape, [batch, width - 1, channels]))
      throw new ShapeError(
        `conv1dCausal: state ${fmt(state.shape)} must be [${batch}, ${width - 1}, ${channels}]`,
      );
    if (bias && bias.size !== channels)
      throw new ShapeError(`conv1dCausal: bias ${fmt(bias.shape)} must have ${channels} values`);
    const y = empty(x.backend, x.shape, x.dtype);
    const stateOut = empty(x.backend, [batch, width - 1, channels], x.dtype);
    x.backend.conv1d(y, stateOut, x, w, bias, state, {
      batch,
      len,
      channels,
      width,
      silu: opts.silu ?? false,
    });
    if (active)
      active.record('conv1dCausal', [x, w, bias, state], [y, stateOut], { silu: opts.silu ?? false });
    return { y, state: stateOut };
  } finally {
    if (w !== weight) w.dispose();
  }
}

export interface SsdInputs {
  /** [batch, len, heads, headDim] */
  x: Tensor;
  /** [batch, len, heads], f32, after softplus (and any clamp). */
  dt: Tensor;
  /** [heads], f32, negative (−exp(A_log)). */
  A: Tensor;
  /** [batch, len, groups, dState] */
  B: Tensor;
  /** [batch, len, groups, dState] */
  C: Tensor;
  /** [heads] skip connection, or null. */
  D?: Tensor | null;
  /** [batch, heads, headDim, dState] f32 initial state, or null for zeros. */
  state?: Tensor | null;
}

/** Validates the SSD inputs (as `what`) and returns the kernel descriptor. */
export function ssdDesc(i: SsdInputs, len: number, chunkSize: number, what: string): SsdDesc {
  const { x, dt, A, B, C } = i;
  const [batch, , heads, headDim] = x.shape;
  const groups = B.shape[B.rank - 2];
  const dState = B.shape[B.rank - 1];
  const bad = (why: string) =>
    new ShapeError(
      `${what}: ${why} (x ${fmt(x.shape)}, dt ${fmt(dt.shape)}, A ${fmt(A.shape)}, B ${fmt(B.shape)}, C ${fmt(C.shape)})`,
    );
  if (dt.dtype !== 'f32' || A.dtype !== 'f32') throw bad('dt and A must be f32');
  if (A.size !== heads) throw bad(`A needs ${heads} values`);
  if (groups === 0 || heads % groups !== 0)
    throw bad(`${heads} heads are not a multiple of ${groups} groups`);
  if (!sameShape(B.shape, C.shape)) throw bad('B and C differ');
  if (i.D && i.D.size !== heads) throw bad(`D needs ${heads} values`);
  if (i.state && (i.state.dtype !== 'f32' || !sameShape(i.state.shape, [batch, heads, headDim, dState])))
    throw bad(
      `state must be f32 [${batch}, ${heads}, ${headDim}, ${dState}], got ${i.state.dtype} ${fmt(i.state.shape)}`,
    );
  if (!Number.isInteger(chunkSize) || chunkSize < 1)
    throw bad(`chunk size ${chunkSize} must be a positive integer`);
  return { batch, len, heads, headDim, groups, dState, chunkSize };
}

/** Mamba-2 SSD over a whole sequence (chunked algorithm). Returns y [batch, len, heads, headDim] and the final f32 state. */
export function ssdScan(i: SsdInputs, chunkSize = 256): { y: Tensor; state: Tensor } {
  for (const t of [i.x, i.dt, i.A, i.B, i.C]) t.assertLive('ssdScan');
  if (i.x.rank !== 4 || i.dt.rank !== 3 || i.B.rank !== 4)
    throw new ShapeError(
      `ssdScan: x must be [batch, len, heads, headDim], dt [batch, len, heads], B/C [batch, len, groups, dState]`,
    );
  const [batch, len, heads] = i.x.shape;
  if (!sameShape(i.dt.shape, [batch, len, heads]) || i.B.shape[0] !== batch || i.B.shape[1] !== len)
    throw new ShapeError(
      `ssdScan: x ${fmt(i.x.shape)}, dt ${fmt(i.dt.shape)} and B ${fmt(i.B.shape)} disagree on batch/len/heads`,
    );
  const desc = ssdDesc(i, len, chunkSize, 'ssdScan');
  const y = empty(i.x.backend, i.x.shape, i.x.dtype);
  const state = empty(i.x.backend, [batch, heads, desc.headDim, desc.dState], 'f32');
  i.x.backend.ssdScan(y, state, i.x, i.dt, i.A, i.B, i.C, i.D ?? null, i.state ?? null, desc);
  if (active)
    active.record('ssdScan', [i.x, i.dt, i.A, i.B, i.C, i.D ?? null, i.state ?? null], [y, state], {
      chunkSize,
    });
  return { y, state };
}

/**
 * One recurrent step: x [batch, heads, headDim], dt [batch, heads], B/C [batch, groups, dState]; updates
 * `state` [batch, heads, headDim, dState] in place and returns y [batch, heads, headDim].
 */
export function ssmStep(i: SsdInputs & { state: Tensor }): Tensor {
  for (const t of [i.x, i.dt, i.A, i.B, i.C, i.state]) t.assertLive('ssmStep');
  if (i.x.rank !== 3 || i.dt.rank !== 2 || i.B.rank !== 3)
    throw new ShapeError(
      'ssmStep: x must be [batch, heads, headDim], dt [batch, heads], B/C [batch, groups, dState]',
    );
  const x4 = { ...i, x: i.x.reshape([i.x.shape[0], 1, i.x.shape[1], i.x.shape[2]]) };
  try {
    const desc = ssdDesc(x4, 1, 1, 'ssmStep');
    const y = empty(i.x.backend, i.x.shape, i.x.dtype);
    i.x.backend.ssmStep(y, i.state, i.x, i.dt, i.A, i.B, i.C, i.D ?? null, desc);
    if (active) {
      const inputs = [i.x, i.dt, i.A, i.B, i.C, i.D ?? null];
      active.recordInPlace('ssmStep', i.state, inputs, {});
      active.record('ssmStep', inputs, [y], {});
    }
    return y;
  } finally {
    x4.x.dispose();
  }
}

/** Whether `backend` runs the batched Mamba-2 decode step in one call (`mambaStepRows`). */
export const hasMambaStepRows = (backend: Backend): boolean => backend.mambaStepRows !== undefined;

export interface MambaStepRowsInputs {
  /** [rows, dInner], [rows, 2·groups·dState], [rows, heads] (raw, before dt_bias): in_proj's parts. */
  x: Tensor;
  bc: Tensor;
  dt: Tensor;
  /** conv1d weight [convDim, 1 or absent, width] and bias. */
  conv: { weight: Tensor; bias: Tensor | null };
  /** f32 [heads]. */
  dtBias: Tensor;
  A: Tensor;
  D: Tensor | null;
  dtLimit: readonly [number, number];
  headDim: number;
  groups: number;
  /** Each sequence's state, advanced in place: conv [1, width−1, convDim], ssm [1, heads, headDim, dState] f32. */
  states: readonly { conv: Tensor; ssm: Tensor }[];
}

/** One Mamba-2 decode step of several sequences (backends with `mambaStepRows`); y [rows, dInner] before the gate. */
export function mambaStepRows(i: MambaStepRowsInputs): Tensor {
  const b = i.x.backend;
  if (!b.mambaStepRows) throw new Error(`mambaStepRows: the ${b.name} backend has no batched Mamba step`);
  const [rows, dInner] = i.x.shape;
  const heads = i.dt.shape[1];
  const dState = i.bc.shape[1] / (2 * i.groups);
  const convDim = dInner + 2 * i.groups * dState;
  const width = i.conv.weight.shape[i.conv.weight.rank - 1];
  const ok =
    i.x.rank === 2 &&
    sameShape(i.bc.shape, [rows, 2 * i.groups * dState]) &&
    sameShape(i.dt.shape, [rows, heads]) &&
    Number.isInteger(dState) &&
    heads * i.headDim === dInner &&
    i.conv.weight.size === convDim * width &&
    i.dtBias.dtype === 'f32' &&
    i.A.dtype === 'f32' &&
    i.states.length === rows &&
    i.states.every(
      (s) =>
        s.conv.dtype === i.x.dtype &&
        sameShape(s.conv.shape, [1, width - 1, convDim]) &&
        s.ssm.dtype === 'f32' &&
        sameShape(s.ssm.shape, [1, heads, i.headDim, dState]),
    );
  if (!ok)
    throw new ShapeError(
      `mambaStepRows: x ${fmt(i.x.shape)}, bc ${fmt(i.bc.shape)}, dt ${fmt(i.dt.shape)}, conv weight ${fmt(i.conv.weight.shape)} and ${i.states.length} states disagree`,
    );
  const y = empty(b, [rows, dInner], i.x.dtype);
  b.mambaStepRows(y, i.x, i.bc, i.dt, i.conv, i.dtBias, i.A, i.D, i.states, {
    rows,
    dInner,
    groups: i.groups,
    dState,
    heads,
    headDim: i.headDim,
    width,
    dtMin: i.dtLimit[0],
    dtMax: i.dtLimit[1],
  });
  if (active) {
    const inputs = [i.x, i.bc, i.dt, i.conv.weight, i.conv.bias, i.dtBias, i.A, i.D];
    for (const s of i.states)
      for (const t of [s.conv, s.ssm]) active.recordInPlace('mambaStepRows', t, inputs, {});
    active.record('mambaStepRows', inputs, [y], {});
  }
  return y;
}

// ---- lookup, reductions, sampling --------------------------------------------------------------

/** Rows of `table` [vocab, dim] at `ids` (i32, any shape) → [...ids.shape, dim]. */
export function embedding(table: Tensor, ids: Tensor): Tensor {
  table.assertLive('embedding');
  ids.assertLive('embedding');
  if (ids.dtype !== 'i32') throw new TypeError(`embedding: ids must be i32, got ${ids.dtype}`);
  if (table.rank !== 2)
    throw new ShapeError(`embedding: table must be [vocab, dim], got ${fmt(table.shape)}`);
  const out = empty(table.backend, [...ids.shape, table.shape[1]], table.dtype);
  try {
    table.backend.embedding(out, table, ids);
  } catch (e) {
    out.dispose(); // an out-of-range id is found by the kernel: do not leak the output
    throw e;
  }
  if (active) active.record('embedding', [table, ids], [out], {});
  return out;
}

/**
 * Sums (or averages) of bags of `table` [n, dim] rows (torch's embedding_bag): bag r is the rows ids[j] (i32
 * [nnz]) for j in [offsets[r], offsets[r+1]) (i32 [bags + 1], non-decreasing from 0 to nnz) → [bags, dim] in
 * table's dtype, accumulated in f32 in bag order.
 */
export function embeddingBag(
  table: Tensor,
  ids: Tensor,
  offsets: Tensor,
  mode: 'sum' | 'mean' = 'sum',
): Tensor {
  table.assertLive('embeddingBag');
  ids.assertLive('embeddingBag');
  offsets.assertLive('embeddingBag');
  if (ids.dtype !== 'i32' || offsets.dtype !== 'i32')
    throw new TypeError(`embeddingBag: ids and offsets must be i32, got ${ids.dtype} and ${offsets.dtype}`);
  if (table.rank !== 2)
    throw new ShapeError(`embeddingBag: table must be [rows, dim], got ${fmt(table.shape)}`);
  if (ids.rank !== 1 || offsets.rank !== 1 || offsets.size < 1)
    throw new ShapeError(
      `embeddingBag: ids [nnz] and offsets [bags + 1] must be vectors, got ${fmt(ids.shape)} and ${fmt(offsets.shape)}`,
    );
  requireFloat(table, 'embeddingBag');
  const out = empty(table.backend, [offsets.size - 1, table.shape[1]], table.dtype);
  try {
    table.backend.embeddingBag(out, table, ids, offsets, mode === 'mean');
  } catch (e) {
    out.dispose();
    throw e;
  }
  if (active) active.record('embeddingBag', [table, ids, offsets], [out], { mode });
  return out;
}

export function reduce(op: 'sum' | 'mean' | 'max', x: Tensor, axis = -1, keepDims = false): Tensor {
  x.assertLive(op);
  const a = axisOf(axis, x.rank, op);
  const [outer, dim, inner] = split3(x.shape, a);
  const shape = [...x.shape];
  if (keepDims) shape[a] = 1;
  else shape.splice(a, 1);
  const out = empty(x.backend, shape, x.dtype);
  x.backend.reduce(out, op, x, outer, dim, inner);
  if (active) active.record('reduce', [x], [out], { op, axis: a, keepDims });
  return out;
}

export const sum = (x: Tensor, axis = -1, keepDims = false) => reduce('sum', x, axis, keepDims);
export const mean = (x: Tensor, axis = -1, keepDims = false) => reduce('mean', x, axis, keepDims);

/** Index of the maximum over the last axis (i32). */
export function argmax(x: Tensor): Tensor {
  x.assertLive('argmax');
  const dim = x.shape[x.rank - 1];
  const out = empty(x.backend, x.shape.slice(0, -1), 'i32');
  x.backend.argmax(out, x, x.size / (dim || 1), dim);
  return out;
}

export interface SampleOptions {
  temperature?: number;
  topK?: number;
  topP?: number;
  repetitionPenalty?: number;
  /** Ids generated or prompted so far, per row ([rows, n] i32, −1 = padding). */
  previous?: Tensor | null;
}

/** Samples one id per row of logits [rows, vocab] with the given uniform draws (one per row). */
export function sample(logits: Tensor, uniforms: Float32Array, opts: SampleOptions = {}): Tensor {
  logits.assertLive('sample');
  opts.previous?.assertLive('sample');
  const vocab = logits.shape[logits.rank - 1];
  const rows = logits.size / vocab;
  if (uniforms.length !== rows) throw new ShapeError(`sample: ${uniforms.length} uniforms for ${rows} rows`);
  const previous = opts.previous ?? null;
  if (previous && (previous.dtype !== 'i32' || previous.shape[0] !== rows))
    throw new ShapeError(
      `sample: previous ids must be i32 [${rows}, n], got ${previous.dtype} ${fmt(previous.shape)}`,
    );
  const out = empty(logits.backend, [rows], 'i32');
  logits.backend.sample(out, logits, uniforms, previous, {
    rows,
    vocab,
    temperature: opts.temperature ?? 1,
    topK: opts.topK ?? 0,
    topP: opts.topP ?? 1,
    repetitionPenalty: opts.repetitionPenalty ?? 1,
  });
  return out;
}
