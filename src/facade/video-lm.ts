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
import '../backends/cpu/index.js'; // always available
import '../backends/cuda/index.js'; // registered lazily: nothing native loads until --device cuda
import { ModelError } from '../errors.js';
import { resolveModel } from '../hub/resolve.js';
import { type MediaInput, openVideo, type SamplingPolicy } from '../media/index.js';
import { getBackend } from '../runtime/device.js';
import { Answer, type Generation } from './answer.js';
import { defaultModelDir } from './default-model.js';
import type {
  ChatEngine,
  ChatOptions,
  EncodedVideo,
  EncodeOptions,
  ModelRunner,
  VideoHandle,
} from './engine.js';
import { inspectModel } from './inspect.js';
import { runnerLoader } from './registry.js';
import type {
  AskResult,
  ChatTurn,
  GenerationOptions,
  ModelInfo,
  ModelLoadOptions,
  SamplingOptions,
} from './types.js';
import { videoDefaultsOf, withDefaults } from './video-defaults.js';

export interface AskOptions extends SamplingOptions, GenerationOptions {
  signal?: AbortSignal;
  progress?: EncodeOptions['progress'];
}

export class VideoLM implements ChatEngine, Disposable {
  private disposed = false;

  private constructor(
    private readonly runner: ModelRunner,
    /** The checkpoint's own video sampling defaults (config.json `longshot_video_defaults`). */
    private readonly videoDefaults: SamplingOptions = {},
  ) {}

  /** Loads a checkpoint directory or hub id (downloaded into the HF cache if needed); default: the embedded model. */
  static async load(model?: string, opts: ModelLoadOptions = {}): Promise<VideoLM> {
    const id = model ?? defaultModelDir();
    const dir = await resolveModel(id, { revision: opts.revision, reporter: opts.onDownload });
    const summary = await inspectModel(dir);
    const loader = runnerLoader(summary.architecture);
    if (!loader)
      throw new ModelError(
        `${id}: ${summary.architecture} checkpoints are recognised but this build of longshot has no ${summary.architecture} model code registered`,
      );
    const device = opts.device ?? 'cpu';
    const backend = await getBackend(device).catch((e: Error) => {
      throw new ModelError(`device '${device}' is not available: ${e.message}`, {
        cause: e,
      });
    });
    return new VideoLM(await loader(summary, backend, id), videoDefaultsOf(summary.config, dir));
  }

  /** Wraps a runner directly (for model families' own tests and tools). */
  static fromRunner(runner: ModelRunner): VideoLM {
    return new VideoLM(runner);
  }

  get info(): ModelInfo {
    return this.runner.info;
  }

  /** The sampling that `opts` asks for, completed with the model's defaults. */
  samplingOf(opts: SamplingOptions = {}): Required<SamplingOptions> {
    const d = this.runner.defaults;
    return {
      frames: opts.frames ?? d.frames,
      fps: opts.fps ?? d.fps,
      sampling: opts.sampling ?? d.sampling,
      maxEdge: opts.maxEdge ?? d.maxEdge,
      minEdge: opts.minEdge ?? d.minEdge,
    };
  }

  /** Decodes the sampled frames and encodes them into a handle that any number of questions can reuse. */
  async encodeVideo(input: MediaInput, given: EncodeOptions = {}): Promise<VideoHandle> {
    this.checkLive();
    const opts = withDefaults(given, this.videoDefaults);
    if (this.runner.encodeInput) {
      try {
        const encoded = await this.runner.encodeInput(input, opts);
        return handleOf(labelOf(input), encoded.timestampsSec ?? [], encoded);
      } finally {
        opts.progress?.finish?.();
      }
    }
    const { encode, frameSize } = this.runner;
    if (!encode || !frameSize) throw new ModelError(`${this.info.id}: this model cannot encode videos`);
    const s = this.samplingOf(opts);
    await using video = await openVideo(input, { signal: opts.signal });
    const sample = await video.sample(policyOf(s));
    opts.progress?.start?.(sample.indices.length);
    try {
      const frames = video.frames(sample, {
        size: (source) => frameSize.call(this.runner, source, s),
        signal: opts.signal,
      });
      const encoded = await encode.call(this.runner, frames, sample.timestampsSec, {
        kind: video.info.kind,
        signal: opts.signal,
        onFrames: opts.progress?.frames,
      });
      return handleOf(labelOf(input), sample.timestampsSec, encoded);
    } finally {
      opts.progress?.finish?.();
    }
  }

  /** Generates a reply to the turns (text only; the video, if any, is given as an encoded handle). */
  chat(turns: ChatTurn[], opts: ChatOptions = {}): Answer {
    this.checkLive();
    return new Answer(this.generation(turns, opts));
  }

  private generation(turns: ChatTurn[], opts: ChatOptions): Generation {
    if (opts.video?.disposed) throw new ModelError('the video handle was disposed; encode the video again');
    return this.runner.generate(turns, opts.video ? encodedOf(opts.video) : undefined, opts);
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

export function policyOf(s: Required<SamplingOptions>): SamplingPolicy {
  if (s.sampling === 'fps') return { kind: 'fps', fps: s.fps, maxFrames: s.frames };
  return { kind: s.sampling, numFrames: s.frames };
}

function labelOf(input: MediaInput): string {
  if (input instanceof Uint8Array) return 'the given bytes';
  const s = String(input);
  return s.startsWith('data:') ? 'a data: URL' : s;
}

const handles = new WeakMap<VideoHandle, EncodedVideo>();

function handleOf(label: string, timestampsSec: readonly number[], encoded: EncodedVideo): VideoHandle {
  let disposed = false;
  const handle: VideoHandle = {
    label,
    timestampsSec,
    tokens: encoded.tokens,
    bytes: encoded.bytes,
    get disposed() {
      return disposed;
    },
    dispose() {
      if (disposed) return;
      disposed = true;
      encoded.dispose();
    },
  };
  handles.set(handle, encoded);
  return handle;
}

function encodedOf(handle: VideoHandle): EncodedVideo {
  const e = handles.get(handle);
  if (!e)
    throw new ModelError(`${handle.label}: this video handle was not made by this library's encodeVideo`);
  return e;
}

function isHandle(v: unknown): v is VideoHandle {
  return typeof v === 'object' && v !== null && handles.has(v as VideoHandle);
}

export type { AskResult };
