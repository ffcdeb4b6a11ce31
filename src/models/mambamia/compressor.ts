/**
 * The MambaMia compressor (the derivative's `AudioCompressor` around `MambaMia2Model`, the paper's video
 * projector): patch features → input_proj → one shared `query_token` after every k patch tokens, the whole
 * clip as one sequence → L blocks → `model.norm_f` → the query slots → output_proj → the secondary frame
 * sampling s (the query outputs of a subset of frames). k patches in, one token out, then ×s.
 */
import { InputError } from '../../errors.js';
import { Linear } from '../../nn/linear.js';
import { RMSNorm } from '../../nn/norm.js';
import type { ParamSpec, ParamStore } from '../../nn/params.js';
import * as ops from '../../runtime/ops.js';
import { tidy } from '../../runtime/scope.js';
import type { Tensor } from '../../runtime/tensor.js';
import { MambaMiaBlock } from './block.js';
import type { MambaMiaConfig } from './config.js';
import { keptFrames } from './sampling.js';

export class MambaMiaCompressor implements Disposable {
  constructor(
    readonly config: MambaMiaConfig,
    readonly query_token: Tensor,
    readonly input_proj: Linear | null,
    readonly layers: readonly MambaMiaBlock[],
    readonly norm_f: RMSNorm,
    readonly output_proj: Linear | null,
  ) {}

  /** Parameters under `prefix` (with its trailing dot, '' at the root), in the derivative's names. */
  static specs(prefix: string, c: MambaMiaConfig): ParamSpec[] {
    const h = c.hidden_size;
    return [
      { name: `${prefix}query_token`, shape: [h] },
      ...(c.input_size !== h ? Linear.specs(`${prefix}input_proj`, c.input_size, h, true) : []),
      ...Array.from({ length: c.num_hidden_layers }, (_, i) =>
        MambaMiaBlock.specs(`${prefix}model.layers.${i}`, c),
      ).flat(),
      ...RMSNorm.specs(`${prefix}model.norm_f`, h),
      ...(c.output_size !== h ? Linear.specs(`${prefix}output_proj`, h, c.output_size, true) : []),
    ];
  }

  static load(p: ParamStore, prefix: string, c: MambaMiaConfig): MambaMiaCompressor {
    const h = c.hidden_size;
    return new MambaMiaCompressor(
      c,
      p.take(`${prefix}query_token`),
      c.input_size !== h ? Linear.load(p, `${prefix}input_proj`, true) : null,
      Array.from({ length: c.num_hidden_layers }, (_, i) =>
        MambaMiaBlock.load(p, `${prefix}model.layers.${i}`, c),
      ),
      RMSNorm.load(p, `${prefix}model.norm_f`, c.layer_norm_epsilon),
      c.output_size !== h ? Linear.load(p, `${prefix}output_proj`, true) : null,
    );
  }

  /** Tokens out for `frames` frames of `patches` patch tokens each (after the secondary sampling). */
  static tokenCount(c: MambaMiaConfig, frames: number, patches: number): number {
    if (c.mambamia_frame_sampling === 1) return Math.floor((frames * patches) / c.mambamia_chunk_size);
    const kept = keptFrames(frames, c.mambamia_frame_sampling, c.mambamia_frame_sampling_keep).length;
    return kept * Math.floor(patches / c.mambamia_chunk_size);
  }

  /**
   * features [frames, patches, input_size] (one clip, in time order) → tokens [n, output_size]; or `videos`
   * clips of one frame count one after another ([videos·frames, …] → [videos·n, …]), each its own sequence.
   */
  forward(features: Tensor, videos = 1): Tensor {
    const c = this.config;
    const k = c.mambamia_chunk_size;
    const [rows, patches, width] = features.shape;
    if (features.rank !== 3 || width !== c.input_size)
      throw new InputError(
        `MambaMia: features must be [frames, patches, ${c.input_size}], got [${features.shape.join(', ')}]`,
      );
    if (rows % videos)
      throw new InputError(`MambaMia: ${rows} frames do not split into ${videos} clips of one frame count`);
    const frames = rows / videos;
    const total = frames * patches;
    if (total % k)
      throw new InputError(
        `MambaMia: ${frames} frames × ${patches} patches = ${total} tokens are not a multiple of k = ${k} (mambamia_chunk_size); sample a frame count or size that makes them one`,
      );
    if (c.mambamia_frame_sampling < 1 && patches % k)
      throw new InputError(
        `MambaMia: frame sampling needs whole groups per frame, but ${patches} patches per frame are not a multiple of k = ${k}`,
      );
    const h = c.hidden_size;
    const n = total / k;
    return tidy(() => {
      const flat = features.reshape([videos * n, k, width]);
      const patchesIn = this.input_proj ? this.input_proj.forward(flat) : flat;
      const queries = ops.add(
        ops.zeros(features.backend, [videos * n, 1, h], patchesIn.dtype),
        this.query_token.reshape([1, 1, h]),
      );
      let x = ops.concat([patchesIn, queries], 1).reshape([videos, n * (k + 1), h]);
      for (const layer of this.layers) x = layer.forward(x);
      const out = ops
        .slice(this.norm_f.forward(x).reshape([videos * n, k + 1, h]), 1, k, k + 1)
        .reshape([videos * n, h]);
      const kept = c.mambamia_frame_sampling < 1 ? this.sample(out, videos, frames, patches / k) : out;
      return this.output_proj ? this.output_proj.forward(kept) : kept;
    });
  }

  /** The query outputs [videos·kept·perFrame, h] of the frames the secondary sampling keeps in each clip. */
  private sample(out: Tensor, videos: number, frames: number, perFrame: number): Tensor {
    const c = this.config;
    const kept = keptFrames(frames, c.mambamia_frame_sampling, c.mambamia_frame_sampling_keep);
    const rows = Array.from({ length: videos }, (_, v) =>
      kept.flatMap((f) => Array.from({ length: perFrame }, (_, j) => (v * frames + f) * perFrame + j)),
    ).flat();
    return ops.embedding(out, ops.tensor(out.backend, rows, [rows.length], 'i32'));
  }

  [Symbol.dispose](): void {
    this.query_token.dispose();
    this.input_proj?.[Symbol.dispose]();
    for (const l of this.layers) l[Symbol.dispose]();
    this.norm_f[Symbol.dispose]();
    this.output_proj?.[Symbol.dispose]();
  }
}
