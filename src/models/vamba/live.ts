/**
 * A Vamba video that grows (live video). Vamba's video stream is causal and never enters the text sequence
 * (research/vamba.md §2.3), so new frames cost only themselves: each temporal group runs once through the
 * vision tower, then through every layer's Mamba block continuing from the state the earlier frames left
 * (carried here, one per layer), and its cross-attention K/V are appended to each layer's growing rows.
 * A snapshot is a set of zero-copy views of the rows so far: a question sees the video up to that moment
 * while appending goes on. Dropping the oldest frames (a window) drops their K/V rows; the Mamba states keep
 * what the stream carried from them, as they would in a stream that never stopped.
 */
import { randomUUID } from 'node:crypto';
import { InputError } from '../../errors.js';
import type { Frame } from '../../media/index.js';
import type { CrossKV } from '../../nn/cross-attention.js';
import { GrowingRows } from '../../nn/growing-rows.js';
import { disposeState, type Mamba2State } from '../../nn/mamba2.js';
import { disposeAll } from '../../runtime/scope.js';
import type { Tensor } from '../../runtime/tensor.js';
import type { EncodedVideo, LiveContext, LiveEncoding } from '../family.js';
import { FrameGroups, yieldToEventLoop } from '../qwen2vl/frame-groups.js';
import type { RgbImage } from '../qwen2vl/processor.js';
import type { Vamba } from './model.js';
import { VambaVideoHandle, type VideoKey, videoOf } from './video-handle.js';

/** Frame groups per vision-tower call (8 groups: 16 frames, as when encoding a whole video). */
const GROUPS_PER_BATCH = 8;

export class VambaLiveVideo implements LiveEncoding {
  readonly #groups: FrameGroups;
  readonly #k: GrowingRows[];
  readonly #v: GrowingRows[];
  #states: (Mamba2State | null)[] | null = null;
  /** Temporal groups encoded since the start (the next group's M-RoPE time index) and dropped. */
  #encodedGroups = 0;
  #droppedGroups = 0;
  /** Merged tokens per group (h × w), fixed by the first frames. */
  #grid: [number, number] | null = null;
  readonly #id = randomUUID();
  #disposed = false;

  constructor(
    readonly model: Vamba,
    readonly context: LiveContext,
    readonly chunkLen?: number,
  ) {
    const layers = model.lm.layers.length;
    this.#groups = new FrameGroups(model.config.vision.temporal_patch_size, GROUPS_PER_BATCH);
    this.#k = Array.from({ length: layers }, () => new GrowingRows());
    this.#v = Array.from({ length: layers }, () => new GrowingRows());
  }

  get #tps(): number {
    return this.#groups.groupSize;
  }

  get encodedFrames(): number {
    return (this.#encodedGroups - this.#droppedGroups) * this.#tps;
  }

  get frames(): number {
    return this.encodedFrames + this.#groups.pending;
  }

  get tokens(): number {
    return this.#k[0]?.length ?? 0;
  }

  get bytes(): number {
    let n = 0;
    for (const r of [...this.#k, ...this.#v]) n += r.bytes;
    for (const s of this.#states ?? []) if (s) n += s.conv.bytes + s.ssm.bytes;
    return n;
  }

  async append(frames: readonly Frame[], signal?: AbortSignal): Promise<void> {
    this.#checkLive();
    for (const batch of this.#groups.take(frames)) {
      signal?.throwIfAborted();
      this.#encode(batch);
      await yieldToEventLoop();
    }
  }

  /** One batch of whole groups: the vision tower, then the video path. */
  #encode(batch: RgbImage[]): void {
    const m = this.model;
    const { pixelValues, grid } = m.processor.preprocess(batch, m.processor.video);
    const ms = m.config.vision.spatial_merge_size;
    this.appendTokens(m.embedVideo(pixelValues, grid), [grid[0], grid[1] / ms, grid[2] / ms]);
  }

  /**
   * Appends merger output V [t·h·w, hidden] (consumed) of `grid[0]` whole temporal groups on the merged
   * grid [t, h, w]: every layer's video half continuing from the carried states. Frames appended later
   * follow these groups.
   */
  appendTokens(V: Tensor, grid: readonly [number, number, number]): void {
    this.#checkLive();
    if (this.#grid && (this.#grid[0] !== grid[1] || this.#grid[1] !== grid[2])) {
      V.dispose();
      throw new InputError(
        `a live video's frames keep one size: ${grid[1]}×${grid[2]} merged tokens per group, the first had ${this.#grid.join('×')}`,
      );
    }
    this.#grid ??= [grid[1], grid[2]];
    const r = this.model.lm.appendVideo(V, grid, {
      states: this.#states,
      tOffset: this.#encodedGroups,
      chunkLen: this.chunkLen,
    });
    try {
      for (const [i, kv] of r.kvs.entries()) {
        const [, n, h, d] = kv.k.shape;
        using k = kv.k.reshape([n, h, d]);
        using v = kv.v.reshape([n, h, d]);
        this.#k[i].append(k);
        this.#v[i].append(v);
      }
    } finally {
      disposeAll(r.kvs);
    }
    for (const s of this.#states ?? []) if (s) disposeState(s);
    this.#states = r.states;
    this.#encodedGroups += grid[0];
  }

  snapshot(): EncodedVideo {
    this.#checkLive();
    if (!this.tokens)
      throw new InputError(
        `${this.context.label}: no frames encoded yet (a live video needs ${this.#tps} frames before a question)`,
      );
    const kvs: CrossKV[] = [];
    for (const [i, k] of this.#k.entries()) {
      using kv = k.view()!;
      using vv = this.#v[i].view()!;
      const [n, h, d] = kv.shape;
      kvs.push({ k: kv.reshape([1, n, h, d]), v: vv.reshape([1, n, h, d]) });
    }
    const [gh, gw] = this.#grid!;
    const groups = this.#encodedGroups - this.#droppedGroups;
    const key: VideoKey = {
      model: this.model.modelId,
      video: `live:${this.#id}`,
      sampling: `live:fps=${this.context.sampling.fps}`,
      size: `vamba ${this.context.sampling.minEdge}/${this.context.sampling.maxEdge}`,
      frames: String(this.encodedFrames),
      from: String(this.#droppedGroups * this.#tps),
      dtype: this.model.dtype,
    };
    return videoOf(new VambaVideoHandle(kvs, key, [groups, gh, gw]));
  }

  dropOldest(count: number): number {
    this.#checkLive();
    const held = this.#encodedGroups - this.#droppedGroups;
    const groups = Math.min(held, Math.floor(count / this.#tps));
    if (!groups || !this.#grid) return 0;
    const rows = groups * this.#grid[0] * this.#grid[1];
    for (const r of [...this.#k, ...this.#v]) r.dropFront(rows);
    this.#droppedGroups += groups;
    return groups * this.#tps;
  }

  #checkLive(): void {
    if (this.#disposed) throw new InputError(`${this.context.label}: this live video was closed`);
  }

  [Symbol.dispose](): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const r of [...this.#k, ...this.#v]) r[Symbol.dispose]();
    for (const s of this.#states ?? []) if (s) disposeState(s);
  }
}
