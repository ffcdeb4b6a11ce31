/**
 * A Qwen2-VL video that grows (live video). The video sits in the token sequence after the prompt's opening
 * (system turn, user header, `<|vision_start|>`), so the state is the KV cache of that opening and of the
 * video tokens so far: each new temporal group runs once through the vision tower and the decoder, at the
 * M-RoPE positions it has in the whole video (time index continuing, height and width from the prompt's
 * opening), its keys and values appended to the cache. The video's tokens attend causally, so this equals
 * prefilling the whole video at once. A snapshot freezes the cache at its length; a question continues from
 * it (with `<|vision_end|>` and its text at positions after the video so far) in K/V of its own, while
 * appending goes on in the shared buffers' later rows.
 */
import { InputError } from '../../errors.js';
import type { Frame } from '../../media/index.js';
import type { HybridCache } from '../../nn/cache.js';
import { tidy } from '../../runtime/scope.js';
import type { LiveContext, LiveEncoding } from '../family.js';
import { FrameGroups, yieldToEventLoop } from './frame-groups.js';
import { type Qwen2VL, Qwen2VLPrefix } from './model.js';
import type { Qwen2VLProcessor, RgbImage } from './processor.js';
import type { Qwen2VLVideo } from './runner.js';
import { qwen2vlQuestionCost } from './size.js';

/** Frame groups per vision-tower call (8 groups: 16 frames, as when encoding a whole video). */
const GROUPS_PER_BATCH = 8;

export class Qwen2VLLiveVideo implements LiveEncoding {
  readonly #groups: FrameGroups;
  readonly #cache: HybridCache;
  #encodedGroups = 0;
  /** Patch grid height and width, fixed by the first frames. */
  #hw: [number, number] | null = null;
  #disposed = false;

  constructor(
    readonly model: Qwen2VL,
    readonly processor: Qwen2VLProcessor,
    /** The prompt's ids before the video's pads: the template's opening up to `<|vision_start|>`. */
    readonly openingIds: readonly number[],
    readonly context: LiveContext,
  ) {
    this.#groups = new FrameGroups(processor.video.temporal_patch_size, GROUPS_PER_BATCH);
    this.#cache = model.newCache(openingIds.length + 1024);
    try {
      const pos = openingIds.map((_, i) => i);
      tidy(() => {
        const x = model.embed({ inputIds: openingIds });
        model.model.forward(x, model.rope([pos, pos, pos]), this.#cache, 1);
      });
    } catch (e) {
      this.#cache[Symbol.dispose]();
      throw e;
    }
  }

  get encodedFrames(): number {
    return this.#encodedGroups * this.#groups.groupSize;
  }

  get frames(): number {
    return this.encodedFrames + this.#groups.pending;
  }

  get tokens(): number {
    return this.#cache.length - this.openingIds.length;
  }

  get bytes(): number {
    return this.#cache.bytes;
  }

  async append(frames: readonly Frame[], signal?: AbortSignal): Promise<void> {
    this.#checkLive();
    for (const batch of this.#groups.take(frames)) {
      signal?.throwIfAborted();
      this.#encode(batch);
      await yieldToEventLoop();
    }
  }

  /** One batch of whole groups: vision tower, then the decoder over their tokens at their video positions. */
  #encode(batch: RgbImage[]): void {
    const m = this.model;
    const { pixelValues, grid } = this.processor.preprocess(batch, this.processor.video);
    this.#hw ??= [grid[1], grid[2]];
    const ms = m.config.vision.spatial_merge_size;
    const [gt, h, w] = [grid[0], grid[1] / ms, grid[2] / ms];
    const start = this.openingIds.length;
    const rows = [new Int32Array(gt * h * w), new Int32Array(gt * h * w), new Int32Array(gt * h * w)];
    for (let t = 0; t < gt; t++)
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++) {
          const at = (t * h + y) * w + x;
          rows[0][at] = start + this.#encodedGroups + t;
          rows[1][at] = start + y;
          rows[2][at] = start + x;
        }
    tidy(() => {
      const embeds = m.encodeVision(pixelValues, [grid]);
      m.model.forward(embeds, m.rope(rows as never), this.#cache, 1);
    });
    this.#encodedGroups += gt;
  }

  /** The frames so far as a video whose questions continue from the cache (it keeps no vision tokens). */
  snapshot(): Qwen2VLVideo {
    this.#checkLive();
    if (!this.#hw)
      throw new InputError(
        `${this.context.label}: no frames encoded yet (a live video needs ${this.#groups.groupSize} frames before a question)`,
      );
    const ms = this.model.config.vision.spatial_merge_size;
    const grid: [number, number, number] = [this.#encodedGroups, this.#hw[0], this.#hw[1]];
    const ids = Int32Array.from([
      ...this.openingIds,
      ...new Array<number>(this.tokens).fill(this.model.config.video_token_id),
    ]);
    // Text after a video resumes one past its largest position (get_rope_index).
    const next = this.openingIds.length + Math.max(grid[0], grid[1] / ms, grid[2] / ms);
    const prefix = new Qwen2VLPrefix(ids, next - ids.length, this.#cache.snapshot());
    return {
      kind: 'video',
      batch: { pixelValues: new Float32Array(0), grids: [grid] },
      embeds: null,
      prefix,
      tokens: this.tokens,
      bytes: prefix.bytes,
      // A question continues the prefix (it must: there are no embeddings to prefill again) while the live
      // cache writes after it: it joins the prefix a layer at a time (size.ts).
      questionBytes: qwen2vlQuestionCost(
        this.model.config,
        { videoTokens: this.tokens, prefixTokens: ids.length },
        () => true,
        this.model.dtype,
      ),
      dispose: () => prefix[Symbol.dispose](),
    };
  }

  #checkLive(): void {
    if (this.#disposed) throw new InputError(`${this.context.label}: this live video was closed`);
  }

  [Symbol.dispose](): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#cache[Symbol.dispose]();
  }
}
