/** The typed options and results of the library facade (`VideoLM`), shared by the CLI and the server. */
import type { DecodeReport } from '../media/index.js';
import type { DeviceName } from '../runtime/backend.js';
import type { Relevance } from './relevance.js';

/** A model family's name (models/registry.ts lists them), e.g. the `model_type` it reads. */
export type Architecture = string;

/** Which frames to take from a video and at what size. Unset fields take the model's defaults. */
export interface SamplingOptions {
  /** How many frames (for 'middle' / 'uniform'). */
  frames?: number;
  /** Frames per second (for 'fps'). */
  fps?: number;
  /**
   * 'middle' (Vamba chat), 'uniform' (Vamba eval), 'fps' (Qwen2-VL) or 'first-seconds' (TimeViper: `fps` from the
   * start, the first `frames` kept).
   */
  sampling?: 'middle' | 'uniform' | 'fps' | 'first-seconds';
  /** Longest side of a frame before the model's own resize. */
  maxEdge?: number;
  /** Shortest side of a frame before the model's own resize. */
  minEdge?: number;
}

export interface GenerationOptions {
  maxNewTokens?: number;
  /** 0 = greedy. */
  temperature?: number;
  topK?: number;
  topP?: number;
  repetitionPenalty?: number;
  seed?: number;
  /**
   * At most this many tokens of thinking, then the answer (Nemotron-H's convention: the thinking is cut at the
   * budget, closed with `.\n</think>\n\n` unless it closed itself, and the same assistant message continues
   * for the rest of `maxNewTokens`). Only models whose info says `reasoningBudget`.
   */
  reasoningBudget?: number;
  /**
   * Also return where in the video the answer looked (AskResult.relevance). Off by default: it recomputes
   * one attention row per layer and generated token.
   */
  relevance?: boolean;
}

export interface Usage {
  /** Text tokens of the prompt (the video's tokens are counted apart). */
  promptTokens: number;
  /** Tokens the video contributed (in the sequence for Qwen2-VL; cross-attended for Vamba). */
  videoTokens: number;
  completionTokens: number;
  totalTokens: number;
}

export type FinishReason = 'stop' | 'length';

export interface AskResult {
  text: string;
  usage: Usage;
  finishReason: FinishReason;
  /** The video the answer is about, as decoded: `decoded < requested` when frames were lost (see `lostRanges`). */
  video?: DecodeReport;
  /** Per-frame relevance of the answer, when asked for with `relevance` (facade/relevance.ts). */
  relevance?: Relevance;
}

export interface ModelInfo {
  /** Directory or hub id it was loaded from. */
  id: string;
  dir: string;
  architecture: Architecture;
  /** Parameter count, from the checkpoint's tensor shapes. */
  parameters: number;
  /** Bytes the weights occupy as stored. */
  weightBytes: number;
  dtype: string;
  device: DeviceName;
  layers: number;
  hiddenSize: number;
  /** Whether it answers only about a video or an image (Vamba cross-attends to one): text-only chats are refused. */
  videoRequired?: boolean;
  /** Whether it is a text model (no video policy, no vision encoder): videos and images are refused. */
  textOnly?: boolean;
  /** Whether it honours `reasoningBudget` (a model that thinks in `<think>…</think>` first). */
  reasoningBudget?: boolean;
  /** The cache memory one conversation holds while it decodes (the server's admission estimate). */
  decodeCache?: DecodeCacheSize;
}

export interface DecodeCacheSize {
  /** K/V bytes each token of the conversation adds. */
  bytesPerToken: number;
  /**
   * Bytes of state a conversation holds whatever its length (Mamba states; a prefill's part that does not grow
   * with the prompt, e.g. a Mamba chunk's states). A video's state (Vamba's cross-attention K/V, Qwen2-VL's
   * prefix K/V) is shared by every question about it and not counted here.
   */
  bytesPerSequence: number;
  /** Activations one token holds while it runs through a layer (a prompt's prefill; a row of a batched step). */
  activationBytesPerToken?: number;
  /** A row's logits in f32 and the sampler's copy of them. */
  logitsBytes?: number;
}

export interface ModelLoadOptions {
  /** Where to run (default 'auto': CUDA when it is available, else the CPU). */
  device?: DeviceName | 'auto';
  /** Hub revision when a hub id is given. */
  revision?: string;
  /** Byte progress of a hub download. */
  onDownload?: import('../hub/download.js').DownloadReporter;
}

/** A chat turn whose media, if any, is passed apart as an encoded video. */
export interface ChatTurn {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** Progress of the per-video work, for a progress bar. */
export interface VideoProgress {
  /** Called once the frames are chosen. */
  start?(frames: number): void;
  /** Frames decoded and encoded so far, and the video tokens they made (where the model reports them). */
  frames?(done: number, tokens?: number): void;
  finish?(): void;
}
