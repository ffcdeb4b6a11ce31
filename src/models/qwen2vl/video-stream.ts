/**
 * A video's vision tokens from frames that arrive in batches of any size (a decoder's): preprocessed and encoded
 * `framesPerBatch` at a time (whole 2-frame groups) into one output, made when the first batch fixes the frame
 * size, so neither the decoded frames nor their patch rows are ever held whole. Each temporal group is encoded
 * on its own (the vision tower's attention stays inside a group), so this equals encoding the video at once.
 * Shared by Qwen2-VL (the facade) and Vamba.
 */
import { InputError } from '../../errors.js';
import * as ops from '../../runtime/ops.js';
import type { Tensor } from '../../runtime/tensor.js';
import type { Pieces } from '../family.js';
import type { Qwen2VLProcessor, RgbImage } from './processor.js';
import type { GridTHW } from './vision.js';

export interface VisionStreamOptions {
  /** Frames sampled: the output holds this many (temporal groups of) tokens; fewer arriving keeps fewer rows. */
  maxFrames: number;
  /** Frames encoded per call (even). */
  framesPerBatch: number;
  /** The odd last frame: repeated to fill its group (the processor's default) or dropped. */
  oddLast: 'pad' | 'drop';
  /** Merged tokens [tokens, hidden] of one batch's patch rows. */
  encode(pixelValues: Float32Array, grid: GridTHW): Tensor;
  /** The output for the whole video's grid (checks that it fits first). */
  allocate(grid: GridTHW): Tensor;
  signal?: AbortSignal;
  /**
   * Chunked prefill: once the first batch fixes the frame size, batches of whole groups of about
   * `pieces.tokens` merged tokens (at most `framesPerBatch` frames), `pieces.pause()` awaited between two.
   */
  pieces?: Pieces;
  /** Frames and vision tokens encoded so far, after each batch. */
  onFrames?: (done: number, tokens: number) => void;
}

/** The tokens (rows for the frames that arrived) and their grid, or null when no whole group arrived. */
export async function streamVisionTokens(
  frames: AsyncIterable<RgbImage[]>,
  processor: Qwen2VLProcessor,
  o: VisionStreamOptions,
): Promise<{ tokens: Tensor; grid: GridTHW; frames: number } | null> {
  const c = processor.video;
  const unit = c.merge_size ** 2;
  const maxGroups = (o.oddLast === 'drop' ? Math.floor : Math.ceil)(o.maxFrames / c.temporal_patch_size);
  let out: Tensor | null = null;
  let grid: GridTHW | null = null;
  let done = 0;
  const run = (batch: RgbImage[]) => {
    const { pixelValues, grid: g } = processor.preprocess(batch, c);
    const at = grid?.[0] ?? 0;
    if (grid && (grid[1] !== g[1] || grid[2] !== g[2]))
      throw new InputError('video frames changed size mid-stream');
    if (at + g[0] > maxGroups)
      throw new InputError(`the decoder returned more than the ${o.maxFrames} frames asked for`);
    out ??= o.allocate([maxGroups, g[1], g[2]]);
    using feats = o.encode(pixelValues, g);
    ops.writeSlice(out, feats, 0, (at * g[1] * g[2]) / unit);
    grid = [at + g[0], g[1], g[2]];
    done += batch.length;
    o.onFrames?.(done, (grid[0] * grid[1] * grid[2]) / unit);
  };
  /** Frames per batch: with pieces, whole groups of about `pieces.tokens` tokens once the grid is known. */
  const perBatch = () => {
    const g = grid as GridTHW | null;
    if (!o.pieces || !g) return o.framesPerBatch;
    const groups = Math.max(1, Math.floor(o.pieces.tokens / ((g[1] * g[2]) / unit)));
    return Math.min(o.framesPerBatch, groups * c.temporal_patch_size);
  };
  try {
    let pending: RgbImage[] = [];
    for await (const batch of frames) {
      o.signal?.throwIfAborted();
      pending.push(...batch);
      while (pending.length >= perBatch()) {
        if (o.pieces && done) await o.pieces.pause();
        const n = perBatch();
        run(pending.slice(0, n));
        pending = pending.slice(n);
      }
    }
    const drop = o.oddLast === 'drop' ? pending.length % c.temporal_patch_size : 0;
    if (pending.length > drop) {
      if (o.pieces && done) await o.pieces.pause();
      run(pending.slice(0, pending.length - drop));
    }
    const all = out as Tensor | null;
    const g = grid as GridTHW | null;
    if (!all || !g) return null;
    // A video shorter than sampled fills only the first rows.
    const rows = (g[0] * g[1] * g[2]) / unit;
    const tokens = rows === all.shape[0] ? all : ops.slice(all, 0, 0, rows);
    if (tokens !== all) all.dispose();
    return { tokens, grid: g, frames: done };
  } catch (e) {
    (out as Tensor | null)?.dispose();
    throw e;
  }
}
