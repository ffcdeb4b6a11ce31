import type { RawArray } from './dtype.js';
import type { Tensor } from './tensor.js';

/**
 * The contract between the op front-end (`ops.ts`) and a device. The front-end validates arguments,
 * computes output shapes, allocates outputs and then calls a kernel in destination-passing style:
 * `kernel(out, ...inputs, descriptor)`. Kernels may assume valid, contiguous inputs (each tensor starts at
 * `tensor.offset` elements into its storage) and must not allocate outputs themselves. Nothing here
 * assumes host memory: a kernel may enqueue work and return; only `download` waits.
 *
 * Precision rules for every backend (DESIGN §4): accumulate in f32; softmax, norm statistics, SSD
 * cumulative sums, SSM states and dt are f32; bf16/f16 are storage formats.
 */
export type DeviceName = 'cpu' | 'cuda' | 'webgpu';

/** Backend-owned memory. Its fields are the backend's business. */
export interface Storage {
  readonly bytes: number;
}

export interface MemoryStats {
  /** Bytes held by live tensors. */
  current: number;
  /** High-water mark of `current` since the last `resetPeak`. */
  peak: number;
  /** Bytes reserved from the device (caching allocators), ≥ current. */
  reserved: number;
}

export type UnaryOp =
  | 'neg'
  | 'exp'
  | 'log'
  | 'sqrt'
  | 'rsqrt'
  | 'abs'
  | 'sigmoid'
  | 'tanh'
  | 'relu'
  | 'relu2' // relu(x)²  (Nemotron-H MLP)
  | 'silu' // x·σ(x)
  | 'gelu' // exact: x·Φ(x) with erf
  | 'gelu_tanh' // tanh approximation
  | 'quick_gelu' // x·σ(1.702x)  (Qwen2-VL vision MLP)
  | 'softplus'; // log(1+eˣ), x when x > 20 (as torch and mamba_ssm)

export type BinaryOp = 'add' | 'sub' | 'mul' | 'div' | 'max' | 'min' | 'silu_mul'; // silu(a)·b in one rounding (SwiGLU's gate)

/**
 * Integer codes of the element-wise ops, shared by the backends (the CUDA kernels' enums UnaryOp and BinaryOp
 * in native/cuda/kernels.h use the same numbers; the CPU kernels switch on them inside their loops).
 */
export const UNARY_CODE: Readonly<Record<UnaryOp, number>> = {
  neg: 0,
  exp: 1,
  log: 2,
  sqrt: 3,
  rsqrt: 4,
  abs: 5,
  sigmoid: 6,
  tanh: 7,
  relu: 8,
  relu2: 9,
  silu: 10,
  gelu: 11,
  gelu_tanh: 12,
  quick_gelu: 13,
  softplus: 14,
};
export const BINARY_CODE: Readonly<Record<BinaryOp, number>> = {
  add: 0,
  sub: 1,
  mul: 2,
  div: 3,
  max: 4,
  min: 5,
  silu_mul: 6,
};

/** out[i] = op(a[ia], b[ib]) where ia/ib come from broadcast strides (0 on broadcast axes). */
export interface BroadcastDesc {
  outShape: readonly number[];
  aStrides: readonly number[];
  bStrides: readonly number[];
}

/**
 * out[batch, m, n] = alpha · Σ_k A[batch, m, k]·B[batch?, k, n] (+ bias[n]).
 * A is stored [batch, m, k] (or [batch, k, m] when transA); B is [batch, k, n] (or [batch, n, k] when
 * transB); `bBatched` false means one B is shared by every batch (a weight).
 */
export interface MatmulDesc {
  batch: number;
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
  bBatched: boolean;
  alpha: number;
}

export interface NormDesc {
  /** Rows are the leading dims flattened; each row has `dim` values. */
  rows: number;
  dim: number;
  eps: number;
  /** Statistics over groups of this many values within a row (grouped RMSNorm); = dim when not grouped. */
  groupSize: number;
  /** Gated RMSNorm: false → rms(x·silu(g))·w (mamba_ssm default); true → rms(x)·w·silu(g). */
  normBeforeGate: boolean;
}

/**
 * A residual add fused into a norm (pre-norm blocks: h = h + f(h); y = norm(h)): `sum` receives x + `add`,
 * both of x's shape and dtype, and the norm reads that rounded sum, so the result equals an add then a norm.
 */
export interface ResidualAdd {
  add: Tensor;
  sum: Tensor;
}

/** Rotate-half rotary embedding on x [batch, seq, heads, headDim] with cos/sin [batch or 1, seq, rotDim]. */
export interface RotaryDesc {
  batch: number;
  seq: number;
  heads: number;
  headDim: number;
  /** Leading dims of each head that rotate (= headDim for every model so far). */
  rotaryDim: number;
  /** cos/sin are shared by all batches. */
  tableShared: boolean;
}

/**
 * Scaled dot-product attention. q [batch, sq, hq, d], k/v [batch, skv, hkv, d] with hq % hkv == 0 (GQA:
 * query head h reads kv head ⌊h·hkv/hq⌋), out [batch, sq, hq, dv].
 * - causal: query i (absolute position queryOffset + i) sees keys j ≤ queryOffset + i.
 * - kvLength: only the first kvLength keys are valid (pre-allocated KV caches).
 * - segments: cumulative boundaries [0, …, sq] (batch 1, sq == skv); a query sees only keys of its segment
 *   (Qwen2-VL vision attention per 2-frame group).
 * - mask: additive f32 mask [batch or 1, sq, kvLength].
 * - weights: when given, receives the softmax probabilities [batch, hq, sq, kvLength] in f32.
 */
export interface AttentionDesc {
  batch: number;
  sq: number;
  skv: number;
  kvLength: number;
  hq: number;
  hkv: number;
  d: number;
  dv: number;
  scale: number;
  causal: boolean;
  queryOffset: number;
  segments: Int32Array | null;
}

/** One query position's softmax mass per key (ops.attentionMass): keys [from, to) of the first kvLength. */
export interface AttentionMassDesc {
  skv: number;
  kvLength: number;
  hq: number;
  hkv: number;
  d: number;
  from: number;
  to: number;
  scale: number;
}

/** Decode attention of `rows` sequences, each query row over its own K/V (ops.attentionRows). */
export interface AttentionRowsDesc {
  rows: number;
  hq: number;
  hkv: number;
  d: number;
  dv: number;
  scale: number;
}

/**
 * One Mamba-2 decode step of `rows` sequences (ops.mambaStepRows): the causal conv over [state; x‖B‖C] with
 * SiLU, dt = clamp(softplus(dt + dtBias), dtMin, dtMax), the SSM update; y [rows, dInner] = s·C + D·x.
 */
export interface MambaStepRowsDesc {
  rows: number;
  dInner: number;
  groups: number;
  dState: number;
  heads: number;
  headDim: number;
  width: number;
  dtMin: number;
  dtMax: number;
}

/** Causal depthwise conv1d over x [batch, len, channels] with kernel width `width`. */
export interface Conv1dDesc {
  batch: number;
  len: number;
  channels: number;
  width: number;
  silu: boolean;
}

/**
 * Mamba-2 SSD over x [batch, len, heads, headDim] with dt [batch, len, heads] (already softplus'ed, f32),
 * A [heads] (negative, f32), B/C [batch, len, groups, dState], D [heads] optional skip:
 *   s_t = exp(dt_t·A)·s_{t−1} + dt_t·x_t ⊗ B_t;   y_t = s_t·C_t + D·x_t.
 * Head h uses group ⌊h / (heads/groups)⌋. State [batch, heads, headDim, dState] f32.
 */
export interface SsdDesc {
  batch: number;
  len: number;
  heads: number;
  headDim: number;
  groups: number;
  dState: number;
  chunkSize: number;
}

/** The gradients `ssdScanBackward` writes (shapes of the SsdDesc inputs); dD / dState are null when D / state were. */
export interface SsdGrads {
  /** x's dtype. */
  dx: Tensor;
  /** f32 [batch, len, heads]: w.r.t. dt as the scan takes it (after softplus and any clamp). */
  ddt: Tensor;
  /** f32 [heads], summed over batch and time. */
  dA: Tensor;
  /** B's dtype. */
  dB: Tensor;
  dC: Tensor;
  /** f32 [heads]. */
  dD: Tensor | null;
  /** f32 [batch, heads, headDim, dState]: w.r.t. the initial state. */
  dState: Tensor | null;
}

/** The saved forward inputs of an SSD scan (the tensors of ops.SsdInputs). */
export interface SsdTensors {
  x: Tensor;
  dt: Tensor;
  A: Tensor;
  B: Tensor;
  C: Tensor;
  D: Tensor | null;
  state: Tensor | null;
}

/** Fused softmax cross-entropy over logits [rows, vocab] with i32 targets [rows]. */
export interface CrossEntropyDesc {
  rows: number;
  vocab: number;
  /** Rows whose target equals this are left out of the mean (and get zero gradient). */
  ignoreIndex: number;
  /** dLogits = gradScale · ∂loss/∂logits (the upstream gradient of the scalar loss, e.g. a loss weight). */
  gradScale: number;
}

/** Top-k distillation KL over student logits [rows, vocab] with teacher ids/values [rows, k] (grad-ops.klTopK). */
export interface KlTopKDesc {
  rows: number;
  vocab: number;
  k: number;
  gradScale: number;
}

/** One fused AdamW update (PyTorch's torch.optim.AdamW semantics) shared by every slot of an `adamwSteps` call. */
export interface AdamWDesc {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** 1-based step count (bias corrections 1 − βᵗ). */
  step: number;
  /** The gradient is multiplied by this first (gradient clipping, accumulation averaging). */
  gradScale: number;
}

/** One parameter of an `adamwSteps` call: f32 param, m, v and grad of one size; `copy` gets the new param. */
export interface AdamWSlot {
  param: Tensor;
  m: Tensor;
  v: Tensor;
  grad: Tensor;
  /** Null, or a float tensor of the param's size; every copy of one call has one dtype. */
  copy: Tensor | null;
  weightDecay: number;
}

export interface SampleDesc {
  rows: number;
  vocab: number;
  /** ≤ 0 means greedy (argmax). */
  temperature: number;
  /** 0 disables. */
  topK: number;
  /** 1 disables. */
  topP: number;
  /** HF semantics on previously seen ids: logit/p when positive, logit·p when negative. 1 disables. */
  repetitionPenalty: number;
}

export interface Backend {
  readonly name: DeviceName;

  // ---- memory -------------------------------------------------------------------------------
  allocate(bytes: number): Storage;
  release(storage: Storage): void;
  /** Copies host elements (raw elements of `dst.dtype`, `dst.size` of them) into dst. */
  upload(dst: Tensor, src: RawArray): void;
  /** Reads dst's elements back to the host, waiting for pending work. */
  download(src: Tensor): Promise<RawArray>;
  /** Optional blocking read (autograd reads a loss, or embedding ids, between kernels). */
  downloadSync?(src: Tensor): RawArray;
  memory(): MemoryStats;
  resetPeak(): void;
  /** Waits until all queued work is done. */
  synchronize(): Promise<void>;

  // ---- kernels (destination first) ------------------------------------------------------------
  /** out = x (same element count), converting dtype. Also used for plain copies. */
  cast(out: Tensor, x: Tensor): void;
  fill(out: Tensor, value: number): void;
  unary(out: Tensor, op: UnaryOp, x: Tensor): void;
  binary(out: Tensor, op: BinaryOp, a: Tensor, b: Tensor, desc: BroadcastDesc): void;
  /** out = x·scale + shift. */
  affine(out: Tensor, x: Tensor, scale: number, shift: number): void;
  matmul(out: Tensor, a: Tensor, b: Tensor, bias: Tensor | null, desc: MatmulDesc): void;
  /** With `residual`: residual.sum = x + residual.add (rounded to x's dtype), and the norm is of that sum. */
  rmsNorm(
    out: Tensor,
    x: Tensor,
    weight: Tensor | null,
    gate: Tensor | null,
    desc: NormDesc,
    residual?: ResidualAdd | null,
  ): void;
  layerNorm(
    out: Tensor,
    x: Tensor,
    weight: Tensor | null,
    bias: Tensor | null,
    desc: NormDesc,
    residual?: ResidualAdd | null,
  ): void;
  /** Softmax over the last axis (rows × dim), computed in f32. */
  softmax(out: Tensor, x: Tensor, rows: number, dim: number): void;
  rotary(out: Tensor, x: Tensor, cos: Tensor, sin: Tensor, desc: RotaryDesc): void;
  /**
   * Rotary tables cos/sin [seq, 2·half] (f32): angle(p, j) = f32(positions[rowOf[j], p] · invFreq[j]) sets
   * columns j and j + half. positions [rows, seq] f32, invFreq [half] f32, rowOf [half] i32 (< rows).
   */
  ropeTable(cos: Tensor, sin: Tensor, positions: Tensor, invFreq: Tensor, rowOf: Tensor): void;
  attention(
    out: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | null,
    weights: Tensor | null,
    desc: AttentionDesc,
  ): void;
  /**
   * Optional batched decode attention: out [rows, hq, dv], q [rows, hq, d]; row i attends to the first
   * prefix.length keys of its prefix (when given), then the first kvs[i].length keys of kvs[i].k/v
   * [1, skv_i, hkv, d]. Without it, ops loop over `attention`.
   */
  attentionRows?(
    out: Tensor,
    q: Tensor,
    kvs: readonly {
      k: Tensor;
      v: Tensor;
      length: number;
      prefix?: { k: Tensor; v: Tensor; length: number } | null;
    }[],
    desc: AttentionRowsDesc,
  ): void;
  /**
   * Optional: out [to − from] (f32) = Σ_h softmax_j(scale · q_h · k_j) for one query position, q [hq, d],
   * k [1, skv, hkv, d], with f32 scratch scores [hq, kvLength] and stats [hq, 2]. Without it, ops take the
   * weights of `attention`.
   */
  attentionMass?(
    out: Tensor,
    scores: Tensor,
    stats: Tensor,
    q: Tensor,
    k: Tensor,
    desc: AttentionMassDesc,
  ): void;
  /** Optional: row i of x [rows, rowElems] into dsts[i].dst at row dsts[i].at (rows of rowElems). */
  scatterRows?(x: Tensor, dsts: readonly { dst: Tensor; at: number }[], rowElems: number): void;
  /**
   * Optional batched Mamba-2 decode step (MambaStepRowsDesc): x [rows, dInner], bc [rows, 2·groups·dState],
   * dtRaw [rows, heads] in one dtype; convWeight [dInner + 2·groups·dState, width] (+ bias); dtBias, A f32
   * [heads]; D [heads] or null. Each state's conv [1, width−1, convDim] and ssm [1, heads, headDim, dState]
   * (f32) advance in place; y [rows, dInner] receives the output before the gate.
   */
  mambaStepRows?(
    y: Tensor,
    x: Tensor,
    bc: Tensor,
    dtRaw: Tensor,
    conv: { weight: Tensor; bias: Tensor | null },
    dtBias: Tensor,
    A: Tensor,
    D: Tensor | null,
    states: readonly { conv: Tensor; ssm: Tensor }[],
    desc: MambaStepRowsDesc,
  ): void;
  /**
   * y = conv(x) (+ bias) (then SiLU), weight [channels, width]. `state` [batch, width−1, channels] holds the
   * inputs before x (zeros when null); `stateOut` receives the last width−1 inputs of [state; x].
   */
  conv1d(
    y: Tensor,
    stateOut: Tensor | null,
    x: Tensor,
    weight: Tensor,
    bias: Tensor | null,
    state: Tensor | null,
    desc: Conv1dDesc,
  ): void;
  /** Chunked SSD scan. `state` is the initial state (zeros when null); `stateOut` receives the final state. */
  ssdScan(
    y: Tensor,
    stateOut: Tensor | null,
    x: Tensor,
    dt: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | null,
    state: Tensor | null,
    desc: SsdDesc,
  ): void;
  /** One-token recurrent update (len = 1): updates `state` in place and writes y [batch, heads, headDim]. */
  ssmStep(
    y: Tensor,
    state: Tensor,
    x: Tensor,
    dt: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | null,
    desc: SsdDesc,
  ): void;
  /** out[i, :] = table[ids[i], :]. */
  embedding(out: Tensor, table: Tensor, ids: Tensor): void;
  /**
   * out[r, :] = the sum (or mean) of table[ids[j], :] for j in [offsets[r], offsets[r+1]), accumulated in f32 in
   * that order (deterministic); an empty bag gives zeros.
   */
  embeddingBag(out: Tensor, table: Tensor, ids: Tensor, offsets: Tensor, mean: boolean): void;
  /** Copies `x` into `out` viewed as [outer, outDim, inner] at positions [start, start+xDim) of the middle axis. */
  writeSlice(out: Tensor, x: Tensor, outer: number, outDim: number, inner: number, start: number): void;
  /** out = x[:, start:start+outDim, :] with x viewed as [outer, xDim, inner]. */
  readSlice(out: Tensor, x: Tensor, outer: number, xDim: number, inner: number, start: number): void;
  /** out = x permuted: out axis i is x axis perm[i]. */
  permute(out: Tensor, x: Tensor, perm: readonly number[]): void;
  /** Reverses x viewed as [outer, dim, inner] along the middle axis (bidirectional scans). */
  flip(out: Tensor, x: Tensor, outer: number, dim: number, inner: number): void;
  /** Reduces x viewed as [outer, dim, inner] over the middle axis. */
  reduce(out: Tensor, op: 'sum' | 'mean' | 'max', x: Tensor, outer: number, dim: number, inner: number): void;
  /** out (i32 [rows]) = index of the max over each row of x [rows, dim] (first on ties). */
  argmax(out: Tensor, x: Tensor, rows: number, dim: number): void;
  /**
   * Samples one id per row of logits [rows, vocab] into out (i32 [rows]). `uniforms` holds one U[0,1) draw
   * per row, supplied by the caller's seeded RNG so every backend samples identically. `previous` (i32) holds
   * the ids seen so far per row for the repetition penalty ([rows, n], -1 = padding) or is null.
   * Rules every backend follows (so one seed gives one answer): repetition penalty, then temperature, top-k,
   * top-p; candidates ordered by descending logit (ties: lower id first); top-k keeps the first k; top-p keeps
   * the shortest prefix whose probability reaches p (at least one); the pick is the first candidate whose
   * cumulative probability exceeds u · (sum of kept probabilities). temperature ≤ 0 is argmax.
   */
  sample(
    out: Tensor,
    logits: Tensor,
    uniforms: Float32Array,
    previous: Tensor | null,
    desc: SampleDesc,
  ): void;

  // ---- backward kernels (optional; front-end in grad-ops.ts) ------------------------------------------
  // Gradients of activations come in the activation's dtype, gradients of parameters (weights, biases, A,
  // D, tables) in f32; every kernel accumulates in f32 and overwrites its outputs.
  /** Gradients of ssdScan given dy (y's shape and dtype) and dStateOut (f32, the final state's) or null. */
  ssdScanBackward?(g: SsdGrads, dy: Tensor, dStateOut: Tensor | null, i: SsdTensors, desc: SsdDesc): void;
  /**
   * Gradients of conv1d: dx (x's dtype), dWeight f32 [channels, width], dBias f32 [channels], dState
   * (state's shape and dtype, when the forward had a state) from dy and dStateOut (the returned state's) or null.
   */
  conv1dBackward?(
    dx: Tensor,
    dWeight: Tensor,
    dBias: Tensor | null,
    dState: Tensor | null,
    dy: Tensor,
    dStateOut: Tensor | null,
    x: Tensor,
    weight: Tensor,
    bias: Tensor | null,
    state: Tensor | null,
    desc: Conv1dDesc,
  ): void;
  /** Gradients of attention (dq, dk, dv in q's dtype and shapes) from dOut and the saved out; keys ≥ kvLength get 0. */
  attentionBackward?(
    dq: Tensor,
    dk: Tensor,
    dv: Tensor,
    dOut: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    out: Tensor,
    mask: Tensor | null,
    desc: AttentionDesc,
  ): void;
  /**
   * Gradients of rmsNorm (x is the norm's input: for the fused add, the sum): dx (+ dSum when given, the
   * gradient reaching the sum from elsewhere), dWeight f32 [dim], dGate (gate's dtype).
   */
  rmsNormBackward?(
    dx: Tensor,
    dWeight: Tensor | null,
    dGate: Tensor | null,
    dy: Tensor,
    x: Tensor,
    weight: Tensor | null,
    gate: Tensor | null,
    dSum: Tensor | null,
    desc: NormDesc,
  ): void;
  /** Gradients of layerNorm: dx (+ dSum), dWeight and dBias f32 [dim]. */
  layerNormBackward?(
    dx: Tensor,
    dWeight: Tensor | null,
    dBias: Tensor | null,
    dy: Tensor,
    x: Tensor,
    weight: Tensor | null,
    dSum: Tensor | null,
    desc: NormDesc,
  ): void;
  /** dTable (f32 [vocab, dim], overwritten) = Σ over positions i of dOut[i, :] into row ids[i]. */
  embeddingBackward?(dTable: Tensor, dOut: Tensor, ids: Tensor): void;
  /** loss (f32, 1 element) = mean cross-entropy over non-ignored rows; dLogits (logits' dtype) when not null. */
  crossEntropy?(
    loss: Tensor,
    dLogits: Tensor | null,
    logits: Tensor,
    targets: Tensor,
    desc: CrossEntropyDesc,
  ): void;
  /** loss (f32, 1 element) = mean top-k KL(teacher ‖ student) over rows (grad-ops.klTopK); dLogits when not null. */
  klTopK?(
    loss: Tensor,
    dLogits: Tensor | null,
    logits: Tensor,
    teacherIds: Tensor,
    teacherLogits: Tensor,
    desc: KlTopKDesc,
  ): void;
  /** AdamW in place over every slot (one launch on a GPU: an optimizer step is one call, not one per tensor). */
  adamwSteps?(slots: readonly AdamWSlot[], desc: AdamWDesc): void;
  /** out (f32, 1 element) = Σ x² over every element of every f32 tensor of xs (one launch: the gradient norm). */
  sumSquares?(out: Tensor, xs: readonly Tensor[]): void;
}

/**
 * For each query i, the keys [lo, hi) it may see under `d` (kvLength, causal with the query offset, its segment):
 * [lo, hi]·sq, in one sweep over the segments (a video's frames make thousands of them).
 */
export function attentionKeyRanges(d: AttentionDesc): Int32Array {
  const out = new Int32Array(2 * d.sq);
  let s = 0;
  for (let i = 0; i < d.sq; i++) {
    let lo = 0;
    let hi = d.kvLength;
    if (d.causal) hi = Math.min(hi, d.queryOffset + i + 1);
    if (d.segments) {
      while (i >= d.segments[s + 1]) s++;
      lo = d.segments[s];
      hi = Math.min(hi, d.segments[s + 1]);
    }
    out[2 * i] = lo;
    out[2 * i + 1] = Math.max(lo, hi);
  }
  return out;
}

/**
 * For each key j < skv, the queries [lo, hi) that see it (2·skv ints; lo = hi when none). Every query's key range
 * (attentionKeyRanges) has non-decreasing ends in the query index, so these are intervals found in one sweep.
 */
export function attentionQueryRanges(d: AttentionDesc, keyRanges = attentionKeyRanges(d)): Int32Array {
  const out = new Int32Array(2 * d.skv);
  let first = 0; // the first query whose range ends after j
  let seen = 0; // how many queries' ranges start at or before j
  for (let j = 0; j < d.skv; j++) {
    while (first < d.sq && keyRanges[2 * first + 1] <= j) first++;
    while (seen < d.sq && keyRanges[2 * seen] <= j) seen++;
    out[2 * j] = first;
    out[2 * j + 1] = Math.max(first, seen);
  }
  return out;
}
