/**
 * TimeViper's LLM: Nemotron-H's blocks with the drop stages of pdrop.ts between them, prefill only. The stack is
 * cut into segments at the stage layers; each segment keeps its own HybridCache, because after a stage the
 * later attention layers hold the shorter sequence (Mamba states are recurrent and unaffected). A decode step
 * runs one token through every segment.
 *
 * A stage, on the residual stream coming out of block L−1 (vision tokens at [start, start + n)):
 *   1. picks the `keep` vision tokens to keep (uniform, or by the last token's attention in block L);
 *   2. with TransV, updates every token after the vision block (the instruction) by
 *      instruction + tanh(α_s) · CrossAttention(instruction → dropped vision tokens), raw stream, no norm;
 *   3. rebuilds the sequence as [text before, kept vision tokens in order, instruction].
 * For an answer's relevance (relevance.ts) a prefill can also report, per TransV stage, where the last prompt
 * token's transfer looked: its cross-attention mass over the dropped tokens.
 *
 * The gate tanh(α_s) is a number read at load for inference; a training forward (src/train/timeviper.ts) loads
 * with `alphaTensor`, keeping α's entries as tensors whose tanh is an op of the forward, so α gets a gradient.
 */
import { InputError } from '../../errors.js';
import { SelfAttention } from '../../nn/attention.js';
import { AttentionProbe } from '../../nn/attention-probe.js';
import { type CacheLayer, HybridCache } from '../../nn/cache.js';
import { CrossAttention } from '../../nn/cross-attention.js';
import { Linear } from '../../nn/linear.js';
import { RMSNorm } from '../../nn/norm.js';
import type { ParamStore } from '../../nn/params.js';
import { bf16ToF32, type DType, f16ToF32, f32ToBf16, f32ToF16 } from '../../runtime/dtype.js';
import * as ops from '../../runtime/ops.js';
import { tidy } from '../../runtime/scope.js';
import type { Tensor } from '../../runtime/tensor.js';
import { attentionConfig, cast, NemotronHBlock } from '../nemotron_h/block.js';
import type { BlockChar } from '../nemotron_h/config.js';
import type { TimeViperConfig } from './config.js';
import { stageCounts, topKeep, uniformKeep } from './pdrop.js';
import { ALPHA, LLM_PREFIX, mergeModule } from './weights.js';

/** Where the vision tokens sit in a prefill: the first one's position and how many (before any stage). */
export interface VisionSpan {
  start: number;
  count: number;
}

/** A TransV stage's gate: tanh(α_s) as a number, or α_s itself as a [1] tensor (tanh taken in the forward). */
export type Gate = number | Tensor;

/** What a prefill leaves: the residual stream after the last block, and what the stages did. */
export interface LMRun {
  /** [rows, hidden]: the text before the vision tokens, the vision tokens the stages kept, the rest. */
  h: Tensor;
  kept: number[][];
  transfer: (Float32Array | null)[];
}

interface Segment {
  /** Blocks [start, end). */
  start: number;
  end: number;
  /** Each block's layer in this segment's cache (null: an MLP block). */
  cacheIndex: (number | null)[];
  cacheLayers: CacheLayer[];
}

/** A value rounded to `dtype` as the official code's casts do (f32 is exact). */
function roundTo(dtype: DType, v: number): number {
  if (dtype === 'bf16') return bf16ToF32(f32ToBf16(v));
  if (dtype === 'f16') return f16ToF32(f32ToF16(v));
  return Math.fround(v);
}

export class TimeViperLM implements Disposable {
  readonly segments: Segment[] = [];
  readonly residualDtype: DType;

  constructor(
    readonly config: TimeViperConfig,
    readonly embeddings: Tensor,
    readonly layers: NemotronHBlock[],
    readonly norm_f: RMSNorm,
    readonly lm_head: Linear,
    /** Per stage: its cross-attention (TransV) or null (drop only). */
    readonly merges: (CrossAttention | null)[],
    /** Per stage: its gate (0 without transfer). */
    readonly gates: Gate[],
  ) {
    const c = config.llm;
    const cuts = [0, ...config.stages.map((s) => s.layer), layers.length];
    for (let s = 0; s + 1 < cuts.length; s++) {
      const seg: Segment = { start: cuts[s], end: cuts[s + 1], cacheIndex: [], cacheLayers: [] };
      for (let i = seg.start; i < seg.end; i++) {
        const kind = layers[i].kind;
        if (kind === '-') seg.cacheIndex.push(null);
        else {
          seg.cacheLayers.push(
            kind === '*'
              ? { kind: 'attention', kvHeads: c.num_key_value_heads, headDim: c.head_dim }
              : { kind: 'mamba' },
          );
          seg.cacheIndex.push(seg.cacheLayers.length - 1);
        }
      }
      this.segments.push(seg);
    }
    this.residualDtype = c.residual_in_fp32 ? 'f32' : embeddings.dtype;
  }

  /** `alphaTensor`: keep α as tensors (the gates of a training forward) rather than reading it. */
  static async load(p: ParamStore, config: TimeViperConfig, alphaTensor = false): Promise<TimeViperLM> {
    const c = config.llm;
    const b = `${LLM_PREFIX}backbone`;
    const layers = [...c.hybrid_override_pattern].map((ch, i) =>
      NemotronHBlock.load(p, `${b}.layers.${i}`, ch as BlockChar, c),
    );
    const merges = config.stages.map((s, j) =>
      s.transfer ? CrossAttention.load(p, mergeModule(j), attentionConfig(c)) : null,
    );
    let gates: Gate[] = config.stages.map(() => 0);
    if (merges.some((m) => m)) {
      const t = p.take(ALPHA);
      // As the official code: α is indexed by stage number (its length counts only the stages with a module).
      const need = config.stages.reduce((n, s, j) => (s.transfer ? j + 1 : n), 0);
      if (t.shape[0] < need) {
        t.dispose();
        throw new InputError(`TimeViper: alpha has ${t.shape[0]} entries, too few for the TransV stages`);
      }
      if (alphaTensor) gates = config.stages.map((s, j) => (s.transfer ? t.narrow(j, j + 1) : 0));
      else {
        const alpha = await t.data();
        gates = config.stages.map((s, j) => (s.transfer ? Math.tanh(alpha[j]) : 0));
      }
      t.dispose();
    }
    return new TimeViperLM(
      config,
      p.take(`${b}.embeddings.weight`),
      layers,
      RMSNorm.load(p, `${b}.norm_f`, c.layer_norm_epsilon),
      Linear.load(p, `${LLM_PREFIX}lm_head`, false),
      merges,
      gates,
    );
  }

  /** Token embeddings [n, hidden] of ids (checked against the vocabulary). */
  embed(ids: ArrayLike<number>): Tensor {
    const vocab = this.config.llm.vocab_size;
    for (let i = 0; i < ids.length; i++)
      if (!Number.isInteger(ids[i]) || ids[i] < 0 || ids[i] >= vocab)
        throw new InputError(`token id ${ids[i]} is outside the vocabulary (0..${vocab - 1})`);
    return tidy(() =>
      ops.embedding(
        this.embeddings,
        ops.tensor(this.embeddings.backend, Int32Array.from(ids), [ids.length], 'i32'),
      ),
    );
  }

  /** One cache per segment, with room for `capacity` tokens each (they grow on demand). */
  newCaches(capacity = 256): HybridCache[] {
    return this.segments.map(
      (s) =>
        new HybridCache(this.embeddings.backend, {
          layers: s.cacheLayers,
          dtype: this.embeddings.dtype,
          capacity,
        }),
    );
  }

  /**
   * Runs embeddings x [n, hidden] (a whole prompt with its vision tokens at `vision`, or one decode token when
   * `vision` is null and the caches hold a prefill). Returns the last row's logits [1, vocab] (f32), the
   * vision positions each stage kept (relative to the stage's vision tokens) and, with `traceTransfer`, each
   * stage's TransV mass per dropped token (in their order; null for a stage that transferred nothing).
   */
  async forward(
    x: Tensor,
    vision: VisionSpan | null,
    caches: HybridCache[] | null,
    traceTransfer = false,
  ): Promise<{ logits: Tensor; kept: number[][]; transfer: (Float32Array | null)[] }> {
    const { h, kept, transfer } = await this.run(x, vision, caches, traceTransfer);
    const n = h.shape[0];
    const logits = tidy(() => this.head(h.narrow(n - 1, n)));
    h.dispose();
    return { logits, kept, transfer };
  }

  /** Logits [rows, vocab] (f32) of residual-stream rows: the final norm and the LM head. */
  head(rows: Tensor): Tensor {
    return tidy(() =>
      cast(this.lm_head.forward(this.norm_f.forward(cast(rows, this.norm_f.weight.dtype))), 'f32'),
    );
  }

  /**
   * The blocks and stages over x (as forward), leaving every row of the stream. `answerRows`: x ends with that
   * many teacher-forced answer tokens (training), so an attention-guided stage's query is the token before them,
   * the last prompt token, as the official training has it.
   */
  async run(
    x: Tensor,
    vision: VisionSpan | null,
    caches: HybridCache[] | null,
    traceTransfer = false,
    answerRows = 0,
  ): Promise<LMRun> {
    if (!x.shape[0]) throw new InputError('TimeViper: no tokens to run');
    const stages = this.config.stages;
    const kept: number[][] = [];
    const transfer: (Float32Array | null)[] = [];
    let h = cast(x, this.residualDtype);
    const own = (next: Tensor) => {
      if (h !== x) h.dispose();
      h = next;
    };
    for (const [s, seg] of this.segments.entries()) {
      // Stages act in prefill only (the official check: more than one token).
      if (s > 0 && vision && h.shape[0] > 1) {
        const stage = stages[s - 1];
        const { current, keep } = stageCounts(stages, s - 1, vision.count);
        if (vision.start + current > h.shape[0])
          throw new InputError(
            `TimeViper: ${current} vision tokens from ${vision.start} overrun the sequence`,
          );
        const picks =
          stage.kind === 'uni'
            ? uniformKeep(current, keep)
            : await this.attentionKeep(stage.layer, h, vision.start, current, keep, answerRows);
        kept.push(picks);
        const moves =
          traceTransfer &&
          this.merges[s - 1] &&
          picks.length < current &&
          vision.start + current < h.shape[0];
        using probe = moves ? new AttentionProbe(0, current - picks.length) : undefined;
        own(this.rebuild(h, vision.start, current, picks, s - 1, probe));
        if (traceTransfer) transfer.push(probe ? await probe.read() : null);
      }
      const cache = caches?.[s] ?? null;
      const n = h.shape[0];
      own(this.blocks(h, seg, cache));
      cache?.commit(n);
    }
    return { h: h === x ? ops.clone(x) : h, kept, transfer };
  }

  /**
   * The blocks over x [batch·n, hidden]: `batch` sequences of n rows one after another, each mixed on its own
   * (a training step's examples, padded at their ends). Only without drop stages, which pick per sequence.
   */
  sequences(x: Tensor, batch: number): Tensor {
    if (this.config.stages.length)
      throw new InputError(
        'TimeViper: sequences in one batch need a model without drop stages (use_pdrop false)',
      );
    const h = cast(x, this.residualDtype);
    try {
      return this.blocks(h, this.segments[0], null, batch);
    } finally {
      if (h !== x) h.dispose();
    }
  }

  /**
   * Segment `seg`'s blocks over the stream h (a new tensor), writing their K/V and states into `cache` when given;
   * without one h may hold `batch` sequences of one length, each mixed on its own.
   */
  private blocks(h: Tensor, seg: Segment, cache: HybridCache | null, batch = 1): Tensor {
    return tidy(() => {
      let y = h;
      for (let i = seg.start; i < seg.end; i++) {
        const layer = seg.cacheIndex[i - seg.start];
        const next = this.layers[i].forward(
          y,
          cache && layer !== null ? { cache, layer } : null,
          null,
          batch,
        );
        if (y !== h) y.dispose();
        y = next;
      }
      return y === h ? ops.clone(h) : y;
    });
  }

  /**
   * The `keep` vision tokens (of `current` from `start`) that the last token (before `answerRows` answer tokens)
   * attends to most in block `layer`: its q_proj/k_proj on the stream as it is (no norm, no positions), softmax
   * over its causal row in f32, cast to the weights' dtype, averaged over heads; the top `keep` in ascending order.
   */
  private async attentionKeep(
    layer: number,
    h: Tensor,
    start: number,
    current: number,
    keep: number,
    answerRows: number,
  ): Promise<number[]> {
    const attn = this.layers[layer].mixer;
    if (!(attn instanceof SelfAttention))
      throw new InputError(`TimeViper: block ${layer} is not an attention block`);
    const { numHeads, numKvHeads, headDim } = attn.config;
    const dtype = attn.q_proj.weight.dtype;
    const n = h.shape[0] - answerRows;
    const probs = tidy(() => {
      const x = cast(h.narrow(0, n), dtype);
      const q = attn.q_proj.forward(x.narrow(n - 1, n)).reshape([1, 1, numHeads, headDim]);
      const k = attn.k_proj.forward(x).reshape([1, n, numKvHeads, headDim]);
      return ops.attention(q, k, k, { returnWeights: true }).weights!;
    });
    const w = (await probs.data()) as Float32Array;
    probs.dispose();
    const scores = new Float64Array(current);
    for (let j = 0; j < current; j++) {
      let sum = 0;
      for (let hd = 0; hd < numHeads; hd++) sum += roundTo(dtype, w[hd * n + start + j]);
      scores[j] = roundTo(dtype, sum / numHeads);
    }
    return topKeep(scores, keep);
  }

  /**
   * [text before, kept vision tokens, instruction (with the dropped tokens transferred into it)]; a `probe`
   * records the last instruction token's TransV attention over the dropped tokens.
   */
  private rebuild(
    h: Tensor,
    start: number,
    current: number,
    picks: number[],
    stage: number,
    probe?: AttentionProbe,
  ): Tensor {
    return tidy(() => {
      const n = h.shape[0];
      const rows = Int32Array.from([
        ...Array.from({ length: start }, (_, i) => i),
        ...picks.map((i) => start + i),
      ]);
      const front = ops.embedding(h, ops.tensor(h.backend, rows, [rows.length], 'i32'));
      let instruction = h.narrow(start + current, n);
      const merge = this.merges[stage];
      const keptSet = new Set(picks);
      const dropped = Int32Array.from(
        Array.from({ length: current }, (_, i) => i)
          .filter((i) => !keptSet.has(i))
          .map((i) => start + i),
      );
      if (merge && dropped.length && instruction.shape[0]) {
        const dtype = merge.q_proj.weight.dtype;
        const source = ops.embedding(h, ops.tensor(h.backend, dropped, [dropped.length], 'i32'));
        const kv = merge.keysValues(cast(source, dtype), null);
        const moved = merge.forward(cast(instruction, dtype), kv, null, probe);
        const m = cast(moved, instruction.dtype);
        const gate = this.gates[stage];
        const gated =
          typeof gate === 'number' ? ops.scale(m, gate) : ops.mul(m, cast(ops.unary('tanh', gate), m.dtype));
        instruction = ops.add(instruction, gated);
      }
      return instruction.shape[0] ? ops.concat([front, instruction], 0) : front;
    });
  }

  [Symbol.dispose](): void {
    for (const l of this.layers) l[Symbol.dispose]();
    for (const m of this.merges) m?.[Symbol.dispose]();
    for (const g of this.gates) if (typeof g !== 'number') g.dispose();
    this.norm_f[Symbol.dispose]();
    this.lm_head[Symbol.dispose]();
    this.embeddings.dispose();
  }
}
