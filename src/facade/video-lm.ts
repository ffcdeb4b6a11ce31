/**
 * The library facade:
 *
 *   const model = await VideoLM.load('TIGER-Lab/Vamba-Qwen2-VL-7B', { device: 'cuda' });
 *   for await (const piece of model.ask('talk.mp4', 'What is the speaker holding?')) process.stdout.write(piece);
 *   const video = await model.encodeVideo('talk.mp4', { frames: 256 });   // encode once …
 *   const { text, usage } = await model.ask(video, 'And at the end?').result(); // … ask many times
 *   model.dispose();
 *
 * It composes media (probe, sampling, decoding at the size the model wants) → the model family's runner
 * (per-video state, then generation). The architecture is read from the checkpoint's config.
 */
import '../backends/index.js';
import { randomBytes } from 'node:crypto';
import { rename, rm, stat } from 'node:fs/promises';
import { InputError, ModelError, UsageError } from '../errors.js';
import { resolveModel } from '../hub/resolve.js';
import {
  type Clip,
  checkFrameLoss,
  type DecodeReport,
  type MediaInput,
  openVideo,
  type SamplingPolicy,
} from '../media/index.js';
import type { EncodedVideo, EncodePlan, ModelRunner, VideoPolicy } from '../models/family.js';
import { resolveReduction } from '../models/reduction.js';
import { getBackend } from '../runtime/device.js';
import { Answer, type Generation } from './answer.js';
import { DEFAULT_MODEL_ID, defaultModelDir } from './default-model.js';
import type { ChatEngine, ChatOptions, EncodeOptions, VideoHandle } from './engine.js';
import { inspectModel } from './inspect.js';
import { LiveVideo, type LiveVideoOptions } from './live.js';
import { frameRelevance } from './relevance.js';
import type {
  AskResult,
  ChatTurn,
  GenerationOptions,
  ModelInfo,
  ModelLoadOptions,
  SamplingOptions,
} from './types.js';
import { samplingFor } from './video-defaults.js';

export interface AskOptions extends SamplingOptions, GenerationOptions {
  signal?: AbortSignal;
  progress?: EncodeOptions['progress'];
}

export class VideoLM implements ChatEngine, Disposable {
  private disposed = false;

  private constructor(
    private readonly runner: ModelRunner,
    /** The model family's sampling policy (none for a text-only family). */
    private readonly policy: VideoPolicy | undefined,
    /** The checkpoint's own video sampling defaults (config.json `longshot_video_defaults`). */
    private readonly videoDefaults: SamplingOptions = {},
  ) {}

  /** Loads a checkpoint directory or hub id (downloaded into the HF cache if needed); default: the embedded model. */
  static async load(model?: string, opts: ModelLoadOptions = {}): Promise<VideoLM> {
    const id = model ?? DEFAULT_MODEL_ID;
    const dir = await resolveModel(model ?? defaultModelDir(), {
      revision: opts.revision,
      reporter: opts.onDownload,
    });
    const summary = await inspectModel(dir);
    const device = opts.device ?? 'auto';
    const backend = await getBackend(device).catch((e: Error) => {
      throw new ModelError(`device '${device}' is not available: ${e.message}`, {
        cause: e,
      });
    });
    const runner = await summary.checkpoint.load(backend, id);
    return new VideoLM(runner, summary.family.video, summary.videoDefaults);
  }

  /** Wraps a loaded runner with its family's sampling policy (model families' own tests and tools). */
  static fromRunner(
    runner: ModelRunner,
    policy: VideoPolicy | undefined,
    videoDefaults: SamplingOptions = {},
  ): VideoLM {
    return new VideoLM(runner, policy, videoDefaults);
  }

  get info(): ModelInfo {
    return this.runner.info;
  }

  /** Whether `live` works here: a video model whose family can grow an encoded video. */
  get canWatch(): boolean {
    return this.runner.live !== undefined && !this.info.textOnly;
  }

  /**
   * Decodes the frames the family's policy (or `opts`) samples, at the size the family asks for, and hands
   * them to the model in batches; the handle answers any number of questions.
   */
  async encodeVideo(input: MediaInput, opts: EncodeOptions = {}): Promise<VideoHandle> {
    this.checkLive();
    const policy = this.policy;
    if (!policy || this.info.textOnly)
      throw new UsageError(`${this.info.architecture} is a text model: ask without a video`);
    const { signal, progress } = opts;
    const label = labelOf(input);
    const reduction = resolveReduction(opts.reduce, this.info.architecture, this.runner.reductions ?? []);
    try {
      await using video = await openVideo(input, { signal });
      const durationSec = clipDuration(video.info.durationSec, opts.clip);
      const s = samplingFor(policy, durationSec, opts, this.videoDefaults);
      const sample = await video.sample(policyOf(s), opts.clip);
      progress?.start?.(sample.indices.length);
      const frames = video.frames(sample, { size: (source) => policy.frameSize(source, s), signal });
      const encoded = await this.runner
        .encode(opts.pieces ? pausing(frames, opts.pieces.pause) : frames, {
          kind: video.info.kind,
          timestampsSec: sample.timestampsSec,
          sampling: s,
          input,
          signal,
          onFrames: progress?.frames,
          reduction,
          pieces: opts.pieces,
        })
        .catch((e: unknown) => {
          // A model that got too few frames fails for that reason: say which frames were lost and why.
          checkFrameLoss(label, frames.report(), { ...opts, strict: true });
          throw e;
        });
      const report = frames.report();
      try {
        checkFrameLoss(label, report, opts);
      } catch (e) {
        encoded.dispose();
        throw e;
      }
      const timestampsSec = decodedTimestamps(sample.timestampsSec, report);
      const origin = {
        label,
        timestampsSec,
        decode: report,
        sampling: s,
        durationSec,
        clip: opts.clip ?? null,
        ...(reduction ? { reduce: { method: reduction.reduction.name, keep: reduction.keep } } : {}),
      };
      return handleOf({ origin, encoded, runner: this.runner });
    } finally {
      progress?.finish?.();
    }
  }

  /**
   * What `encodeVideo(input, opts)` will hold on the device, estimated by the family from the frames the
   * policy samples and their size (the video is probed, nothing decoded); null for a family without an
   * estimate or a text model.
   */
  async planEncode(input: MediaInput, opts: EncodeOptions = {}): Promise<EncodePlan | null> {
    this.checkLive();
    const policy = this.policy;
    if (!policy || this.info.textOnly || !this.runner.planEncode) return null;
    await using video = await openVideo(input, { signal: opts.signal });
    const s = samplingFor(policy, clipDuration(video.info.durationSec, opts.clip), opts, this.videoDefaults);
    const sample = await video.sample(policyOf(s), opts.clip);
    const size = policy.frameSize({ width: video.info.width, height: video.info.height }, s);
    return this.runner.planEncode({
      kind: video.info.kind,
      frames: sample.indices.length,
      width: size.width,
      height: size.height,
      pieceTokens: opts.pieces?.tokens,
    });
  }

  /**
   * Writes an encoded video to `path` (the model's tensors, with the label, timestamps, decode report and
   * sampling in the file's metadata), atomically: a reader sees the old file or the whole new one.
   */
  async saveVideo(handle: VideoHandle, path: string): Promise<void> {
    this.checkLive();
    const { encoded, origin, runner } = encodingOf(handle);
    if (!this.runner.saveVideo)
      throw new ModelError(`${this.info.architecture}: this model cannot save encoded videos`);
    if (handle.disposed) throw new ModelError('the video handle was disposed; encode the video again');
    if (runner !== this.runner)
      throw new UsageError(`${handle.label}: this video was encoded by another model; save it with that one`);
    if (origin.reduce)
      throw new UsageError(
        `${handle.label}: a video encoded with a token reduction (${origin.reduce.method}) is not saved; encode it without one to save it`,
      );
    const tmp = `${path}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`;
    try {
      await this.runner.saveVideo(encoded, tmp, { [ORIGIN_KEY]: JSON.stringify(origin) });
      await rename(tmp, path);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
  }

  /**
   * Reads a video saveVideo wrote, as encodeVideo(video, opts) would have encoded it: a file made by another
   * model, or with other sampling than `opts` (and the defaults) give for that video, is refused.
   */
  async loadVideo(path: string, opts: SamplingOptions & { clip?: Clip } = {}): Promise<VideoHandle> {
    this.checkLive();
    const policy = this.policy;
    if (!policy || this.info.textOnly)
      throw new UsageError(`${this.info.architecture} is a text model: it has no encoded videos`);
    if (!this.runner.loadVideo)
      throw new ModelError(`${this.info.architecture}: this model cannot load saved videos`);
    if (!(await stat(path).catch(() => null))?.isFile())
      throw new InputError(`${path}: no saved video there (VideoLM.saveVideo writes one)`);
    const { video, metadata } = await this.runner.loadVideo(path);
    try {
      const raw = metadata[ORIGIN_KEY];
      if (raw === undefined) throw new InputError(`${path} was not written by VideoLM.saveVideo`);
      const origin = JSON.parse(raw) as Origin;
      const expected = samplingFor(policy, origin.durationSec, opts, this.videoDefaults);
      const diff = (Object.keys(expected) as (keyof SamplingOptions)[])
        .filter((k) => expected[k] !== origin.sampling[k])
        .map((k) => `${k} ${origin.sampling[k]} (wanted ${expected[k]})`);
      const [made, wanted] = [origin.clip ?? null, opts.clip ?? null].map(clipText);
      if (made !== wanted) diff.push(`clip ${made} (wanted ${wanted})`);
      if (diff.length)
        throw new InputError(
          `${path} was encoded with other sampling: ${diff.join(', ')}; load it with the settings it was made with, or encode the video again`,
        );
      return handleOf({ origin, encoded: video, runner: this.runner });
    } catch (e) {
      video.dispose();
      throw e;
    }
  }

  /**
   * A video that grows: append frames as they come (`LiveVideo.append`, or a source: media/live-source.ts) at
   * a cost proportional to them, and ask about what has been seen at any moment (`snapshot`). Families that
   * cannot grow an encoded video refuse.
   */
  live(opts: LiveVideoOptions = {}): LiveVideo {
    this.checkLive();
    const runner = this.runner;
    return new LiveVideo(
      {
        runner,
        policy: this.policy,
        checkpointDefaults: this.videoDefaults,
        wrap: (encoded, { label, timestampsSec, sampling }) => {
          const n = timestampsSec.length;
          const decode: DecodeReport = {
            kind: 'video',
            requested: n,
            decoded: n,
            skipped: [],
            lostRanges: [],
          };
          return handleOf({
            origin: { label, timestampsSec, decode, sampling, durationSec: null },
            encoded,
            runner,
          });
        },
      },
      opts,
    );
  }

  /** Generates a reply to the turns (text only; the video, if any, is given as an encoded handle). */
  chat(turns: ChatTurn[], opts: ChatOptions = {}): Answer {
    this.checkLive();
    return new Answer(this.generation(turns, opts));
  }

  /** The prompt tokens `chat(turns)` will run, the video's not counted; null where the family cannot say. */
  promptTokens(turns: readonly ChatTurn[], media?: 'video' | 'image'): number | null {
    this.checkLive();
    return this.runner.promptTokens?.(turns, media) ?? null;
  }

  private generation(turns: ChatTurn[], opts: ChatOptions): Generation {
    const { video } = opts;
    if (opts.reasoningBudget !== undefined && !this.info.reasoningBudget)
      throw new UsageError(
        `${this.info.architecture} does not think before answering: drop the reasoning budget`,
        'reasoningBudget',
      );
    if (!video) return this.runner.generate(turns, undefined, opts);
    if (video.disposed) throw new ModelError('the video handle was disposed; encode the video again');
    return withVideo(this.runner.generate(turns, encodingOf(video).encoded, opts), video);
  }

  /**
   * One question about a video (a path, URL, bytes, or a handle from encodeVideo). Returns at once; the
   * answer streams as it is iterated. A video given as input is encoded for this question and freed after.
   */
  ask(video: MediaInput | VideoHandle, question: string, opts: AskOptions = {}): Answer {
    this.checkLive();
    const self = this;
    async function* run(): Generation {
      const handle = isHandle(video) ? video : await self.encodeVideo(video, opts);
      try {
        return yield* self.generation([{ role: 'user', content: question }], { ...opts, video: handle });
      } finally {
        if (!isHandle(video)) handle.dispose();
      }
    }
    return new Answer(run());
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.runner.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  private checkLive(): void {
    if (this.disposed) throw new ModelError('the model was disposed; load it again');
  }
}

/** The batches of `frames`, `pause` awaited before each one after the first. */
async function* pausing<T>(frames: AsyncIterable<T>, pause: () => Promise<void>): AsyncGenerator<T> {
  let first = true;
  for await (const batch of frames) {
    if (!first) await pause();
    first = false;
    yield batch;
  }
}

function policyOf(s: Required<SamplingOptions>): SamplingPolicy {
  if (s.sampling === 'fps') return { kind: 'fps', fps: s.fps, maxFrames: s.frames };
  if (s.sampling === 'first-seconds') return { kind: 'first-seconds', fps: s.fps, maxFrames: s.frames };
  return { kind: s.sampling, numFrames: s.frames };
}

function labelOf(input: MediaInput): string {
  if (input instanceof Uint8Array) return 'the given bytes';
  const s = String(input);
  return s.startsWith('data:') ? 'a data: URL' : s;
}

/**
 * The answer's summary names the video as decoded, so lost frames travel with every answer about it, and
 * spreads the model's attention per token group over the frames' times.
 */
async function* withVideo(generation: Generation, handle: VideoHandle): Generation {
  const { videoAttention, ...summary } = yield* generation;
  const relevance = videoAttention && frameRelevance(videoAttention, handle.timestampsSec);
  return { ...summary, video: handle.decode, ...(relevance && { relevance }) };
}

/** The sampled timestamps less those of frames that could not be decoded. */
function decodedTimestamps(sampled: readonly number[], report: DecodeReport): readonly number[] {
  if (!report.skipped.length) return sampled;
  const lost = new Map<number, number>();
  for (const f of report.skipped) lost.set(f.timestampSec, (lost.get(f.timestampSec) ?? 0) + 1);
  return sampled.filter((t) => {
    const n = lost.get(t) ?? 0;
    if (n) lost.set(t, n - 1);
    return n === 0;
  });
}

/** What a handle says about how its video was encoded (saved with it as JSON under ORIGIN_KEY). */
interface Origin {
  label: string;
  timestampsSec: readonly number[];
  decode: DecodeReport;
  sampling: Required<SamplingOptions>;
  /** The video's (or clip's) duration, which picks the policy's sampling rule (null: unknown). */
  durationSec: number | null;
  /** The token reduction applied, if any. */
  reduce?: { method: string; keep: number };
  /** The stretch sampled (null: the whole video; absent in files written before clips existed). */
  clip?: Clip | null;
}

/** The duration the sampling rules see: the clip's, within the video. */
function clipDuration(video: number | null, clip: Clip | undefined): number | null {
  if (!clip) return video;
  const end = video === null ? clip.endSec : Math.min(clip.endSec, video);
  return Math.max(0, end - clip.startSec);
}

function clipText(clip: Clip | null): string {
  return clip ? `${clip.startSec}–${clip.endSec} s` : 'none';
}

const ORIGIN_KEY = 'longshot.video';

/** A handle's encoding, how it was made, and the runner that made it. */
interface Encoding {
  encoded: EncodedVideo;
  origin: Origin;
  runner: ModelRunner;
}

const handles = new WeakMap<VideoHandle, Encoding>();

function handleOf(e: Encoding): VideoHandle {
  const { origin, encoded } = e;
  let disposed = false;
  const { label, timestampsSec, decode } = origin;
  const handle: VideoHandle = {
    label,
    timestampsSec,
    decode,
    tokens: encoded.tokens,
    bytes: encoded.bytes,
    questionBytes: encoded.questionBytes,
    get disposed() {
      return disposed;
    },
    dispose() {
      if (disposed) return;
      disposed = true;
      encoded.dispose();
    },
    [Symbol.dispose]() {
      handle.dispose();
    },
  };
  handles.set(handle, e);
  return handle;
}

function encodingOf(handle: VideoHandle): Encoding {
  const e = handles.get(handle);
  if (!e)
    throw new ModelError(`${handle.label}: this video handle was not made by this library's encodeVideo`);
  return e;
}

function isHandle(v: unknown): v is VideoHandle {
  return typeof v === 'object' && v !== null && handles.has(v as VideoHandle);
}

export type { AskResult };
