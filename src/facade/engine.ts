/**
 * What the CLI and the server need from a model, and what a model family provides to the facade.
 *
 * `ChatEngine` is the surface: encode a video once into a reusable handle, then chat about it. `VideoLM`
 * implements it for every architecture; the server is written against it alone.
 *
 * `ModelRunner` is the seam to a model family (src/models/qwen2vl, src/models/vamba): it says how frames
 * should be sized, turns decoded frames into the model's per-video state, and generates from chat turns.
 */
import type { Frame, MediaInput, Size } from '../media/index.js';
import type { Answer, Generation } from './answer.js';
import type { ChatTurn, GenerationOptions, ModelInfo, SamplingOptions, VideoProgress } from './types.js';

/** An encoded video: the model's per-video state, reusable for any number of questions. */
export interface VideoHandle {
  /** How the video was named (path or URL, never its bytes). */
  readonly label: string;
  /** Frames encoded and their timestamps (seconds). */
  readonly timestampsSec: readonly number[];
  /** Video tokens the model sees. */
  readonly tokens: number;
  /** Memory the state holds (for cache budgets). */
  readonly bytes: number;
  readonly disposed: boolean;
  dispose(): void;
}

export interface EncodeOptions extends SamplingOptions {
  signal?: AbortSignal;
  progress?: VideoProgress;
}

export interface ChatOptions extends GenerationOptions {
  /** The video the conversation is about (its turns hold only text). */
  video?: VideoHandle;
  signal?: AbortSignal;
}

export interface ChatEngine {
  readonly info: ModelInfo;
  encodeVideo(input: MediaInput, opts?: EncodeOptions): Promise<VideoHandle>;
  chat(turns: ChatTurn[], opts?: ChatOptions): Answer;
}

/** The model's per-video state as a family produces it. */
export interface EncodedVideo {
  readonly tokens: number;
  /** Timestamps of the encoded frames, when the family sampled them itself (encodeInput). */
  readonly timestampsSec?: readonly number[];
  readonly bytes: number;
  dispose(): void;
}

export interface ModelRunner {
  readonly info: ModelInfo;
  /** The family's reference preprocessing (e.g. Vamba: 128 'middle' frames, edges 256/640). */
  readonly defaults: Required<SamplingOptions>;
  /** The size frames are decoded at for `encode` (the family's resize rules applied to the source size). */
  frameSize?(source: Size, opts: Required<SamplingOptions>): Size;
  /**
   * A family with its own streamed video pipeline (Vamba: decode, patch and encode a batch at a time, its
   * official per-duration defaults) takes the input itself; `opts` holds only what the caller set.
   */
  encodeInput?(
    input: MediaInput,
    opts: SamplingOptions & { signal?: AbortSignal; progress?: VideoProgress },
  ): Promise<EncodedVideo>;
  /** Decoded frames (in batches, in sampled order) → per-video state. Reports frames as it goes. */
  encode?(
    frames: AsyncIterable<Frame[]>,
    timestampsSec: readonly number[],
    opts: { kind: 'video' | 'image'; signal?: AbortSignal; onFrames?: (done: number) => void },
  ): Promise<EncodedVideo>;
  generate(
    turns: ChatTurn[],
    video: EncodedVideo | undefined,
    opts: GenerationOptions & { signal?: AbortSignal },
  ): Generation;
  dispose(): void;
}
