/**
 * The media front door: open a video or image from anything (path, URL, data URL, bytes), probe it,
 * choose frames with a sampling policy, and decode them as batches of RGB frames.
 *
 *   await using video = await openVideo('talk.mp4');
 *   const sample = await video.sample({ kind: 'middle', numFrames: 128 });
 *   for await (const batch of video.frames(sample, { size: boundEdges(256, 640) })) ...
 */
import { InputError } from '../errors.js';
import {
  type DecodePlanOptions,
  decodeRuns,
  describeProblems,
  type Frame,
  nearestKeyframes,
  planRuns,
  type RunContext,
} from './decode.js';
import { findTools, type ToolOptions, type ToolPaths } from './ffmpeg.js';
import { type FrameIndex, isVariableRate, type MediaInfo, probeFile, scanFrames } from './probe.js';
import { type DecodeReport, lostRanges, type SkippedFrame } from './report.js';
import { resolveSize, type TargetSize } from './resize.js';
import { type Clip, type SamplingPolicy, sampleClip } from './sampling.js';
import { type FetchOptions, type LocalMedia, type MediaInput, openInput } from './source.js';

export interface OpenOptions extends FetchOptions, ToolOptions {}

/** The frames a policy chose, with their real timestamps. */
export interface Sample {
  indices: number[];
  timestampsSec: number[];
}

export interface FrameOptions extends DecodePlanOptions {
  /** Output size (default: the displayed source size). */
  size?: TargetSize;
  /** Frames per batch (default 8). */
  batchSize?: number;
  /** 'exact' (default): the chosen frames. 'keyframe': the nearest keyframe to each, decoding only keyframes (much faster, approximate). */
  accuracy?: 'exact' | 'keyframe';
  /** Throw instead of skipping frames that cannot be decoded (default false). */
  strict?: boolean;
  /** Give up when ffmpeg produces nothing for this long (default 60 s). */
  stallTimeoutMs?: number;
  signal?: AbortSignal;
}

/**
 * Batches of decoded frames, in the order sampled (repeats included). As it goes, `requested`, `decoded`
 * and `skipped` (frames that could not be decoded: a damaged or missing region) are filled, and
 * `problems` keeps what ffmpeg said; after iteration `report()` sums them up with the lost time ranges.
 */
export class FrameStream implements AsyncIterable<Frame[]> {
  kind: 'video' | 'image' = 'video';
  /** Frames asked for (sample slots, repeats included); known once decoding has started. */
  requested = 0;
  decoded = 0;
  readonly skipped: SkippedFrame[] = [];
  /** The sample slot of each skipped frame (what merges them into ranges). */
  readonly skippedSlots: number[] = [];
  readonly problems: string[] = [];
  private started = false;

  /** What was delivered against what was asked for (see checkFrameLoss for the policy). */
  report(): DecodeReport {
    return {
      kind: this.kind,
      requested: this.requested,
      decoded: this.decoded,
      skipped: [...this.skipped],
      lostRanges: lostRanges(this.skipped, this.skippedSlots),
    };
  }

  constructor(private readonly produce: (stream: FrameStream) => AsyncGenerator<Frame[]>) {}

  [Symbol.asyncIterator](): AsyncIterator<Frame[]> {
    if (this.started) throw new Error('a FrameStream can be iterated only once');
    this.started = true;
    return this.produce(this);
  }
}

export class Video implements AsyncDisposable {
  private indexPromise: Promise<FrameIndex> | undefined;

  private constructor(
    private readonly local: LocalMedia,
    private readonly tools: ToolPaths,
    readonly info: MediaInfo,
    private readonly signal?: AbortSignal,
  ) {}

  static async open(input: MediaInput, options: OpenOptions = {}): Promise<Video> {
    const tools = findTools(options);
    const local = await openInput(input, options);
    try {
      const info = await probeFile(local.path, local.label, local.sizeBytes, tools, options.signal);
      return new Video(local, tools, info, options.signal);
    } catch (e) {
      await local.release();
      throw e;
    }
  }

  /** The frame index (every frame's timestamp and key flag); read once, on first need. */
  index(): Promise<FrameIndex> {
    this.indexPromise ??= (async () => {
      if (this.info.kind === 'image')
        return {
          count: 1,
          pts: new Float64Array(1),
          timesSec: new Float64Array(1),
          keyframe: new Uint8Array([1]),
          timeBase: this.info.timeBase,
          hasTimestamps: false,
          available: 1,
        };
      const index = await scanFrames(
        this.local.path,
        this.local.label,
        this.info,
        this.tools.ffprobe,
        this.signal,
      );
      this.info.frameCount = index.count;
      this.info.frameCountExact = index.available === index.count;
      this.info.missingFrames = index.count - index.available;
      this.info.variableFrameRate = isVariableRate(index);
      return index;
    })();
    return this.indexPromise;
  }

  /** The frames `policy` picks (inside `clip` when given), with their timestamps. An image always gives its one frame. */
  async sample(policy: SamplingPolicy, clip?: Clip): Promise<Sample> {
    const index = await this.index();
    const indices =
      this.info.kind === 'image'
        ? [0]
        : sampleClip(policy, { frameCount: index.count, fps: this.fps(index) }, clip);
    return { indices, timestampsSec: indices.map((i) => index.timesSec[i]) };
  }

  private fps(index: FrameIndex): number {
    if (this.info.fps > 0) return this.info.fps;
    const span = index.timesSec[index.count - 1];
    return span > 0 ? (index.count - 1) / span : 1;
  }

  /** Decodes the sampled frames (a Sample, or a policy to sample with first). */
  frames(what: Sample | SamplingPolicy, options: FrameOptions = {}): FrameStream {
    return new FrameStream((stream) => this.decodeInto(stream, what, options));
  }

  /** The decoding behind `frames`, filling `stream`'s report as it goes (decodeFrames fills its own). */
  async *decodeInto(
    stream: FrameStream,
    what: Sample | SamplingPolicy,
    options: FrameOptions,
  ): AsyncGenerator<Frame[]> {
    const signal = options.signal ?? this.signal;
    const batchSize = options.batchSize ?? 8;
    if (!Number.isInteger(batchSize) || batchSize < 1)
      throw new InputError(`batchSize must be a positive integer, got ${batchSize}`);
    const index = await this.index();
    const sample = await this.sample('kind' in what ? what : { kind: 'indices', indices: what.indices });
    const size = resolveSize(options.size, { width: this.info.width, height: this.info.height });
    const keyframesOnly = options.accuracy === 'keyframe' && this.info.kind === 'video';
    // What each sample slot is served by: the frame itself, or its nearest keyframe.
    const source = keyframesOnly ? nearestKeyframes(index, sample.indices) : sample.indices;
    stream.kind = this.info.kind;
    stream.requested = source.length;
    const ctx: RunContext = {
      ffmpeg: this.tools.ffmpeg,
      path: this.local.path,
      label: this.local.label,
      info: this.info,
      index,
      size,
      stallTimeoutMs: options.stallTimeoutMs ?? 60_000,
      signal,
      problems: stream.problems,
    };
    let batch: Frame[] = [];
    const ready: Frame[][] = []; // full batches waiting to be yielded
    let slot = 0; // next sample slot to fill
    const emit = (frame: number, data: Uint8Array) => {
      // Serve every slot that wants this frame (repeats get their own copy); a frame no slot wants is dropped.
      for (let first = true; slot < source.length && source[slot] === frame; first = false, slot++) {
        batch.push({
          index: frame,
          timestampSec: index.timesSec[frame],
          width: size.width,
          height: size.height,
          data: first ? data : data.slice(),
        });
        stream.decoded++;
        if (batch.length === batchSize) {
          ready.push(batch);
          batch = [];
        }
      }
    };
    const skip = (upTo: number) => {
      // Slots before the frame being served that got nothing: their frames could not be decoded.
      while (slot < source.length && source[slot] < upTo) {
        const f = source[slot];
        stream.skipped.push({
          index: f,
          timestampSec: index.timesSec[f],
          reason: f < index.available ? describeProblems(stream.problems) : cutShort,
        });
        stream.skippedSlots.push(slot);
        slot++;
      }
    };
    const frameBytes = ctx.size.width * ctx.size.height * 3;
    // Frames past the end of a truncated file are not looked for (source is non-decreasing).
    const present = source.filter((f) => f < index.available);
    const cutShort = `the file ends at ${index.timesSec[index.available - 1].toFixed(3)} s, before this frame (truncated)`;
    const runs = planRuns(index, present, options, frameBytes);
    for await (const event of decodeRuns(ctx, runs, options.readAheadBytes)) {
      if ('done' in event) {
        skip(event.done.frames[event.done.frames.length - 1] + 1);
        if (options.strict && stream.skipped.length > 0) break;
        continue;
      }
      skip(event.frame);
      emit(event.frame, event.data);
      while (ready.length > 0) yield ready.shift()!;
    }
    skip(Number.POSITIVE_INFINITY);
    if (stream.skipped.length > 0 && (options.strict || stream.decoded === 0)) {
      const first = stream.skipped[0];
      throw new InputError(
        stream.decoded === 0
          ? `${this.local.label}: no frame could be decoded (${describeProblems(stream.problems)})`
          : `${this.local.label}: frame ${first.index} at ${first.timestampSec.toFixed(3)} s could not be decoded (${first.reason})`,
      );
    }
    if (batch.length > 0) yield batch;
  }

  async close(): Promise<void> {
    await this.local.release();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

export function openVideo(input: MediaInput, options: OpenOptions = {}): Promise<Video> {
  return Video.open(input, options);
}

/** What ffprobe found; with `scan`, also the exact frame count and VFR check from every packet. */
export async function probe(
  input: MediaInput,
  options: OpenOptions & { scan?: boolean } = {},
): Promise<MediaInfo> {
  const video = await openVideo(input, options);
  try {
    if (options.scan) await video.index();
    return video.info;
  } finally {
    await video.close();
  }
}

/**
 * One call from input to frames: opens, samples with `policy`, decodes, and cleans up when iteration
 * ends (normally, by break, or by error).
 */
export function decodeFrames(
  input: MediaInput,
  policy: SamplingPolicy,
  options: FrameOptions & OpenOptions = {},
): FrameStream {
  return new FrameStream((stream) =>
    (async function* () {
      const video = await openVideo(input, options);
      try {
        yield* video.decodeInto(stream, policy, options);
      } finally {
        await video.close();
      }
    })(),
  );
}
