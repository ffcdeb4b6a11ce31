/**
 * A live video in the facade: frames arrive (from a source, media/live-source.ts, or from the caller), are
 * resized to the size the model family asks for, and are appended to the family's growing state
 * (ModelRunner.live) one call at a time; a question takes a snapshot, an ordinary VideoHandle over the frames
 * encoded so far, which later appends leave unchanged. A window (`windowSec`) forgets frames older than that
 * many seconds before the newest one, so memory stays bounded; `status()` reports what is held.
 */
import { ModelError, UsageError } from '../errors.js';
import { resizeBicubic } from '../media/bicubic.js';
import type { Frame } from '../media/index.js';
import type { LiveEncoding, ModelRunner, VideoPolicy } from '../models/family.js';
import type { VideoHandle } from './engine.js';
import type { SamplingOptions } from './types.js';
import { samplingFor } from './video-defaults.js';

export interface LiveVideoOptions {
  /** Frames per second taken from a source (default 1); frames appended by hand are taken as they come. */
  fps?: number;
  /** Frame edge bounds (default: the model's). */
  maxEdge?: number;
  minEdge?: number;
  /** Keep only the frames of the last `windowSec` seconds (default: keep everything). */
  windowSec?: number;
  /** How the video is named in messages and answers. */
  label?: string;
}

/** A frame with when it was seen: seconds into the stream, and the wall clock (ms since the epoch). */
export interface LiveFrame extends Frame {
  wallClockMs?: number;
}

export interface LiveStatus {
  label: string;
  /** Frames appended since the start. */
  framesSeen: number;
  /** Frames held now (the window may have forgotten older ones); encoded ones are what a question sees. */
  framesHeld: number;
  framesEncoded: number;
  /** Stream seconds from the first frame seen to the newest. */
  durationSec: number;
  /** Stream seconds the held frames span (oldest held to newest). */
  heldSec: number;
  /** Wall clock of the newest frame (ms since the epoch), null before any. */
  lastFrameAt: number | null;
  tokens: number;
  /** Memory the model's state holds. */
  bytes: number;
  windowSec: number | null;
}

/** What VideoLM gives a live video: its runner's state, and how to wrap a snapshot as a handle. */
export interface LiveParts {
  runner: ModelRunner;
  policy: VideoPolicy | undefined;
  checkpointDefaults: SamplingOptions;
  wrap(
    encoded: ReturnType<LiveEncoding['snapshot']>,
    origin: { label: string; timestampsSec: readonly number[]; sampling: Required<SamplingOptions> },
  ): VideoHandle;
}

export class LiveVideo implements Disposable {
  readonly label: string;
  readonly sampling: Required<SamplingOptions>;
  readonly windowSec: number | null;
  readonly #state: LiveEncoding;
  readonly #policy: VideoPolicy;
  readonly #wrap: LiveParts['wrap'];
  /** Stream timestamps of the held frames, oldest first. */
  #held: number[] = [];
  #seen = 0;
  #firstSec: number | null = null;
  #lastAt: number | null = null;
  /** Appends run one after another (a source and a caller may both append). */
  #queue: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(parts: LiveParts, opts: LiveVideoOptions = {}) {
    const { runner, policy } = parts;
    if (!policy || runner.info.textOnly)
      throw new UsageError(`${runner.info.architecture} is a text model: it cannot watch a video`);
    if (!runner.live)
      throw new UsageError(
        `${runner.info.architecture} cannot grow an encoded video, so it cannot watch a live one; use a Vamba or Qwen2-VL model`,
      );
    if (opts.windowSec !== undefined && !(opts.windowSec > 0))
      throw new UsageError(
        `the window must be a positive number of seconds (got ${opts.windowSec})`,
        'window',
      );
    if (opts.fps !== undefined && !(opts.fps > 0))
      throw new UsageError(`fps must be a positive number (got ${opts.fps})`, 'fps');
    this.label = opts.label ?? 'live video';
    // The model's frame size and edges; the rate is the live video's own.
    const base = samplingFor(
      policy,
      null,
      { maxEdge: opts.maxEdge, minEdge: opts.minEdge },
      { ...parts.checkpointDefaults, sampling: undefined },
    );
    this.sampling = { ...base, sampling: 'fps', fps: opts.fps ?? 1 };
    this.windowSec = opts.windowSec ?? null;
    this.#policy = policy;
    this.#wrap = parts.wrap;
    this.#state = runner.live({ sampling: this.sampling, label: this.label });
    if (this.windowSec !== null && !this.#state.dropOldest) {
      this.#state[Symbol.dispose]();
      throw new UsageError(
        `${runner.info.architecture} cannot forget old frames of a live video (its video is part of the text sequence): watch without a window`,
        'window',
      );
    }
  }

  /** The size frames are given to the model at, for a source of this size. */
  frameSize(source: { width: number; height: number }) {
    return this.#policy.frameSize(source, this.sampling);
  }

  /**
   * Appends frames (any size: resized to the model's; in stream order, `timestampSec` rising). Resolves once
   * they are encoded (a frame may wait for the rest of its temporal group); appends queue behind each other.
   */
  append(frames: readonly LiveFrame[], opts: { signal?: AbortSignal } = {}): Promise<void> {
    this.#checkOpen();
    const run = this.#queue.then(() => this.#append(frames, opts.signal));
    this.#queue = run.catch(() => {});
    return run;
  }

  async #append(frames: readonly LiveFrame[], signal?: AbortSignal): Promise<void> {
    if (this.#closed || !frames.length) return;
    const sized = frames.map((f) => {
      const to = this.frameSize(f);
      if (to.width === f.width && to.height === f.height) return f;
      const data = resizeBicubic(f.data, f.width, f.height, to.width, to.height);
      return { ...f, ...to, data };
    });
    // Held before they are encoded: a question between two groups sees timestamps for all it sees.
    for (const f of frames) {
      this.#firstSec ??= f.timestampSec;
      this.#held.push(f.timestampSec);
      this.#lastAt = f.wallClockMs ?? Date.now();
    }
    this.#seen += frames.length;
    try {
      await this.#state.append(sized, signal);
    } catch (e) {
      this.#held.length = this.#state.frames; // what the state took before it failed
      throw e;
    }
    this.#applyWindow();
  }

  /** Forgets encoded frames older than the window before the newest frame. */
  #applyWindow(): void {
    if (this.windowSec === null || !this.#held.length) return;
    const from = this.#held[this.#held.length - 1] - this.windowSec;
    let old = 0;
    while (old < this.#state.encodedFrames && this.#held[old] < from) old++;
    if (!old) return;
    const dropped = this.#state.dropOldest!(old);
    this.#held.splice(0, dropped);
  }

  /** The frames encoded so far, as a handle for questions (dispose it after). */
  snapshot(): VideoHandle {
    this.#checkOpen();
    const encoded = this.#state.snapshot();
    return this.#wrap(encoded, {
      label: this.label,
      timestampsSec: this.#held.slice(0, this.#state.encodedFrames),
      sampling: this.sampling,
    });
  }

  status(): LiveStatus {
    const held = this.#held;
    const last = held.length ? held[held.length - 1] : null;
    return {
      label: this.label,
      framesSeen: this.#seen,
      framesHeld: this.#closed ? 0 : this.#state.frames,
      framesEncoded: this.#closed ? 0 : this.#state.encodedFrames,
      durationSec: last === null ? 0 : last - this.#firstSec!,
      heldSec: last === null ? 0 : last - held[0],
      lastFrameAt: this.#lastAt,
      tokens: this.#closed ? 0 : this.#state.tokens,
      bytes: this.#closed ? 0 : this.#state.bytes,
      windowSec: this.windowSec,
    };
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Frees the state once the appends under way have ended; snapshots taken before stay usable. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#queue;
    this.#state[Symbol.dispose]();
  }

  [Symbol.dispose](): void {
    void this.close();
  }

  #checkOpen(): void {
    if (this.#closed) throw new ModelError(`${this.label}: the live video was closed`);
  }
}
