import {
  type AdamWDesc,
  type AdamWSlot,
  type AttentionDesc,
  attentionKeyRanges,
  attentionQueryRanges,
  type Backend,
  BINARY_CODE,
  type BinaryOp,
  type BroadcastDesc,
  type Conv1dDesc,
  type CrossEntropyDesc,
  type KlTopKDesc,
  type MatmulDesc,
  type MemoryStats,
  type NormDesc,
  type ResidualAdd,
  type RotaryDesc,
  type SampleDesc,
  type SsdDesc,
  type SsdGrads,
  type SsdTensors,
  type Storage,
  UNARY_CODE,
  type UnaryOp,
} from '../../runtime/backend.js';
import { BYTES_PER_ELEMENT, type DType, type RawArray, rawArrayFor } from '../../runtime/dtype.js';
import { empty, full } from '../../runtime/ops.js';
import type { Tensor } from '../../runtime/tensor.js';
import type { CudaAddon, Ptr } from './addon.js';

/** The head dims of the tensor-core attention kernels (native/cuda/attention.cu: flash_fwd; attention_sm90 from 64). */
const FLASH_HEAD_DIMS = [32, 48, 64, 80, 96, 128];

/** Dtype numbering shared with native/cuda/kernels.h (enum class ET). */
const DTYPE_CODE: Record<DType, number> = { f32: 0, bf16: 1, f16: 2, i32: 3, u8: 4 };
/** Reduction numbering shared with native/cuda/kernels.h (ReduceOp); UNARY_CODE/BINARY_CODE come from the runtime. */
const REDUCE_CODE = { sum: 0, mean: 1, max: 2 } as const;

/** Device memory from the addon's caching allocator. */
export class CudaStorage implements Storage {
  released = false;
  constructor(
    readonly bytes: number,
    readonly ptr: Ptr,
  ) {}
}

const code = (t: Tensor): number => DTYPE_CODE[t.dtype];

/** Device address of a tensor's first element. */
function ptr(t: Tensor): Ptr {
  return (t.storage as CudaStorage).ptr + t.offset * BYTES_PER_ELEMENT[t.dtype];
}
const ptrOr0 = (t: Tensor | null): Ptr => (t ? ptr(t) : 0);

function notBuilt(op: string, file: string): Error {
  return new Error(
    `cuda ${op}: this build of the CUDA addon has no ${op} kernel (native/cuda/${file} was not compiled in). ` +
      'Rebuild with "npm run build:native" from a checkout that contains it.',
  );
}

/**
 * The CUDA backend: every kernel enqueues on the addon's stream and returns; `download` and `synchronize`
 * wait. GEMMs go to cuBLASLt; attention, SSD and conv1d to their fused kernels.
 */
export class CudaBackend implements Backend {
  readonly name = 'cuda' as const;

  /** The batched decode kernels (native/cuda/decode.cu), absent from builds without them (ops then loop). */
  readonly attentionRows?: Backend['attentionRows'];
  readonly scatterRows?: Backend['scatterRows'];
  readonly mambaStepRows?: Backend['mambaStepRows'];
  /** The relevance probe's kernel (native/cuda/attention_mass.cu). */
  readonly attentionMass?: Backend['attentionMass'];

  constructor(
    private readonly addon: CudaAddon,
    /** What init reported: GPU name, compute capability, memory, the cuBLASLt library loaded. */
    readonly device: ReturnType<CudaAddon['init']>,
  ) {
    const { attentionRows, scatterRows, mambaStepRows, attentionMass } = addon;
    if (attentionMass)
      this.attentionMass = (out, scores, stats, q, k, d) =>
        attentionMass(ptr(out), ptr(scores), ptr(stats), ptr(q), ptr(k), code(q), d);
    if (attentionRows)
      this.attentionRows = (out, q, kvs, d) =>
        attentionRows(
          ptr(out),
          ptr(q),
          Float64Array.from(
            kvs.flatMap((r) => [
              ptr(r.k),
              ptr(r.v),
              r.length,
              ptrOr0(r.prefix?.k ?? null),
              ptrOr0(r.prefix?.v ?? null),
              r.prefix?.length ?? 0,
            ]),
          ),
          code(q),
          d,
        );
    if (scatterRows)
      this.scatterRows = (x, dsts, rowElems) => {
        const rowBytes = rowElems * BYTES_PER_ELEMENT[x.dtype];
        scatterRows(
          ptr(x),
          Float64Array.from(dsts, (t) => ptr(t.dst) + t.at * rowBytes),
          rowBytes,
        );
      };
    if (mambaStepRows)
      this.mambaStepRows = (y, x, bc, dtRaw, conv, dtBias, A, D, states, d) => {
        if (conv.bias && conv.bias.dtype !== conv.weight.dtype)
          throw new TypeError(
            `cuda mambaStepRows: bias ${conv.bias.dtype} and weight ${conv.weight.dtype} differ`,
          );
        mambaStepRows(
          ptr(y),
          ptr(x),
          ptr(bc),
          ptr(dtRaw),
          ptr(conv.weight),
          ptrOr0(conv.bias),
          code(conv.weight),
          ptr(dtBias),
          ptr(A),
          ptrOr0(D),
          D ? code(D) : 0,
          Float64Array.from(states.flatMap((s) => [ptr(s.conv), ptr(s.ssm)])),
          code(x),
          d,
        );
      };
  }

  // ---- memory -------------------------------------------------------------------------------

  allocate(bytes: number): CudaStorage {
    return new CudaStorage(bytes, this.addon.alloc(bytes));
  }
  release(storage: Storage): void {
    const s = storage as CudaStorage;
    if (s.released) throw new Error('cuda release: storage was already released');
    s.released = true;
    this.addon.release(s.ptr);
  }
  upload(dst: Tensor, src: RawArray): void {
    if (src.length !== dst.size)
      throw new RangeError(`cuda upload: ${src.length} elements for a tensor of ${dst.size}`);
    this.addon.upload(ptr(dst), src);
  }
  async download(src: Tensor): Promise<RawArray> {
    return this.downloadSync(src);
  }
  downloadSync(src: Tensor): RawArray {
    const out = rawArrayFor(src.dtype, new ArrayBuffer(src.bytes), 0, src.size);
    this.addon.download(ptr(src), out);
    return out;
  }
  memory(): MemoryStats {
    const [current, peak, reserved] = this.addon.memory();
    return { current, peak, reserved };
  }
  resetPeak(): void {
    this.addon.resetPeak();
  }
  /** Returns cached device blocks to the driver (memory held by live tensors stays). */
  emptyCache(): void {
    this.addon.emptyCache();
  }
  async synchronize(): Promise<void> {
    this.addon.synchronize();
  }

  // ---- kernels ------------------------------------------------------------------------------

  cast(out: Tensor, x: Tensor): void {
    this.addon.cast(ptr(out), code(out), ptr(x), code(x), x.size);
  }
  fill(out: Tensor, value: number): void {
    this.addon.fill(ptr(out), code(out), out.size, value);
  }
  unary(out: Tensor, op: UnaryOp, x: Tensor): void {
    this.addon.unary(ptr(out), ptr(x), code(x), x.size, UNARY_CODE[op]);
  }
  binary(out: Tensor, op: BinaryOp, a: Tensor, b: Tensor, d: BroadcastDesc): void {
    this.addon.binary(ptr(out), ptr(a), ptr(b), code(a), BINARY_CODE[op], d.outShape, d.aStrides, d.bStrides);
  }
  affine(out: Tensor, x: Tensor, scale: number, shift: number): void {
    this.addon.affine(ptr(out), ptr(x), code(x), x.size, scale, shift);
  }
  matmul(out: Tensor, a: Tensor, b: Tensor, bias: Tensor | null, d: MatmulDesc): void {
    if (d.k === 0) {
      // An empty sum: cuBLASLt rejects k = 0, the answer is the bias (or zeros).
      this.fill(out, 0);
      if (bias) {
        const shape = [d.batch * d.m, d.n];
        this.binary(out, 'add', out, bias, { outShape: shape, aStrides: [d.n, 1], bStrides: [0, 1] });
      }
      return;
    }
    this.addon.matmul(
      ptr(out),
      ptr(a),
      ptr(b),
      ptrOr0(bias),
      code(a),
      d.batch,
      d.m,
      d.n,
      d.k,
      d.transA,
      d.transB,
      d.bBatched,
      d.alpha,
      code(out),
    );
  }
  rmsNorm(
    out: Tensor,
    x: Tensor,
    weight: Tensor | null,
    gate: Tensor | null,
    d: NormDesc,
    residual: ResidualAdd | null = null,
  ): void {
    if (gate && gate.dtype !== x.dtype)
      throw new TypeError(`cuda rmsNorm: gate ${gate.dtype} must have the input's dtype ${x.dtype}`);
    this.addon.rmsNorm(
      ptr(out),
      ptr(x),
      code(x),
      ptrOr0(weight),
      DTYPE_CODE[weight?.dtype ?? x.dtype],
      ptrOr0(gate),
      d.rows,
      d.dim,
      d.groupSize,
      d.eps,
      d.normBeforeGate,
      ptrOr0(residual?.add ?? null),
      ptrOr0(residual?.sum ?? null),
    );
  }
  layerNorm(
    out: Tensor,
    x: Tensor,
    weight: Tensor | null,
    bias: Tensor | null,
    d: NormDesc,
    residual: ResidualAdd | null = null,
  ): void {
    if (weight && bias && weight.dtype !== bias.dtype)
      throw new TypeError(`cuda layerNorm: weight ${weight.dtype} and bias ${bias.dtype} differ`);
    const paramDtype = (weight ?? bias)?.dtype ?? x.dtype;
    this.addon.layerNorm(
      ptr(out),
      ptr(x),
      code(x),
      ptrOr0(weight),
      ptrOr0(bias),
      DTYPE_CODE[paramDtype],
      d.rows,
      d.dim,
      d.eps,
      ptrOr0(residual?.add ?? null),
      ptrOr0(residual?.sum ?? null),
    );
  }
  softmax(out: Tensor, x: Tensor, rows: number, dim: number): void {
    this.addon.softmax(ptr(out), ptr(x), code(x), rows, dim);
  }
  rotary(out: Tensor, x: Tensor, cos: Tensor, sin: Tensor, d: RotaryDesc): void {
    this.addon.rotary(
      ptr(out),
      ptr(x),
      code(x),
      ptr(cos),
      ptr(sin),
      d.batch,
      d.seq,
      d.heads,
      d.headDim,
      d.rotaryDim,
      d.tableShared,
    );
  }
  ropeTable(cos: Tensor, sin: Tensor, positions: Tensor, invFreq: Tensor, rowOf: Tensor): void {
    this.addon.ropeTable(
      ptr(cos),
      ptr(sin),
      ptr(positions),
      ptr(invFreq),
      ptr(rowOf),
      positions.shape[1],
      invFreq.size,
    );
  }
  attention(
    out: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | null,
    weights: Tensor | null,
    d: AttentionDesc,
  ): void {
    if (!this.addon.attention) throw notBuilt('attention', 'attention.cu');
    // bf16 at another head dim (SigLIP so400m's 72) would take the f32 one-warp-per-row kernel: zero-pad the
    // heads to the next tensor-core size instead (zero channels add nothing to Q·Kᵀ; the scale stays). Not for
    // one query row (a decode step): that kernel suits it, and padding would copy the whole cache per token.
    const padTo = FLASH_HEAD_DIMS.find((n) => n >= d.d);
    if (q.dtype === 'bf16' && !weights && d.d === d.dv && padTo && padTo !== d.d && d.sq > 1) {
      const pad = (t: Tensor) => {
        const p = full(this, [...t.shape.slice(0, -1), padTo], 0, t.dtype);
        this.writeSlice(p, t, t.size / d.d, padTo, 1, 0);
        return p;
      };
      using qp = pad(q);
      using kp = pad(k);
      using vp = pad(v);
      using op = empty(this, [...out.shape.slice(0, -1), padTo], out.dtype);
      this.attention(op, qp, kp, vp, mask, null, { ...d, d: padTo, dv: padTo });
      this.readSlice(out, op, out.size / d.d, padTo, 1, 0);
      return;
    }
    const maskBatch = mask ? (mask.rank === 3 ? mask.shape[0] : 1) : 0;
    this.addon.attention(
      ptr(out),
      ptr(q),
      ptr(k),
      ptr(v),
      ptrOr0(mask),
      maskBatch,
      ptrOr0(weights),
      code(q),
      d,
      d.segments,
    );
  }
  conv1d(
    y: Tensor,
    stateOut: Tensor | null,
    x: Tensor,
    weight: Tensor,
    bias: Tensor | null,
    state: Tensor | null,
    d: Conv1dDesc,
  ): void {
    if (!this.addon.conv1d) throw notBuilt('conv1d', 'conv1d.cu');
    if (bias && bias.dtype !== weight.dtype)
      throw new TypeError(`cuda conv1d: bias ${bias.dtype} and weight ${weight.dtype} differ`);
    this.addon.conv1d(
      ptr(y),
      ptrOr0(stateOut),
      ptr(x),
      ptr(weight),
      ptrOr0(bias),
      ptrOr0(state),
      code(x),
      code(weight),
      d,
    );
  }
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
    d: SsdDesc,
  ): void {
    if (!this.addon.ssdScan) throw notBuilt('ssdScan', 'ssd.cu');
    this.addon.ssdScan(
      ptr(y),
      ptrOr0(stateOut),
      ptr(x),
      ptr(dt),
      ptr(A),
      ptr(B),
      ptr(C),
      ptrOr0(D),
      D ? code(D) : 0,
      ptrOr0(state),
      code(x),
      d,
    );
  }
  ssmStep(
    y: Tensor,
    state: Tensor,
    x: Tensor,
    dt: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | null,
    d: SsdDesc,
  ): void {
    if (!this.addon.ssmStep) throw notBuilt('ssmStep', 'ssd.cu');
    this.addon.ssmStep(
      ptr(y),
      ptr(state),
      ptr(x),
      ptr(dt),
      ptr(A),
      ptr(B),
      ptr(C),
      ptrOr0(D),
      D ? code(D) : 0,
      code(x),
      d,
    );
  }
  embedding(out: Tensor, table: Tensor, ids: Tensor): void {
    this.addon.embedding(
      ptr(out),
      ptr(table),
      code(table),
      ptr(ids),
      ids.size,
      table.shape[0],
      table.shape[1],
    );
  }
  embeddingBag(out: Tensor, table: Tensor, ids: Tensor, offsets: Tensor, mean: boolean): void {
    this.addon.embeddingBag(
      ptr(out),
      ptr(table),
      code(table),
      ptr(ids),
      ids.size,
      ptr(offsets),
      offsets.size - 1,
      table.shape[0],
      table.shape[1],
      mean ? 1 : 0,
    );
  }
  writeSlice(out: Tensor, x: Tensor, outer: number, outDim: number, inner: number, start: number): void {
    const xDim = x.size / (outer * inner || 1);
    this.addon.writeSlice(ptr(out), ptr(x), BYTES_PER_ELEMENT[x.dtype], outer, outDim, xDim, inner, start);
  }
  readSlice(out: Tensor, x: Tensor, outer: number, xDim: number, inner: number, start: number): void {
    const outDim = out.size / (outer * inner || 1);
    this.addon.readSlice(ptr(out), ptr(x), BYTES_PER_ELEMENT[x.dtype], outer, xDim, outDim, inner, start);
  }
  permute(out: Tensor, x: Tensor, perm: readonly number[]): void {
    this.addon.permute(ptr(out), ptr(x), BYTES_PER_ELEMENT[x.dtype], x.shape, perm);
  }
  flip(out: Tensor, x: Tensor, outer: number, dim: number, inner: number): void {
    this.addon.flip(ptr(out), ptr(x), BYTES_PER_ELEMENT[x.dtype], outer, dim, inner);
  }
  reduce(
    out: Tensor,
    op: 'sum' | 'mean' | 'max',
    x: Tensor,
    outer: number,
    dim: number,
    inner: number,
  ): void {
    this.addon.reduce(ptr(out), ptr(x), code(x), REDUCE_CODE[op], outer, dim, inner);
  }
  argmax(out: Tensor, x: Tensor, rows: number, dim: number): void {
    this.addon.argmax(ptr(out), ptr(x), code(x), rows, dim);
  }
  sample(out: Tensor, logits: Tensor, uniforms: Float32Array, previous: Tensor | null, d: SampleDesc): void {
    this.addon.sample(
      ptr(out),
      ptr(logits),
      code(logits),
      uniforms,
      ptrOr0(previous),
      previous ? previous.size / (d.rows || 1) : 0,
      d.rows,
      d.vocab,
      d.temperature,
      d.topK,
      d.topP,
      d.repetitionPenalty,
    );
  }

  // ---- backward kernels, losses, AdamW (native/cuda/grad.cu) -----------------------------------

  ssdScanBackward(g: SsdGrads, dy: Tensor, dStateOut: Tensor | null, i: SsdTensors, d: SsdDesc): void {
    const f = this.addon.ssdScanBackward;
    if (!f) throw notBuilt('ssdScanBackward', 'grad.cu');
    if (i.B.dtype !== i.x.dtype || i.C.dtype !== i.x.dtype)
      throw new TypeError(`cuda ssdScanBackward: B/C ${i.B.dtype} must have x's dtype ${i.x.dtype}`);
    f(
      ptr(g.dx),
      ptr(g.ddt),
      ptr(g.dA),
      ptr(g.dB),
      ptr(g.dC),
      ptrOr0(g.dD),
      ptrOr0(g.dState),
      ptr(dy),
      ptrOr0(dStateOut),
      ptr(i.x),
      ptr(i.dt),
      ptr(i.A),
      ptr(i.B),
      ptr(i.C),
      ptrOr0(i.D),
      i.D ? code(i.D) : 0,
      ptrOr0(i.state),
      code(i.x),
      d,
    );
  }
  conv1dBackward(
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
    d: Conv1dDesc,
  ): void {
    const f = this.addon.conv1dBackward;
    if (!f) throw notBuilt('conv1dBackward', 'grad.cu');
    if (bias && bias.dtype !== weight.dtype)
      throw new TypeError(`cuda conv1dBackward: bias ${bias.dtype} and weight ${weight.dtype} differ`);
    f(
      ptr(dx),
      ptr(dWeight),
      ptrOr0(dBias),
      ptrOr0(dState),
      ptr(dy),
      ptrOr0(dStateOut),
      ptr(x),
      ptr(weight),
      ptrOr0(bias),
      ptrOr0(state),
      code(x),
      code(weight),
      d,
    );
  }
  attentionBackward(
    dq: Tensor,
    dk: Tensor,
    dv: Tensor,
    dOut: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    out: Tensor,
    mask: Tensor | null,
    d: AttentionDesc,
  ): void {
    const f = this.addon.attentionBackward;
    if (!f) throw notBuilt('attentionBackward', 'grad.cu');
    const ranges = attentionKeyRanges(d);
    const maskBatch = mask ? (mask.rank === 3 ? mask.shape[0] : 1) : 0;
    f(
      ptr(dq),
      ptr(dk),
      ptr(dv),
      ptr(dOut),
      ptr(q),
      ptr(k),
      ptr(v),
      ptr(out),
      ptrOr0(mask),
      maskBatch,
      code(q),
      d,
      ranges,
      attentionQueryRanges(d, ranges),
    );
  }
  rmsNormBackward(
    dx: Tensor,
    dWeight: Tensor | null,
    dGate: Tensor | null,
    dy: Tensor,
    x: Tensor,
    weight: Tensor | null,
    gate: Tensor | null,
    dSum: Tensor | null,
    d: NormDesc,
  ): void {
    const f = this.addon.rmsNormBackward;
    if (!f) throw notBuilt('rmsNormBackward', 'grad.cu');
    if (gate && gate.dtype !== x.dtype)
      throw new TypeError(`cuda rmsNormBackward: gate ${gate.dtype} must have the input's dtype ${x.dtype}`);
    f(
      ptr(dx),
      ptrOr0(dWeight),
      ptrOr0(dGate),
      ptr(dy),
      ptr(x),
      ptrOr0(weight),
      weight ? code(weight) : 0,
      ptrOr0(gate),
      ptrOr0(dSum),
      d.rows,
      d.dim,
      d.groupSize,
      d.eps,
      d.normBeforeGate,
      code(x),
    );
  }
  layerNormBackward(
    dx: Tensor,
    dWeight: Tensor | null,
    dBias: Tensor | null,
    dy: Tensor,
    x: Tensor,
    weight: Tensor | null,
    dSum: Tensor | null,
    d: NormDesc,
  ): void {
    const f = this.addon.layerNormBackward;
    if (!f) throw notBuilt('layerNormBackward', 'grad.cu');
    f(
      ptr(dx),
      ptrOr0(dWeight),
      ptrOr0(dBias),
      ptr(dy),
      ptr(x),
      ptrOr0(weight),
      weight ? code(weight) : 0,
      ptrOr0(dSum),
      d.rows,
      d.dim,
      d.eps,
      code(x),
    );
  }
  embeddingBackward(dTable: Tensor, dOut: Tensor, ids: Tensor): void {
    const f = this.addon.embeddingBackward;
    if (!f) throw notBuilt('embeddingBackward', 'grad.cu');
    f(ptr(dTable), ptr(dOut), code(dOut), ptr(ids), ids.size, dTable.shape[0], dTable.shape[1]);
  }
  crossEntropy(
    loss: Tensor,
    dLogits: Tensor | null,
    logits: Tensor,
    targets: Tensor,
    d: CrossEntropyDesc,
  ): void {
    const f = this.addon.crossEntropy;
    if (!f) throw notBuilt('crossEntropy', 'grad.cu');
    f(
      ptr(loss),
      ptrOr0(dLogits),
      ptr(logits),
      code(logits),
      ptr(targets),
      d.rows,
      d.vocab,
      d.ignoreIndex,
      d.gradScale,
    );
  }
  klTopK(
    loss: Tensor,
    dLogits: Tensor | null,
    logits: Tensor,
    teacherIds: Tensor,
    teacherValues: Tensor,
    d: KlTopKDesc,
  ): void {
    const f = this.addon.klTopK;
    if (!f) throw notBuilt('klTopK', 'grad.cu');
    f(
      ptr(loss),
      ptrOr0(dLogits),
      ptr(logits),
      code(logits),
      ptr(teacherIds),
      ptr(teacherValues),
      d.rows,
      d.vocab,
      d.k,
      d.gradScale,
    );
  }
  adamwSteps(slots: readonly AdamWSlot[], d: AdamWDesc): void {
    const f = this.addon.adamwSteps;
    if (!f) throw notBuilt('adamwSteps', 'grad.cu');
    const table = new Float64Array(slots.length * 7);
    for (const [i, s] of slots.entries())
      table.set(
        [ptr(s.param), ptr(s.m), ptr(s.v), ptr(s.grad), ptrOr0(s.copy), s.param.size, s.weightDecay],
        i * 7,
      );
    const copy = slots.find((s) => s.copy)?.copy ?? null;
    f(table, ptrOr0(copy), copy ? code(copy) : 0, d.lr, d.beta1, d.beta2, d.eps, d.step, d.gradScale);
  }
  sumSquares(out: Tensor, xs: readonly Tensor[]): void {
    const f = this.addon.sumSquares;
    if (!f) throw notBuilt('sumSquares', 'grad.cu');
    const table = new Float64Array(xs.length * 6);
    xs.forEach((x, i) => {
      table[i * 6 + 3] = ptr(x);
      table[i * 6 + 5] = x.size;
    });
    f(ptr(out), table);
  }
}
