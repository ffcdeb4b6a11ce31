/**
 * Backward kernels the autograd cannot compose cheaply from forward ops, plus the fused losses and the
 * optimizer step. Like ops.ts: each function validates its arguments, allocates its outputs on the inputs'
 * backend and calls the backend kernel (an optional Backend method; a backend without it raises a clear error).
 *
 * Dtypes: the gradient of an activation has that activation's dtype; the gradient of a parameter (a weight,
 * bias, A, D, an embedding table) is f32, ready to accumulate into an f32 master gradient. Kernels accumulate
 * in f32 (DESIGN §4). Every function takes the saved forward inputs (and outputs where named) and returns the
 * gradients of all differentiable inputs.
 */
import type { AdamWSlot, Backend, SsdGrads } from './backend.js';
import { isFloat } from './dtype.js';
import {
  type AttentionOptions,
  attentionDesc,
  empty,
  type RmsNormOptions,
  type SsdInputs,
  ssdDesc,
} from './ops.js';
import { fmt, ShapeError, sameShape } from './shape.js';
import type { Tensor } from './tensor.js';

type Kernel = keyof Backend;

/** The backend's optional kernel `name`, or an error saying which backend lacks it. */
function kernelOf<K extends Kernel>(b: Backend, name: K): NonNullable<Backend[K]> {
  const k = b[name];
  if (!k) throw new Error(`${String(name)}: the ${b.name} backend has no ${String(name)} kernel`);
  return (k as (...args: never[]) => unknown).bind(b) as NonNullable<Backend[K]>;
}

function checkGrad(dy: Tensor, like: Tensor, what: string, name = 'output'): void {
  dy.assertLive(what);
  if (!sameShape(dy.shape, like.shape) || dy.dtype !== like.dtype || dy.backend !== like.backend)
    throw new ShapeError(
      `${what}: the gradient ${dy.dtype} ${fmt(dy.shape)} must match the ${name} ${like.dtype} ${fmt(like.shape)}`,
    );
}

/** Allocates tensors and frees them all if `fill` throws (so a failing kernel leaks nothing). */
function allocating<T>(outs: (Tensor | null)[], fill: () => T): T {
  try {
    return fill();
  } catch (e) {
    for (const t of outs) t?.dispose();
    throw e;
  }
}

// ---- SSD scan ------------------------------------------------------------------------------------

/**
 * Gradients of ops.ssdScan(i, chunkSize) given dy (y's shape and dtype) and optionally dStateOut (f32, the
 * gradient of the returned final state).
 */
export function ssdScanBackward(
  i: SsdInputs,
  dy: Tensor,
  dStateOut: Tensor | null = null,
  chunkSize = 256,
): SsdGrads {
  const what = 'ssdScanBackward';
  for (const t of [i.x, i.dt, i.A, i.B, i.C]) t.assertLive(what);
  if (i.x.rank !== 4 || i.dt.rank !== 3 || i.B.rank !== 4)
    throw new ShapeError(
      `${what}: x must be [batch, len, heads, headDim], dt [batch, len, heads], B/C [batch, len, groups, dState]`,
    );
  const [batch, len, heads, headDim] = i.x.shape;
  if (!sameShape(i.dt.shape, [batch, len, heads]) || i.B.shape[0] !== batch || i.B.shape[1] !== len)
    throw new ShapeError(
      `${what}: x ${fmt(i.x.shape)}, dt ${fmt(i.dt.shape)} and B ${fmt(i.B.shape)} disagree on batch/len/heads`,
    );
  if (i.B.dtype !== i.C.dtype)
    throw new ShapeError(`${what}: B (${i.B.dtype}) and C (${i.C.dtype}) must share a dtype`);
  const desc = ssdDesc(i, len, chunkSize, what);
  checkGrad(dy, i.x, what, 'output y (x)');
  const stateShape = [batch, heads, headDim, desc.dState];
  if (dStateOut && (dStateOut.dtype !== 'f32' || !sameShape(dStateOut.shape, stateShape)))
    throw new ShapeError(
      `${what}: dStateOut must be f32 ${fmt(stateShape)}, got ${dStateOut.dtype} ${fmt(dStateOut.shape)}`,
    );
  const b = i.x.backend;
  const kernel = kernelOf(b, 'ssdScanBackward');
  const g: SsdGrads = {
    dx: empty(b, i.x.shape, i.x.dtype),
    ddt: empty(b, i.dt.shape, 'f32'),
    dA: empty(b, i.A.shape, 'f32'),
    dB: empty(b, i.B.shape, i.B.dtype),
    dC: empty(b, i.C.shape, i.C.dtype),
    dD: i.D ? empty(b, i.D.shape, 'f32') : null,
    dState: i.state ? empty(b, stateShape, 'f32') : null,
  };
  return allocating(Object.values(g), () => {
    kernel(
      g,
      dy,
      dStateOut,
      { x: i.x, dt: i.dt, A: i.A, B: i.B, C: i.C, D: i.D ?? null, state: i.state ?? null },
      desc,
    );
    return g;
  });
}

// ---- causal conv1d -------------------------------------------------------------------------------

export interface Conv1dGrads {
  dx: Tensor;
  /** f32, the weight's shape ([channels, width] or [channels, 1, width]). */
  dWeight: Tensor;
  /** f32 [channels], null without a bias. */
  dBias: Tensor | null;
  /** The initial state's shape and dtype, null without one. */
  dState: Tensor | null;
}

/**
 * Gradients of ops.conv1dCausal(x, weight, bias, opts) given dy (y's) and optionally dStateOut (the gradient of
 * the returned state [batch, width−1, channels], x's dtype).
 */
export function conv1dCausalBackward(
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null,
  dy: Tensor,
  opts: { state?: Tensor | null; silu?: boolean; dStateOut?: Tensor | null } = {},
): Conv1dGrads {
  const what = 'conv1dCausalBackward';
  x.assertLive(what);
  weight.assertLive(what);
  const w = weight.rank === 3 ? weight.reshape([weight.shape[0], weight.shape[2]]) : weight;
  try {
    if (
      x.rank !== 3 ||
      w.rank !== 2 ||
      w.shape[0] !== x.shape[2] ||
      (weight.rank === 3 && weight.shape[1] !== 1)
    )
      throw new ShapeError(
        `${what}: x ${fmt(x.shape)} must be [batch, len, channels] and weight ${fmt(weight.shape)} [channels, width]`,
      );
    const [batch, len, channels] = x.shape;
    const width = w.shape[1];
    const stateShape = [batch, width - 1, channels];
    const state = opts.state ?? null;
    if (state && (!sameShape(state.shape, stateShape) || state.dtype !== x.dtype))
      throw new ShapeError(
        `${what}: state ${state.dtype} ${fmt(state.shape)} must be ${x.dtype} ${fmt(stateShape)}`,
      );
    if (bias && bias.size !== channels)
      throw new ShapeError(`${what}: bias ${fmt(bias.shape)} must have ${channels} values`);
    checkGrad(dy, x, what, 'output y (x)');
    const dStateOut = opts.dStateOut ?? null;
    if (dStateOut && (!sameShape(dStateOut.shape, stateShape) || dStateOut.dtype !== x.dtype))
      throw new ShapeError(
        `${what}: dStateOut ${dStateOut.dtype} ${fmt(dStateOut.shape)} must be ${x.dtype} ${fmt(stateShape)}`,
      );
    const b = x.backend;
    const kernel = kernelOf(b, 'conv1dBackward');
    const dx = empty(b, x.shape, x.dtype);
    const dW = empty(b, [channels, width], 'f32');
    const dBias = bias ? empty(b, [channels], 'f32') : null;
    const dState = state ? empty(b, stateShape, state.dtype) : null;
    return allocating([dx, dW, dBias, dState], () => {
      kernel(dx, dW, dBias, dState, dy, dStateOut, x, w, bias, state, {
        batch,
        len,
        channels,
        width,
        silu: opts.silu ?? false,
      });
      const dWeight = weight.rank === 3 ? dW.reshape(weight.shape) : dW;
      if (dWeight !== dW) dW.dispose();
      return { dx, dWeight, dBias, dState };
    });
  } finally {
    if (w !== weight) w.dispose();
  }
}

// ---- attention -----------------------------------------------------------------------------------

export interface AttentionGrads {
  dq: Tensor;
  /** Zero for keys at or after kvLength. */
  dk: Tensor;
  dv: Tensor;
}

/**
 * Gradients of ops.attention(q, k, v, opts).out given dOut and the saved `out` (both out's shape and dtype).
 * The mask, when given, is a constant (no gradient). Supports every mode of the forward: causal with a query
 * offset, GQA, cross-attention (sq ≠ skv), kvLength, segments, an additive mask, any scale.
 */
export function attentionBackward(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  out: Tensor,
  dOut: Tensor,
  opts: Omit<AttentionOptions, 'returnWeights'> = {},
): AttentionGrads {
  const what = 'attentionBackward';
  const desc = attentionDesc(q, k, v, opts, what);
  out.assertLive(what);
  const outShape = q.rank === 3 ? [desc.sq, desc.hq, desc.dv] : [desc.batch, desc.sq, desc.hq, desc.dv];
  if (!sameShape(out.shape, outShape) || out.dtype !== q.dtype)
    throw new ShapeError(`${what}: out ${out.dtype} ${fmt(out.shape)} must be ${q.dtype} ${fmt(outShape)}`);
  checkGrad(dOut, out, what, 'output out');
  const b = q.backend;
  const kernel = kernelOf(b, 'attentionBackward');
  const dq = empty(b, q.shape, q.dtype);
  const dk = empty(b, k.shape, k.dtype);
  const dv = empty(b, v.shape, v.dtype);
  return allocating([dq, dk, dv], () => {
    kernel(dq, dk, dv, dOut, q, k, v, out, opts.mask ?? null, desc);
    return { dq, dk, dv };
  });
}

// ---- norms ---------------------------------------------------------------------------------------

export interface NormGradOptions {
  /**
   * The gradient reaching the norm's input from elsewhere, added into dx: for ops.addRmsNorm /
   * addLayerNorm, the gradient of the returned `sum` (the residual stream). Then dx is the gradient of both
   * of the fused add's inputs (x and the residual).
   */
  dSum?: Tensor | null;
}

export interface RmsNormGrads {
  /** Gradient of the norm's input (for the fused add: of x and of the residual, each). */
  dx: Tensor;
  /** f32 [dim], null without a weight. */
  dWeight: Tensor | null;
  /** The gate's shape and dtype, null without a gate. */
  dGate: Tensor | null;
}

/**
 * Gradients of ops.rmsNorm(x, weight, opts) (gate before or after the norm, groupSize) given dy. For the fused
 * ops.addRmsNorm pass its `sum` as x and the gradient of `sum` as opts.dSum.
 */
export function rmsNormBackward(
  x: Tensor,
  weight: Tensor | null,
  dy: Tensor,
  opts: RmsNormOptions & NormGradOptions,
): RmsNormGrads {
  const what = 'rmsNormBackward';
  x.assertLive(what);
  weight?.assertLive(what);
  if (!isFloat(x.dtype)) throw new TypeError(`${what}: expected a float tensor, got ${x.dtype}`);
  const dim = x.shape[x.rank - 1];
  const groupSize = opts.groupSize ?? dim;
  if (!Number.isInteger(groupSize) || groupSize < 1 || dim % groupSize !== 0)
    throw new ShapeError(`${what}: group size ${groupSize} does not divide ${dim}`);
  if (weight && weight.size !== dim)
    throw new ShapeError(`${what}: weight ${fmt(weight.shape)} does not match last axis ${dim}`);
  const gate = opts.gate ?? null;
  if (gate) {
    gate.assertLive(what);
    if (!sameShape(gate.shape, x.shape) || !isFloat(gate.dtype))
      throw new ShapeError(`${what}: gate ${gate.dtype} ${fmt(gate.shape)} differs from x ${fmt(x.shape)}`);
  }
  checkGrad(dy, x, what, 'input x');
  const dSum = opts.dSum ?? null;
  if (dSum) checkGrad(dSum, x, what, 'input x (dSum)');
  const b = x.backend;
  const kernel = kernelOf(b, 'rmsNormBackward');
  const dx = empty(b, x.shape, x.dtype);
  const dWeight = weight ? empty(b, [dim], 'f32') : null;
  const dGate = gate ? empty(b, gate.shape, gate.dtype) : null;
  return allocating([dx, dWeight, dGate], () => {
    kernel(dx, dWeight, dGate, dy, x, weight, gate, dSum, {
      rows: x.size / dim,
      dim,
      eps: opts.eps,
      groupSize,
      normBeforeGate: opts.normBeforeGate ?? false,
    });
    return { dx, dWeight, dGate };
  });
}

export interface LayerNormGrads {
  dx: Tensor;
  /** f32 [dim], null without a weight / bias. */
  dWeight: Tensor | null;
  dBias: Tensor | null;
}

/** Gradients of ops.layerNorm(x, weight, bias, eps) given dy (for addLayerNorm: x = sum, opts.dSum). */
export function layerNormBackward(
  x: Tensor,
  weight: Tensor | null,
  bias: Tensor | null,
  eps: number,
  dy: Tensor,
  opts: NormGradOptions = {},
): LayerNormGrads {
  const what = 'layerNormBackward';
  x.assertLive(what);
  if (!isFloat(x.dtype)) throw new TypeError(`${what}: expected a float tensor, got ${x.dtype}`);
  const dim = x.shape[x.rank - 1];
  for (const p of [weight, bias])
    if (p && p.size !== dim)
      throw new ShapeError(`${what}: parameter ${fmt(p.shape)} does not match last axis ${dim}`);
  checkGrad(dy, x, what, 'input x');
  const dSum = opts.dSum ?? null;
  if (dSum) checkGrad(dSum, x, what, 'input x (dSum)');
  const b = x.backend;
  const kernel = kernelOf(b, 'layerNormBackward');
  const dx = empty(b, x.shape, x.dtype);
  const dWeight = weight ? empty(b, [dim], 'f32') : null;
  const dBias = bias ? empty(b, [dim], 'f32') : null;
  return allocating([dx, dWeight, dBias], () => {
    kernel(dx, dWeight, dBias, dy, x, weight, dSum, {
      rows: x.size / dim,
      dim,
      eps,
      groupSize: dim,
      normBeforeGate: false,
    });
    return { dx, dWeight, dBias };
  });
}

// ---- embedding -----------------------------------------------------------------------------------

/** Gradient of ops.embedding(table, ids) w.r.t. the table: f32 [vocab, dim], dOut's rows added at their ids. */
export function embeddingBackward(dOut: Tensor, ids: Tensor, vocab: number): Tensor {
  const what = 'embeddingBackward';
  dOut.assertLive(what);
  ids.assertLive(what);
  if (ids.dtype !== 'i32') throw new TypeError(`${what}: ids must be i32, got ${ids.dtype}`);
  const dim = dOut.shape[dOut.rank - 1];
  if (!sameShape(dOut.shape, [...ids.shape, dim]) || !isFloat(dOut.dtype))
    throw new ShapeError(
      `${what}: dOut ${dOut.dtype} ${fmt(dOut.shape)} must be [...ids ${fmt(ids.shape)}, dim]`,
    );
  if (!Number.isInteger(vocab) || vocab < 1) throw new ShapeError(`${what}: vocab ${vocab} must be ≥ 1`);
  const b = dOut.backend;
  const kernel = kernelOf(b, 'embeddingBackward');
  const dTable = empty(b, [vocab, dim], 'f32');
  return allocating([dTable], () => {
    kernel(dTable, dOut, ids);
    return dTable;
  });
}

// ---- losses --------------------------------------------------------------------------------------

export interface LossResult {
  /** f32 scalar (shape []). */
  loss: Tensor;
  /** The logits' shape and dtype; null when `grad` was false. */
  dLogits: Tensor | null;
}

export interface LossOptions {
  /** Compute dLogits (default true). */
  grad?: boolean;
  /** dLogits = gradScale · ∂loss/∂logits (default 1): the upstream gradient, e.g. a loss weight λ. */
  gradScale?: number;
}

function lossRows(logits: Tensor, what: string): { rows: number; vocab: number } {
  logits.assertLive(what);
  if (!isFloat(logits.dtype) || logits.rank < 1)
    throw new ShapeError(
      `${what}: logits must be float [..., vocab], got ${logits.dtype} ${fmt(logits.shape)}`,
    );
  const vocab = logits.shape[logits.rank - 1];
  return { rows: logits.size / (vocab || 1), vocab };
}

/**
 * Softmax cross-entropy, forward and backward in one pass: logits [..., vocab] (any float dtype), targets i32
 * [...] (logits' leading shape). loss = mean over rows whose target ≠ ignoreIndex (default −100) of
 * logsumexp(logits) − logits[target]; 0 with zero gradient when every row is ignored.
 */
export function crossEntropy(
  logits: Tensor,
  targets: Tensor,
  opts: LossOptions & { ignoreIndex?: number } = {},
): LossResult {
  const what = 'crossEntropy';
  const { rows, vocab } = lossRows(logits, what);
  targets.assertLive(what);
  if (targets.dtype !== 'i32' || !sameShape(targets.shape, logits.shape.slice(0, -1)))
    throw new ShapeError(
      `${what}: targets ${targets.dtype} ${fmt(targets.shape)} must be i32 ${fmt(logits.shape.slice(0, -1))}`,
    );
  const b = logits.backend;
  const kernel = kernelOf(b, 'crossEntropy');
  const loss = empty(b, [], 'f32');
  const dLogits = opts.grad === false ? null : empty(b, logits.shape, logits.dtype);
  return allocating([loss, dLogits], () => {
    kernel(loss, dLogits, logits, targets, {
      rows,
      vocab,
      ignoreIndex: opts.ignoreIndex ?? -100,
      gradScale: opts.gradScale ?? 1,
    });
    return { loss, dLogits };
  });
}

/**
 * Top-k distillation loss (Vamba §3.3): the teacher's k largest logits per row are given by their ids
 * (i32 [..., k]) and values (f32 [..., k]: logits or log-probabilities, equivalent here). Over those k ids,
 * p = softmax(teacher values) and q = softmax(student logits at the ids), both renormalised over the k, and
 *   loss = mean over rows of KL(p ‖ q) = Σ_j p_j·(log p_j − log q_j).
 * An id < 0 marks a padding entry (left out of both softmaxes); rows whose ids are all padding are left out
 * of the mean. Student logits outside the k get zero gradient.
 */
export function klTopK(
  logits: Tensor,
  teacherIds: Tensor,
  teacherValues: Tensor,
  opts: LossOptions = {},
): LossResult {
  const what = 'klTopK';
  const { rows, vocab } = lossRows(logits, what);
  teacherIds.assertLive(what);
  teacherValues.assertLive(what);
  const k = teacherIds.shape[teacherIds.rank - 1];
  const lead = logits.shape.slice(0, -1);
  if (
    teacherIds.dtype !== 'i32' ||
    teacherValues.dtype !== 'f32' ||
    !sameShape(teacherIds.shape, [...lead, k]) ||
    !sameShape(teacherValues.shape, teacherIds.shape) ||
    k < 1
  )
    throw new ShapeError(
      `${what}: teacher ids ${teacherIds.dtype} ${fmt(teacherIds.shape)} and values ${teacherValues.dtype} ${fmt(teacherValues.shape)} must be i32 / f32 [${[...lead, 'k'].join(', ')}] with k ≥ 1`,
    );
  const b = logits.backend;
  const kernel = kernelOf(b, 'klTopK');
  const loss = empty(b, [], 'f32');
  const dLogits = opts.grad === false ? null : empty(b, logits.shape, logits.dtype);
  return allocating([loss, dLogits], () => {
    kernel(loss, dLogits, logits, teacherIds, teacherValues, {
      rows,
      vocab,
      k,
      gradScale: opts.gradScale ?? 1,
    });
    return { loss, dLogits };
  });
}

// ---- optimizer -----------------------------------------------------------------------------------

export interface AdamWOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** 1-based count of updates including this one. */
  step: number;
  /** Multiplies the gradient first (clipping coefficient, 1/accumulation steps); default 1. */
  gradScale?: number;
}

/**
 * One parameter of an AdamW step: f32 param, moments and gradient of one size on one backend; `copy` receives
 * the updated parameter in its dtype (the model's bf16/f16 weight); decoupled weight decay, default 0.
 */
export type AdamWParam = Omit<AdamWSlot, 'copy' | 'weightDecay'> &
  Partial<Pick<AdamWSlot, 'copy' | 'weightDecay'>>;

/**
 * One AdamW update in place (torch.optim.AdamW) of every parameter: param ← param·(1 − lr·wd);
 * m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²; param ← param − lr·(m/(1−β₁ᵗ)) / (√(v/(1−β₂ᵗ)) + eps).
 * One backend call per dtype of the copies (one launch on a GPU for a whole model), not one per tensor.
 */
export function adamwSteps(params: readonly AdamWParam[], opts: AdamWOptions): void {
  const what = 'adamwStep';
  if (!params.length) return;
  const backend = params[0].param.backend;
  for (const p of params) {
    const { param } = p;
    for (const t of [param, p.m, p.v, p.grad]) {
      t.assertLive(what);
      if (t.dtype !== 'f32' || t.size !== param.size || t.backend !== backend)
        throw new ShapeError(
          `${what}: param, m, v and grad must be f32 tensors of one size on one backend (got ${t.dtype} ${fmt(t.shape)} for param ${fmt(param.shape)})`,
        );
    }
    const copy = p.copy ?? null;
    if (copy) {
      copy.assertLive(what);
      if (copy.size !== param.size || !isFloat(copy.dtype) || copy.backend !== backend)
        throw new ShapeError(
          `${what}: copy ${copy.dtype} ${fmt(copy.shape)} must be a float tensor of ${param.size} elements`,
        );
    }
    if (!((p.weightDecay ?? 0) >= 0))
      throw new RangeError(`${what}: weight decay ${p.weightDecay} must be ≥ 0`);
  }
  const { lr, step } = opts;
  const beta1 = opts.beta1 ?? 0.9;
  const beta2 = opts.beta2 ?? 0.999;
  const eps = opts.eps ?? 1e-8;
  const gradScale = opts.gradScale ?? 1;
  if (!Number.isInteger(step) || step < 1)
    throw new RangeError(`${what}: step ${step} must be an integer ≥ 1`);
  if (!(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1 && eps > 0 && lr >= 0))
    throw new RangeError(
      `${what}: need 0 ≤ β < 1, eps > 0, lr ≥ 0 (got β ${beta1}/${beta2}, eps ${eps}, lr ${lr})`,
    );
  // A launch writes copies of one dtype: group the slots by it (a model's copies share one).
  const groups = new Map<string, AdamWSlot[]>();
  for (const p of params) {
    const slot = { ...p, copy: p.copy ?? null, weightDecay: p.weightDecay ?? 0 };
    const key = slot.copy?.dtype ?? 'none';
    const group = groups.get(key);
    if (group) group.push(slot);
    else groups.set(key, [slot]);
  }
  const kernel = kernelOf(backend, 'adamwSteps');
  for (const slots of groups.values()) kernel(slots, { lr, beta1, beta2, eps, step, gradScale });
}

/** adamwSteps for one parameter. */
export function adamwStep(
  param: Tensor,
  m: Tensor,
  v: Tensor,
  grad: Tensor,
  opts: AdamWOptions & { copy?: Tensor | null; weightDecay?: number },
): void {
  adamwSteps([{ param, m, v, grad, copy: opts.copy, weightDecay: opts.weightDecay }], opts);
}

/** Σ x² over every element of every tensor of xs (f32, one backend), as an f32 scalar: one backend call. */
export function sumSquares(xs: readonly Tensor[]): Tensor {
  if (!xs.length) throw new RangeError('sumSquares: needs at least one tensor');
  const backend = xs[0].backend;
  for (const x of xs) {
    x.assertLive('sumSquares');
    if (x.dtype !== 'f32' || x.backend !== backend)
      throw new ShapeError(
        `sumSquares: every tensor must be f32 on one backend (got ${x.dtype} ${fmt(x.shape)})`,
      );
  }
  const kernel = kernelOf(backend, 'sumSquares');
  const out = empty(backend, [], 'f32');
  return allocating([out], () => {
    kernel(out, xs);
    return out;
  });
}
