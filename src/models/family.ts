/**
 * The unit of extension: a model family (Qwen2-VL, Vamba, …) is one folder under src/models that exports one
 * `ModelFamily`. The facade, the CLI, the server, the needle evaluator and the benchmarks see models only
 * through this interface and the registry (registry.ts); nothing outside a family's folder names a family.
 *
 * A family recognises its checkpoints (config.json and tensor names), opens one without loading weights
 * (parsed config, description, memory estimate), says how videos are sampled for it (data, by duration),
 * and loads a runner: decoded frames in → a reusable per-video state; chat turns on that state → a stream.
 */
import type { Command } from 'commander';
import type { FamilyEvaluation } from '../eval/benchmark.js';
import type { Generation } from '../facade/answer.js';
import type { ChatTurn, GenerationOptions, ModelInfo, SamplingOptions } from '../facade/types.js';
import type { JsonObject } from '../io/json-fields.js';
import type { Frame, MediaInput, Size } from '../media/index.js';
import type { Backend } from '../runtime/backend.js';
import type { TokenReduction } from './reduction.js';

/** What a checkpoint directory says before any weight is read. */
export interface CheckpointFiles {
  dir: string;
  /** config.json as parsed JSON. */
  config: JsonObject;
  /** Every tensor name in its safetensors headers. */
  tensorNames: readonly string[];
}

/** Sizes read from the safetensors headers (no weights loaded). */
export interface WeightSummary {
  parameters: number;
  /** Bytes the weights occupy as stored. */
  weightBytes: number;
  /** The dtype most of the weights are stored in. */
  dtype: string;
  /** Counted from config.json by the family (a directory without weights), not read from safetensors headers. */
  fromConfig?: boolean;
}

/** What `longshot info` shows about a checkpoint. */
export interface ModelDescription {
  layers: number;
  hiddenSize: number;
  /** Further rows in the family's own words, e.g. ['vision encoder', '32 blocks, 1280 wide']. */
  details: readonly (readonly [label: string, value: string])[];
}

/** The frames (or, for a text model, the context) a memory estimate is for. */
export interface FrameGeometry {
  frames: number;
  /** Frame size fed to the model (after the family's pre-resize). */
  width: number;
  height: number;
  /** Bytes per activation element: 2 for bf16 on a GPU, 4 for the CPU backend's f32. */
  activationBytes: number;
  /** Tokens of text in the context: a text-only family's whole context (video families budget their own prompt). */
  contextTokens?: number;
}

export interface MemoryEstimate {
  videoTokens: number;
  /** A text model: the context tokens the estimate is for (the geometry's, else the family's default). */
  contextTokens?: number;
  weights: number;
  /** Per-video state that lives as long as an encoded video (K/V, hidden states); a text model's context state. */
  videoState: number;
  /** The largest transient working set. */
  working: number;
  total: number;
}

/** Different defaults for videos at least `fromDurationSec` long (e.g. Vamba's hour-long setting). */
export interface DurationRule extends SamplingOptions {
  fromDurationSec: number;
}

export type SamplingKind = NonNullable<SamplingOptions['sampling']>;

/** How videos are sampled for a family: its reference preprocessing, as data. */
export interface VideoPolicy {
  readonly defaults: Required<SamplingOptions>;
  /** Applied over `defaults`; the last rule whose `fromDurationSec` the video reaches wins. */
  readonly byDuration?: readonly DurationRule[];
  /** The sampling kinds the family accepts (default: all). */
  readonly kinds?: readonly SamplingKind[];
  /** The size frames are decoded at (the family's pre-resize; its processor may resize further). */
  frameSize(source: Size, s: Required<SamplingOptions>): Size;
}

/** A checkpoint a family has opened: its config parsed, its weights not loaded. */
export interface OpenedCheckpoint {
  describe(): ModelDescription;
  estimateMemory(g: FrameGeometry): MemoryEstimate;
  /** Loads the weights on `backend`; `id` is how the user named the model (ModelInfo.id). */
  load(backend: Backend, id: string): Promise<ModelRunner>;
}

export interface ModelFamily {
  /** The architecture name users see (`ModelInfo.architecture`, `info`, the server's model card). */
  readonly name: string;
  /** Whether this family reads the checkpoint. The registry asks families in order; the first that says yes wins. */
  recognizes(files: CheckpointFiles): boolean;
  /** Parses the config (a ModelError names a bad field); reads nothing but small JSON files. */
  open(files: CheckpointFiles, weights: WeightSummary): Promise<OpenedCheckpoint>;
  /** How videos are sampled for it; absent for a text-only family (videos and images are refused). */
  readonly video?: VideoPolicy;
  /**
   * Sizes computed from config.json alone, so that `info` can describe a directory holding only a config
   * (`fromConfig` set); families that cannot count their parameters from the config leave it out.
   */
  sizeFromConfig?(files: CheckpointFiles): WeightSummary;
  /** The family's own CLI sub-commands (e.g. Vamba's `convert`), registered after the built-in ones. */
  readonly commands?: readonly ((program: Command) => void)[];
  /** The family's own benchmark prompts (and parsing) where its papers used them; default: the official ones. */
  readonly evaluation?: FamilyEvaluation;
}

/** A family that reads videos (its policy is not optional). */
export type VideoFamily = ModelFamily & { readonly video: VideoPolicy };

/** A model's per-video state as its runner produces it. */
export interface EncodedVideo {
  /** Video tokens the model sees. */
  readonly tokens: number;
  /** Memory the state holds (for cache budgets). */
  readonly bytes: number;
  /** What a question over this video holds beyond it (`QuestionCost`); absent: nothing beyond the decode cache. */
  readonly questionBytes?: QuestionCost;
  dispose(): void;
}

/** A question's size, as the server counts it before the question runs (`ModelRunner.promptTokens`). */
export interface QuestionBudget {
  /** The prompt's text tokens (the chat template included), the video's not counted. */
  textTokens: number;
  /** The answer's budget (max_tokens). */
  newTokens: number;
  /** The conversation, where its form decides the cost (Qwen2-VL: whether it continues the video's prefix). */
  turns?: readonly ChatTurn[];
}

/**
 * The device memory a question over an encoded video holds while it is answered, beyond the encoded video and
 * beyond what `ModelInfo.decodeCache` counts for its text: e.g. TimeViper's and TSTAR's prefill of the LLM over
 * every video token again, and the caches that prefill leaves (Qwen2-VL's too, for a prompt that does not
 * continue the video's prefilled prefix). One formula per family (its size.ts), given with
 * the plan (before the encode) and with the encoded video (a cached one), so that the server reserves it
 * for each question (serve/ledger.ts).
 */
export type QuestionCost = (q: QuestionBudget) => number;

/** What the facade tells a runner about the frames it hands over. */
export interface FrameBatchContext {
  /** 'image': one still frame (the family turns it into what its encoder needs, e.g. a temporal pair). */
  kind: 'video' | 'image';
  /** Timestamps of the sampled frames, in order (the stream yields at most this many). */
  timestampsSec: readonly number[];
  /** The sampling that chose and sized the frames. */
  sampling: Required<SamplingOptions>;
  /** The input the frames came from (a family may key a saved state by a file's content). */
  input?: MediaInput;
  signal?: AbortSignal;
  /** Frames encoded so far, and the video tokens they made where the family counts them as it goes. */
  onFrames?(done: number, tokens?: number): void;
  /** The token reduction the user chose (models/reduction.ts), one the runner listed in `reductions`. */
  reduction?: { reduction: TokenReduction; keep: number } | null;
  /** Chunked prefill: the model's video prefill in pieces, other work run between them (`Pieces`). */
  pieces?: Pieces;
}

/**
 * How a long encode shares the device (chunked prefill, serve/): the model's prefill of the video runs in
 * pieces of about `tokens` video tokens (whole temporal groups), `pause` awaited between two pieces while
 * other work (the server's batched decode steps) runs. The result equals the prefill in one piece. Families
 * that prefill in pieces: Vamba, Qwen2-VL; the others prefill at once (the facade still pauses between
 * decoded batches of frames).
 */
export interface Pieces {
  tokens: number;
  pause(): Promise<void>;
}

/** The frames an encode is planned for (`ModelRunner.planEncode`): as sampled, at the size decoded. */
export interface EncodeGeometry {
  kind: 'video' | 'image';
  frames: number;
  /** Frame size handed to the runner (after the family's pre-resize). */
  width: number;
  height: number;
  /** Chunked prefill's video tokens a piece (`Pieces.tokens`); absent: the encode runs at once. */
  pieceTokens?: number;
}

/**
 * What encoding a video will hold on the device, estimated from the config and the geometry before any frame
 * is decoded (the server's admission, serve/ledger.ts).
 */
export interface EncodePlan {
  videoTokens: number;
  /** The encoded video's state once done (what the video cache then holds). */
  stateBytes: number;
  /** The encode's peak above what was held before it: its working set plus the state being built. */
  peakBytes: number;
  /** What each question over the encoded video will hold beyond it (as `EncodedVideo.questionBytes`). */
  questionBytes?: QuestionCost;
}

/** A loaded model behind the facade. */
export interface ModelRunner {
  readonly info: ModelInfo;
  /** The token reductions (models/reduction.ts) its `encode` applies besides `none`; absent: none. */
  readonly reductions?: readonly string[];
  /** Decoded frames (in batches, in sampled order) → per-video state. */
  encode(frames: AsyncIterable<Frame[]>, context: FrameBatchContext): Promise<EncodedVideo>;
  /** The device memory `encode` will take for these frames; absent: the family has no estimate. */
  planEncode?(geometry: EncodeGeometry): EncodePlan;
  /** A reply to the turns (text only; the video, if any, is given as encoded state). */
  generate(
    turns: ChatTurn[],
    video: EncodedVideo | undefined,
    opts: GenerationOptions & { signal?: AbortSignal },
  ): Generation;
  /**
   * The prompt tokens `generate` runs for `turns` (about a video or an image when `media` is given), the
   * video's own not counted: what its usage's `promptTokens` will say, for the server's admission (cheap: the
   * prompt is rendered and tokenized, nothing runs). Absent: the server estimates them from the characters.
   */
  promptTokens?(turns: readonly ChatTurn[], media?: 'video' | 'image'): number;
  /**
   * Writes an encoded video to `path` with the facade's `metadata` (strings) alongside; a family without it
   * cannot save encodings. The facade writes to a temporary path and renames it into place.
   */
  saveVideo?(video: EncodedVideo, path: string, metadata: Record<string, string>): Promise<void>;
  /** Reads a file saveVideo wrote, refusing (InputError) one made by another model or runtime dtype. */
  loadVideo?(path: string): Promise<SavedVideo>;
  /**
   * A video that grows (live video): frames appended at a cost proportional to them, questions answered
   * about the frames so far. A family without it refuses live video.
   */
  live?(context: LiveContext): LiveEncoding;
  dispose(): void;
}

/** What the facade tells a runner about a live video. */
export interface LiveContext {
  /** The sampling that sizes the frames (its fps: the rate frames are taken at). */
  sampling: Required<SamplingOptions>;
  /** What the video is (a key for the state: a live video has no content hash). */
  label: string;
}

/** A growing per-video state (ModelRunner.live). */
export interface LiveEncoding extends Disposable {
  /** Frames held: encoded, or waiting for the frames the model takes them with (a temporal group). */
  readonly frames: number;
  /** The oldest held frames that are encoded, i.e. what a snapshot sees (the rest wait for their group). */
  readonly encodedFrames: number;
  /** Video tokens held. */
  readonly tokens: number;
  /** Memory the state holds. */
  readonly bytes: number;
  /**
   * Runs only these frames (decoded at the family's frame size, in order, after the earlier ones) through the
   * model, a temporal group at a time, letting other work (a question) run between groups.
   */
  append(frames: readonly Frame[], signal?: AbortSignal): Promise<void>;
  /** The encoded frames so far, as a video `generate` takes; later appends and drops leave it unchanged. */
  snapshot(): EncodedVideo;
  /**
   * Forgets up to `count` of the oldest encoded frames (whole temporal groups) for a window policy; returns
   * how many it forgot. Absent: the family cannot forget frames (keep everything).
   */
  dropOldest?(count: number): number;
}

/** An encoded video read back from disk, with the metadata the facade saved with it. */
export interface SavedVideo {
  video: EncodedVideo;
  metadata: Readonly<Record<string, string>>;
}

/** What a family's loader gets: the checkpoint as the user named it, its parsed config and its sizes. */
export interface CheckpointSource<Config> {
  id: string;
  dir: string;
  config: Config;
  weights: WeightSummary;
}

/** The ModelInfo of a loaded runner. */
export function runnerInfo(
  architecture: string,
  src: CheckpointSource<unknown>,
  shape: { layers: number; hiddenSize: number },
  loaded: { dtype: string; device: ModelInfo['device'] },
): ModelInfo {
  return {
    id: src.id,
    dir: src.dir,
    architecture,
    parameters: src.weights.parameters,
    weightBytes: src.weights.weightBytes,
    ...loaded,
    ...shape,
  };
}

/** A MemoryEstimate from its parts: the total is the weights as stored, the per-video state and the working set. */
export function memoryEstimate(
  weights: WeightSummary,
  parts: { videoTokens: number; contextTokens?: number; videoState: number; working: number },
): MemoryEstimate {
  return {
    ...parts,
    weights: weights.weightBytes,
    total: weights.weightBytes + parts.videoState + parts.working,
  };
}
