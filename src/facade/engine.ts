/**
 * What the CLI and the server need from a model: encode a video once into a reusable handle, then chat
 * about it. `VideoLM` implements it for every model family; the server is written against it alone.
 * (A family's side of the seam, `ModelRunner`, is in models/family.ts.)
 */
import type { MediaInput } from '../media/index.js';
import type { Answer } from './answer.js';
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
