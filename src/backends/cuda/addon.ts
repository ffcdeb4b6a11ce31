import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { OutOfMemoryError } from '../../errors.js';
import type {
  AttentionDesc,
  AttentionMassDesc,
  AttentionRowsDesc,
  MambaStepRowsDesc,
  SsdDesc,
} from '../../runtime/backend.js';
import { ShapeError } from '../../runtime/shape.js';

/** Device addresses are plain numbers (GPU virtual addresses stay below 2^53); 0 means "none". */
export type Ptr = number;

/** The functions of native/cuda/addon.cpp, argument for argument. Dtypes are numbered as DTYPE_CODE. */
export interface CudaAddon {
  init(): { name: string; computeCapability: number; totalMemory: number; cublasLt: string };
  alloc(bytes: number): Ptr;
  release(ptr: Ptr): void;
  memory(): [current: number, peak: number, reserved: number];
  resetPeak(): void;
  emptyCache(): void;
  upload(dst: Ptr, src: ArrayBufferView): void;
  download(src: Ptr, dst: ArrayBufferView): void;
  synchronize(): void;
  /** Records a timestamp on the stream; returns its index (profiling, bench/long_video.ts --profile). */
  profileMark(): number;
  /** Waits for the stream; the marks' times in ms after the first, then forgets them. */
  profileRead(): number[];
  cast(out: Ptr, to: number, x: Ptr, from: number, n: number): void;
  fill(out: Ptr, dtype: number, n: number, value: number): void;
  unary(out: Ptr, x: Ptr, dtype: number, n: number, op: number): void;
  binary(
    out: Ptr,
    a: Ptr,
    b: Ptr,
    dtype: number,
    op: number,
    shape: readonly number[],
    aStrides: readonly number[],
    bStrides: readonly number[],
  ): void;
  affine(out: Ptr, x: Ptr, dtype: number, n: number, scale: number, shift: number): void;
  matmul(
    out: Ptr,
    a: Ptr,
    b: Ptr,
    bias: Ptr,
    dtype: number,
    batch: number,
    m: number,
    n: number,
    k: number,
    transA: boolean,
    transB: boolean,
    bBatched: boolean,
    alpha: number,
    outDtype: number,
  ): void;
  rmsNorm(
    out: Ptr,
    x: Ptr,
    dtype: number,
    weight: Ptr,
    weightDtype: number,
    gate: Ptr,
    rows: number,
    dim: number,
    groupSize: number,
    eps: number,
    normBeforeGate: boolean,
    residual: Ptr,
    sumOut: Ptr,
  ): void;
  layerNorm(
    out: Ptr,
    x: Ptr,
    dtype: number,
    weight: Ptr,
    bias: Ptr,
    paramDtype: number,
    rows: number,
    dim: number,
    eps: number,
    residual: Ptr,
    sumOut: Ptr,
  ): void;
  softmax(out: Ptr, x: Ptr, dtype: number, rows: number, dim: number): void;
  rotary(
    out: Ptr,
    x: Ptr,
    dtype: number,
    cos: Ptr,
    sin: Ptr,
    batch: number,
    seq: number,
    heads: number,
    headDim: number,
    rotaryDim: number,
    tableShared: boolean,
  ): void;
  ropeTable(cos: Ptr, sin: Ptr, positions: Ptr, invFreq: Ptr, rowOf: Ptr, seq: number, half: number): void;
  embedding(out: Ptr, table: Ptr, dtype: number, ids: Ptr, nIds: number, vocab: number, dim: number): void;
  embeddingBag(
    out: Ptr,
    table: Ptr,
    dtype: number,
    ids: Ptr,
    nIds: number,
    offsets: Ptr,
    bags: number,
    vocab: number,
    dim: number,
    mean: number,
  ): void;
  readSlice(
    out: Ptr,
    x: Ptr,
    elementBytes: number,
    outer: number,
    xDim: number,
    outDim: number,
    inner: number,
    start: number,
  ): void;
  writeSlice(
    out: Ptr,
    x: Ptr,
    elementBytes: number,
    outer: number,
    outDim: number,
    xDim: number,
    inner: number,
    start: number,
  ): void;
  permute(out: Ptr, x: Ptr, elementBytes: number, shape: readonly number[], perm: readonly number[]): void;
  flip(out: Ptr, x: Ptr, elementBytes: number, outer: number, dim: number, inner: number): void;
  reduce(out: Ptr, x: Ptr, dtype: number, op: number, outer: number, dim: number, inner: number): void;
  argmax(out: Ptr, x: Ptr, dtype: number, rows: number, dim: number): void;
  sample(
    out: Ptr,
    logits: Ptr,
    dtype: number,
    uniforms: Float32Array,
    previous: Ptr,
    nPrevious: number,
    rows: number,
    vocab: number,
    temperature: number,
    topK: number,
    topP: number,
    repetitionPenalty: number,
  ): void;
  /** The relevance probe's kernel (native/cuda/attention_mass.cu); absent from addons built before it. */
  attentionMass?(
    out: Ptr,
    scores: Ptr,
    stats: Ptr,
    q: Ptr,
    k: Ptr,
    dtype: number,
    desc: AttentionMassDesc,
  ): void;
  /** Present once native/cuda/attention.cu is part of the build. */
  attention?(
    out: Ptr,
    q: Ptr,
    k: Ptr,
    v: Ptr,
    mask: Ptr,
    maskBatch: number,
    weights: Ptr,
    dtype: number,
    desc: AttentionDesc,
    segments: Int32Array | null,
  ): void;
  /** Present once native/cuda/ssd.cu is part of the build. */
  ssdScan?(
    y: Ptr,
    stateOut: Ptr,
    x: Ptr,
    dt: Ptr,
    A: Ptr,
    B: Ptr,
    C: Ptr,
    D: Ptr,
    dDtype: number,
    state: Ptr,
    dtype: number,
    desc: SsdDesc,
  ): void;
  ssmStep?(
    y: Ptr,
    state: Ptr,
    x: Ptr,
    dt: Ptr,
    A: Ptr,
    B: Ptr,
    C: Ptr,
    D: Ptr,
    dDtype: number,
    dtype: number,
    desc: SsdDesc,
  ): void;
  /** Present once native/cuda/conv1d.cu is part of the build. */
  conv1d?(...args: unknown[]): void;
  /** Present once native/cuda/grad.cu is part of the build (the backward kernels of grad-ops.ts). */
  ssdScanBackward?(
    dx: Ptr,
    ddt: Ptr,
    dA: Ptr,
    dB: Ptr,
    dC: Ptr,
    dD: Ptr,
    dState: Ptr,
    dy: Ptr,
    dStateOut: Ptr,
    x: Ptr,
    dt: Ptr,
    A: Ptr,
    B: Ptr,
    C: Ptr,
    D: Ptr,
    dDtype: number,
    state: Ptr,
    dtype: number,
    desc: SsdDesc,
  ): void;
  conv1dBackward?(
    dx: Ptr,
    dWeight: Ptr,
    dBias: Ptr,
    dState: Ptr,
    dy: Ptr,
    dStateOut: Ptr,
    x: Ptr,
    weight: Ptr,
    bias: Ptr,
    state: Ptr,
    dtype: number,
    wDtype: number,
    desc: import('../../runtime/backend.js').Conv1dDesc,
  ): void;
  /** ranges: each query's key range [lo, hi) (2·sq ints); queryRanges: each key's queries [lo, hi) (2·skv ints). */
  attentionBackward?(
    dq: Ptr,
    dk: Ptr,
    dv: Ptr,
    dOut: Ptr,
    q: Ptr,
    k: Ptr,
    v: Ptr,
    out: Ptr,
    mask: Ptr,
    maskBatch: number,
    dtype: number,
    desc: AttentionDesc,
    ranges: Int32Array,
    queryRanges: Int32Array,
  ): void;
  rmsNormBackward?(
    dx: Ptr,
    dWeight: Ptr,
    dGate: Ptr,
    dy: Ptr,
    x: Ptr,
    weight: Ptr,
    wDtype: number,
    gate: Ptr,
    dSum: Ptr,
    rows: number,
    dim: number,
    groupSize: number,
    eps: number,
    normBeforeGate: boolean,
    dtype: number,
  ): void;
  layerNormBackward?(
    dx: Ptr,
    dWeight: Ptr,
    dBias: Ptr,
    dy: Ptr,
    x: Ptr,
    weight: Ptr,
    wDtype: number,
    dSum: Ptr,
    rows: number,
    dim: number,
    eps: number,
    dtype: number,
  ): void;
  embeddingBackward?(
    dTable: Ptr,
    dOut: Ptr,
    dtype: number,
    ids: Ptr,
    n: number,
    vocab: number,
    dim: number,
  ): void;
  crossEntropy?(
    loss: Ptr,
    dLogits: Ptr,
    logits: Ptr,
    dtype: number,
    targets: Ptr,
    rows: number,
    vocab: number,
    ignoreIndex: number,
    gradScale: number,
  ): void;
  klTopK?(
    loss: Ptr,
    dLogits: Ptr,
    logits: Ptr,
    dtype: number,
    ids: Ptr,
    teacher: Ptr,
    rows: number,
    vocab: number,
    k: number,
    gradScale: number,
  ): void;
  /** slots: [param, m, v, grad, copy, n, weightDecay] per parameter; copy: any slot's copy (its dtype) or 0. */
  adamwSteps?(
    slots: Float64Array,
    anyCopy: Ptr,
    copyDtype: number,
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    step: number,
    gradScale: number,
  ): void;
  /** slots: [0, 0, 0, x, 0, n] per tensor. */
  sumSquares?(out: Ptr, slots: Float64Array): void;
  /** Present once native/cuda/decode.cu is part of the build: table holds [k, v, length, prefixK, prefixV, prefixLength] per row. */
  attentionRows?(out: Ptr, q: Ptr, table: Float64Array, dtype: number, desc: AttentionRowsDesc): void;
  scatterRows?(x: Ptr, dsts: Float64Array, rowBytes: number): void;
  /** states holds [conv, ssm] addresses per row. */
  mambaStepRows?(
    y: Ptr,
    x: Ptr,
    bc: Ptr,
    dtRaw: Ptr,
    weight: Ptr,
    bias: Ptr,
    wDtype: number,
    dtBias: Ptr,
    A: Ptr,
    D: Ptr,
    dDtype: number,
    states: Float64Array,
    dtype: number,
    desc: MambaStepRowsDesc,
  ): void;
}

const ADDON_FILE = join('native', 'cuda', 'build', 'longshot_cuda.node');

/** The built addon: $LONGSHOT_CUDA_ADDON, else native/cuda/build/ of the package (found from src/ or dist/src/). */
export function addonPath(): string | null {
  return process.env.LONGSHOT_CUDA_ADDON || packageFile(ADDON_FILE);
}

/** A file of the longshot package (run from src/ or dist/src/), found by walking up from this module. */
export function packageFile(rel: string): string | null {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const p = join(dir, rel);
    if (existsSync(p)) return p;
    dir = dirname(dir);
  }
  return null;
}

/**
 * Turns the addon's errors into the project's: exhausted memory becomes an OutOfMemoryError, a bad argument
 * found on the device (an embedding id outside the vocabulary) a ShapeError, as the CPU backend raises.
 */
function translate(e: unknown): unknown {
  const code = e instanceof Error ? (e as { code?: string }).code : undefined;
  if (code === 'ERR_LONGSHOT_OOM') return new OutOfMemoryError((e as Error).message, { cause: e });
  if (code === 'ERR_LONGSHOT_ARGUMENT') return new ShapeError((e as Error).message, { cause: e });
  return e;
}

/** Loads the addon (throws when it is missing or does not load); every function rethrows translated errors. */
export function loadAddon(path: string): CudaAddon {
  const raw = createRequire(import.meta.url)(path) as Record<string, (...args: unknown[]) => unknown>;
  const wrapped: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(raw))
    wrapped[name] = (...args: unknown[]) => {
      try {
        return fn(...args);
      } catch (e) {
        throw translate(e);
      }
    };
  return wrapped as unknown as CudaAddon;
}
