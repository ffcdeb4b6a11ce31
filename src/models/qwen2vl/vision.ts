/**
 * The Qwen2-VL vision transformer (`Qwen2VisionTransformerPretrainedModel`): patch embedding of rows of
 * C·T·P·P pixel values, pre-norm blocks (LayerNorm 1e-6, fused qkv, quick-GELU MLP) with 2-D rotary
 * embedding, attention confined to each temporal group of patches, and the 2×2 patch merger.
 */
import { InputError, ModelError } from '../../errors.js';
import { Linear } from '../../nn/linear.js';
import { MLP } from '../../nn/mlp.js';
import { LayerNorm } from '../../nn/norm.js';
import type { ParamStore } from '../../nn/params.js';
import { rotaryTensors, visionRope2d } from '../../nn/rotary.js';
import type { DType } from '../../runtime/dtype.js';
import * as ops from '../../runtime/ops.js';
import { tidy } from '../../runtime/scope.js';
import type { Tensor } from '../../runtime/tensor.js';
import { runAtOnce, runInPieces } from '../pieces.js';
import { type Qwen2VLVisionConfig, visionTowerProblem } from './config.js';
import { PATCH_EMBED } from './weights.js';

/** [t, h, w] in patches (h, w multiples of the merge size). */
export type GridTHW = readonly [number, number, number];

const LN_EPS = 1e-6;

class VisionAttention implements Disposable {
  /** q, k and v: row views of the fused qkv (rows [q | k | v], each [heads][headDim]), projected one by one
   * so that no copy splits the packed output. */
  readonly parts: readonly [Linear, Linear, Linear];

  constructor(
    readonly qkv: Linear,
    readonly proj: Linear,
    readonly numHeads: number,
  ) {
    const dim = qkv.inFeatures;
    this.parts = [qkv.rows(0, dim), qkv.rows(dim, 2 * dim), qkv.rows(2 * dim, 3 * dim)];
  }

  forward(x: Tensor, rope: { cos: Tensor; sin: Tensor }, segments: readonly number[]): Tensor {
    return tidy(() => {
      const [n, dim] = x.shape;
      const headDim = dim / this.numHeads;
      const [q, k, v] = this.parts.map((l) => l.forward(x).reshape([n, this.numHeads, headDim]));
      const out = ops.attention(ops.rotary(q, rope.cos, rope.sin), ops.rotary(k, rope.cos, rope.sin), v, {
        segments,
      }).out;
      return this.proj.forward(out.reshape([n, dim]));
    });
  }

  [Symbol.dispose](): void {
    for (const l of [this.qkv, ...this.parts, this.proj]) l[Symbol.dispose]();
  }
}

class VisionBlock implements Disposable {
  constructor(
    readonly norm1: LayerNorm,
    readonly attn: VisionAttention,
    readonly norm2: LayerNorm,
    readonly mlp: MLP,
  ) {}

  /**
   * One block on the residual stream x + r, where r (the previous block's MLP output) is still to be added:
   * each residual add happens inside the next LayerNorm's pass. Returns the stream and this block's r.
   */
  forward(
    x: Tensor,
    r: Tensor | null,
    rope: { cos: Tensor; sin: Tensor },
    segments: readonly number[],
  ): { x: Tensor; r: Tensor } {
    return tidy(() => {
      const a = this.norm1.addForward(x, r);
      const b = this.norm2.addForward(a.sum, this.attn.forward(a.out, rope, segments));
      return { x: b.sum, r: this.mlp.forward(b.out) };
    });
  }

  [Symbol.dispose](): void {
    for (const m of [this.norm1, this.attn, this.norm2, this.mlp]) m[Symbol.dispose]();
  }
}

/** ln_q → view 4 neighbouring patches as one row → Linear → exact GELU → Linear. */
class PatchMerger implements Disposable {
  constructor(
    readonly ln_q: LayerNorm,
    readonly mlp: MLP,
    readonly unit: number,
  ) {}

  /** Merged tokens of the stream x + r (the last block's MLP output, added inside ln_q's pass). */
  forward(x: Tensor, r: Tensor | null): Tensor {
    return tidy(() => {
      const [n, dim] = x.shape;
      return this.mlp.forward(this.ln_q.addForward(x, r).out.reshape([n / this.unit, dim * this.unit]));
    });
  }

  [Symbol.dispose](): void {
    this.ln_q[Symbol.dispose]();
    this.mlp[Symbol.dispose]();
  }
}

/**
 * Patch (row, col) positions in the processor's token order [t][h/m][w/m][m][m], and the attention segments
 * (one per temporal group of each image/video).
 */
export function visionLayout(grids: readonly GridTHW[], merge: number) {
  const total = grids.reduce((n, [t, h, w]) => n + t * h * w, 0);
  const rows = new Int32Array(total);
  const cols = new Int32Array(total);
  const segments = [0];
  let i = 0;
  for (const [t, h, w] of grids)
    for (let ti = 0; ti < t; ti++) {
      for (let bh = 0; bh < h / merge; bh++)
        for (let bw = 0; bw < w / merge; bw++)
          for (let ih = 0; ih < merge; ih++)
            for (let iw = 0; iw < merge; iw++) {
              rows[i] = bh * merge + ih;
              cols[i] = bw * merge + iw;
              i++;
            }
      segments.push(i);
    }
  return { rows, cols, segments };
}

export class Qwen2VisionTransformer implements Disposable {
  constructor(
    readonly config: Qwen2VLVisionConfig,
    readonly patch_embed: Linear,
    readonly blocks: VisionBlock[],
    readonly merger: PatchMerger,
  ) {}

  static load(p: ParamStore, config: Qwen2VLVisionConfig): Qwen2VisionTransformer {
    const blocks: VisionBlock[] = [];
    for (let i = 0; i < config.depth; i++) {
      const b = `visual.blocks.${i}`;
      blocks.push(
        new VisionBlock(
          LayerNorm.load(p, `${b}.norm1`, LN_EPS),
          new VisionAttention(
            Linear.load(p, `${b}.attn.qkv`, true),
            Linear.load(p, `${b}.attn.proj`, true),
            config.num_heads,
          ),
          LayerNorm.load(p, `${b}.norm2`, LN_EPS),
          MLP.load(p, `${b}.mlp`, config.hidden_act),
        ),
      );
    }
    const merger = new PatchMerger(
      LayerNorm.load(p, 'visual.merger.ln_q', LN_EPS),
      MLP.load(p, 'visual.merger.mlp', 'gelu', ['0', '2']),
      config.spatial_merge_size ** 2,
    );
    return new Qwen2VisionTransformer(config, new Linear(p.take(PATCH_EMBED)), blocks, merger);
  }

  /** A tower whose config it cannot run (transformers builds it too, and runs only text) refuses pixels. */
  assertRuns(): void {
    const problem = visionTowerProblem(this.config);
    if (problem)
      throw new ModelError(`Qwen2-VL vision tower: ${problem}; this checkpoint runs text prompts only`);
  }

  /** Values per patch row: C·T·P·P (1176 for Qwen2-VL). */
  get patchDim(): number {
    const c = this.config;
    return c.in_channels * c.temporal_patch_size * c.patch_size ** 2;
  }

  /**
   * pixels [patches, C·T·P·P] in the processor's order for the given grids → merged tokens
   * [patches / merge², hidden_size].
   */
  forward(pixels: Tensor, grids: readonly GridTHW[]): Tensor {
    this.assertRuns();
    const c = this.config;
    const { rows, cols, segments } = visionLayout(grids, c.spatial_merge_size);
    if (pixels.rank !== 2 || pixels.shape[0] !== rows.length || pixels.shape[1] !== this.patchDim)
      throw new InputError(
        `vision: pixel values [${pixels.shape.join(', ')}] do not match the grids (${rows.length} patches of ${this.patchDim} values)`,
      );
    const headDim = c.embed_dim / c.num_heads;
    return tidy(() => {
      const rope = rotaryTensors(pixels.backend, visionRope2d(rows, cols, headDim, c.rope_theta));
      let x = this.patch_embed.forward(pixels);
      let r: Tensor | null = null;
      for (const block of this.blocks) {
        const next = block.forward(x, r, rope, segments);
        x.dispose(); // one block's activations alive, not all of them
        r?.dispose();
        ({ x, r } = next);
      }
      return this.merger.forward(x, r);
    });
  }

  [Symbol.dispose](): void {
    this.patch_embed[Symbol.dispose]();
    for (const b of this.blocks) b[Symbol.dispose]();
    this.merger[Symbol.dispose]();
  }
}

/**
 * Vision tokens [Σ t·h·w / merge², hidden] of processed pixels. Temporal groups never attend to each other,
 * so the encoder runs over chunks of whole groups (at most `maxPatchesPerChunk` patches, unless one group
 * is larger): the result is the same and memory stays bounded for long videos.
 */
export function encodeVisionChunked(
  visual: Qwen2VisionTransformer,
  pixels: Float32Array,
  grids: readonly GridTHW[],
  dtype: DType,
  maxPatchesPerChunk = 16384,
): Tensor {
  visual.assertRuns();
  const rowLen = visual.patchDim;
  const patches = grids.reduce((n, [t, h, w]) => n + t * h * w, 0);
  if (pixels.length !== patches * rowLen)
    throw new InputError(
      `pixel values: ${pixels.length} values, but the grids [${grids.map((g) => g.join('x')).join(', ')}] need ${patches} rows of ${rowLen}`,
    );
  const backend = visual.patch_embed.weight.backend;
  const unit = visual.config.spatial_merge_size ** 2;
  const out = ops.empty(backend, [patches / unit, visual.config.hidden_size], dtype);
  let row = 0;
  let chunk: GridTHW[] = [];
  let chunkRows = 0;
  const flush = () => {
    if (!chunkRows) return;
    tidy(() => {
      const px = pixels.subarray(row * rowLen, (row + chunkRows) * rowLen);
      // Uploaded as f32 and narrowed on the device: a host-side bf16 conversion costs more than the encoder.
      const f32 = ops.tensor(backend, px, [chunkRows, rowLen], 'f32');
      const feats = visual.forward(dtype === 'f32' ? f32 : ops.cast(f32, dtype), chunk);
      ops.writeSlice(out, feats, 0, row / unit);
    });
    row += chunkRows;
    chunk = [];
    chunkRows = 0;
  };
  for (const [t, h, w] of grids)
    for (let g = 0; g < t; g++) {
      if (chunkRows && chunkRows + h * w > maxPatchesPerChunk) flush();
      chunk.push([1, h, w]);
      chunkRows += h * w;
    }
  flush();
  return out;
}

/** Pixels of whole temporal groups of one video: rows of C·T·P·P values for `groups`·h·w patches. */
export interface PixelBatch {
  pixels: Float32Array;
  groups: number;
}

/**
 * Vision tokens of a long video whose pixels arrive in batches (decoded and preprocessed a few frames at a
 * time): each batch is encoded and written into one preallocated output, so neither the pixels nor the
 * encoder's activations of the whole video are ever held. `grid` is the whole video's patch grid [t, h, w].
 */
export function encodeVisionStream(
  visual: Qwen2VisionTransformer,
  batches: Iterable<PixelBatch>,
  grid: GridTHW,
  dtype: DType,
  maxPatchesPerChunk = 16384,
): Tensor {
  return runAtOnce(visionStream(visual, batches, grid, dtype, maxPatchesPerChunk));
}

/** `encodeVisionStream` with `pause` awaited between two batches (chunked prefill). */
export function encodeVisionStreamInPieces(
  visual: Qwen2VisionTransformer,
  batches: Iterable<PixelBatch>,
  grid: GridTHW,
  dtype: DType,
  pause: () => Promise<void>,
  maxPatchesPerChunk = 16384,
): Promise<Tensor> {
  return runInPieces(visionStream(visual, batches, grid, dtype, maxPatchesPerChunk), pause);
}

function* visionStream(
  visual: Qwen2VisionTransformer,
  batches: Iterable<PixelBatch>,
  grid: GridTHW,
  dtype: DType,
  maxPatchesPerChunk: number,
): Generator<void, Tensor> {
  const [t, h, w] = grid;
  const unit = visual.config.spatial_merge_size ** 2;
  const perGroup = (h * w) / unit;
  const out = ops.empty(visual.patch_embed.weight.backend, [t * perGroup, visual.config.hidden_size], dtype);
  let group = 0;
  let done = false;
  try {
    for (const { pixels, groups } of batches) {
      if (group) yield;
      if (group + groups > t)
        throw new InputError(`vision stream: more than the ${t} temporal groups of the grid arrived`);
      const feats = encodeVisionChunked(visual, pixels, [[groups, h, w]], dtype, maxPatchesPerChunk);
      ops.writeSlice(out, feats, 0, group * perGroup);
      feats.dispose();
      group += groups;
    }
    if (group !== t)
      throw new InputError(`vision stream: ${group} of the grid's ${t} temporal groups arrived`);
    done = true;
  } finally {
    if (!done) out.dispose(); // an error, or stopped while paused
  }
  return out;
}
