/**
 * What the CLI and the server need from a model: encode a video once into a reusable handle, then chat
 * about it. `VideoLM` implements it for every model family; the server is written against it alone.
 * (A family's side of the seam, `ModelRunner`, is in models/family.ts.)
 */
import type { Clip, DecodeReport, LossPolicy, MediaInput } from '../media/index.js';
import type { EncodePlan, Pieces, QuestionCost } from '../models/family.js';
import type { ReductionRequest } from '../models/reduction.js';
import type { Answer } from './answer.js';
import type { LiveVideo, LiveVideoOptions } from './live.js';
import type { ChatTurn, GenerationOptions, ModelInfo, SamplingOptions, VideoProgress } from './types.js';

/** An encoded video: the model's per-video state, reusable for any number of questions. */
export interface VideoHandle extends Disposable {
  /** How the video was named (path or URL, never its bytes). */
  readonly label: string;
  /** Timestamps (seconds) of the frames encoded: the sampled ones that could be decoded. */
  readonly timestampsSec: readonly number[];
  /** What decoding delivered: frames asked for, decoded, and the time ranges of any lost. */
  readonly decode: DecodeReport;
  /** Video tokens the model sees. */
  readonly tokens: number;
  /** Memory the state holds (for cache budgets). */
  readonly bytes: number;
  /** What a question over it holds beyond it (the family's estimate; the server's admission); absent: none. */
  readonly questionBytes?: QuestionCost;
  readonly disposed: boolean;
  dispose(): void;
}

/**
 * `strict` refuses a video with any frame that could not be decoded; otherwise more than `maxLostFraction`
 * (default a quarter) lost is refused, and fewer are reported on the handle and the answer.
 */
export interface EncodeOptions extends SamplingOptions, LossPolicy {
  /** Sample only this stretch of the video (seconds); the family's rules then apply to the clip's frames. */
  clip?: Clip;
  /** Fewer video tokens for the LLM (models/reduction.ts); default none. */
  reduce?: ReductionRequest;
  signal?: AbortSignal;
  progress?: VideoProgress;
  /**
   * Chunked prefill (models/family.ts `Pieces`): `pause` is awaited between decoded batches of frames and
   * between pieces of the model's video prefill, so other work on the device runs while a long video is
   * encoded. The encoding is the same.
   */
  pieces?: Pieces;
}

export interface ChatOptions extends GenerationOptions {
  /** The video the conversation is about (its turns hold only text). */
  video?: VideoHandle;
  signal?: AbortSignal;
}

export interface ChatEngine {
  readonly info: ModelInfo;
  encodeVideo(input: MediaInput, opts?: EncodeOptions): Promise<VideoHandle>;
  /**
   * The device memory `encodeVideo(input, opts)` will take (the server's admission), from the video's probe and
   * sampling, nothing decoded; null where the model has no estimate. Absent: never an estimate.
   */
  planEncode?(input: MediaInput, opts?: EncodeOptions): Promise<EncodePlan | null>;
  chat(turns: ChatTurn[], opts?: ChatOptions): Answer;
  /**
   * The prompt tokens `chat(turns)` will run (about a video or an image when `media` is given), the video's own
   * not counted: its usage's `promptTokens` (the server's admission). Null or absent: the model cannot count
   * them before it runs.
   */
  promptTokens?(turns: readonly ChatTurn[], media?: 'video' | 'image'): number | null;
  /** A video that grows (facade/live.ts); an engine without it serves no live sessions. */
  live?(opts?: LiveVideoOptions): LiveVideo;
  /** False where `live` exists but this model refuses it (its family cannot grow an encoded video). */
  readonly canWatch?: boolean;
}
