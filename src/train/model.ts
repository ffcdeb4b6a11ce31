/**
 * What the trainer asks of a model family: its weights by Hugging Face name, a recorded forward to the logits
 * of one example, greedy answers for the evaluation, and saving in the family's own checkpoint layout.
 */
import { ModelError } from '../errors.js';
import * as ops from '../runtime/ops.js';
import { tidy } from '../runtime/scope.js';
import type { Tensor } from '../runtime/tensor.js';
import type { Example } from './data.js';

export interface TrainModel extends Disposable {
  /** Every weight by its checkpoint name, in the checkpoint's shapes (the tensors the forward reads). */
  readonly weights: ReadonlyMap<string, Tensor>;
  /** Names whose weight the forward reads as a plain number (no gradient: they cannot train), with why. */
  readonly untrainable: ReadonlyMap<string, string>;
  /** The config.json the checkpoint is saved with. */
  readonly configJson: Record<string, unknown>;
  /**
   * A forward over the current weights, built on the spot (inside valueAndGrad, so that everything the
   * modules derive from the weights at construction is recorded too). `logits(ex)` gives
   * [prompt + answer − 1, vocab] f32 with the answer fed in (row j predicts token j + 1). `checkpoint`
   * (recipe batch.checkpoint): for a forward that checkpoints its synchronous parts itself (`checkpointsParts`).
   */
  forward(checkpoint?: Checkpoint): TrainForward;
  /** The prompt text of a question from JSONL data, when the family's is not Vamba's. */
  prompt?(question: string): string;
  /** What ends an answer from JSONL data, when not `<|im_end|>`. */
  readonly answerEnd?: string;
  /** Greedy answers (at most maxNew tokens each, stopping at <|im_end|>, which is left out). */
  answers(examples: readonly Example[], maxNew: number): Promise<number[][]>;
}

/** Activation checkpointing of a synchronous part of a forward (GradEngine.checkpoint). */
export type Checkpoint = (fn: () => Tensor) => Tensor;

export interface TrainForward extends Disposable {
  /**
   * Whether the forward checkpoints its synchronous parts itself with forward()'s `checkpoint` (a forward that
   * awaits, which a checkpoint cannot replay whole: TimeViper's vision half); else the trainer checkpoints each
   * whole forward.
   */
  readonly checkpointsParts?: boolean;
  /**
   * A promise from a forward that awaits host decisions (TimeViper: ToMe's merge plan, the token drops); the
   * trainer then records under valueAndGradAsync, and the forward cannot be checkpointed whole.
   */
  logits(ex: Example): Tensor | Promise<Tensor>;
  /**
   * Where the family can: the examples `canBatch` accepts in one forward, as `padded(exs)` lays them out —
   * logits [exs.length · seq, vocab] f32 (a step's videos in one pass instead of one pass each). A promise
   * where `logits` is one (TimeViper).
   */
  batchLogits?(exs: readonly Example[]): Tensor | Promise<Tensor>;
  /**
   * Whether `batchLogits` takes these examples exactly (one video shape; for families whose video tokens sit
   * in the text, at one index): the trainer runs the others one by one. Present with `batchLogits`.
   */
  canBatch?(exs: readonly Example[]): boolean;
}

/** Whether `fwd` runs these examples in one batched forward (see TrainForward.canBatch). */
export const batches = (
  fwd: TrainForward,
  exs: readonly Example[],
): fwd is TrainForward & Required<Pick<TrainForward, 'batchLogits'>> =>
  !!fwd.batchLogits && exs.length > 1 && !!fwd.canBatch?.(exs);

/** The error of a batched forward given examples its `canBatch` refuses. */
export function assertBatchable(fwd: TrainForward, exs: readonly Example[], family: string): void {
  if (!fwd.canBatch?.(exs))
    throw new ModelError(
      `${family}: these examples cannot share one batched forward (their videos differ in shape or sit at different places in their prompts); run them one by one with logits()`,
    );
}

/** A forward that never awaits (every family but TimeViper): its logits are a tensor. */
export interface SyncTrainForward extends TrainForward {
  logits(ex: Example): Tensor;
  batchLogits?(exs: readonly Example[]): Tensor;
}

/**
 * The logits of a forward that must not await (activation checkpointing replays it synchronously): `out`, from
 * `logits` or `batchLogits`.
 */
export function syncLogits(out: Tensor | Promise<Tensor>): Tensor {
  if (out instanceof Promise) {
    out.then((t) => t.dispose()).catch(() => {});
    throw new ModelError('this training forward awaits host decisions: it cannot be checkpointed');
  }
  return out;
}

/** Input ids of an example with its answer fed in, and the target of every row (−100: no loss there). */
export function teacherForced(ex: Example): { ids: number[]; targets: Int32Array } {
  const ids = [...ex.prompt, ...ex.answer.slice(0, -1)];
  const targets = new Int32Array(ids.length).fill(IGNORE);
  targets.set(ex.answer, ex.prompt.length - 1);
  return { ids, targets };
}

export const IGNORE = -100;

/** Whether examples can share one batched forward: their videos have one frame count and size. */
export const sameVideoShape = (exs: readonly Example[]): boolean =>
  exs.every((e) => e.count === exs[0].count && e.width === exs[0].width && e.height === exs[0].height);

/**
 * The distinct videos of a batch and each example's among them: the askings of one rendered video (v2 data) share
 * its frame bytes, so a family's video side (tower, compressor, Vamba's video path) runs once per video and its
 * outputs go to each asking by `perExample`; the gradients of a shared video's rows add up over its askings, as
 * they would over separate passes.
 */
export interface BatchVideos {
  videos: Example[];
  /** Example i's video is videos[of[i]]. */
  of: Int32Array;
}

export function batchVideos(exs: readonly Example[]): BatchVideos {
  const videos: Example[] = [];
  const of = new Int32Array(exs.length);
  exs.forEach((ex, i) => {
    const j = videos.findIndex((v) => sameFrames(v, ex));
    of[i] = j >= 0 ? j : videos.push(ex) - 1;
  });
  return { videos, of };
}

const sameFrames = (a: Example, b: Example): boolean =>
  a.count === b.count &&
  a.width === b.width &&
  a.height === b.height &&
  a.frames.buffer === b.frames.buffer &&
  a.frames.byteOffset === b.frames.byteOffset &&
  a.frames.length === b.frames.length;

/**
 * x holding each video's rows one video after another ([videos · n, …]) → each example's video rows one example
 * after another ([examples · n, …]): a view of x when every example has its own video, else a gather.
 */
export function perExample(x: Tensor, b: BatchVideos): Tensor {
  const { videos, of } = b;
  if (videos.length === of.length && of.every((j, i) => j === i)) return x.reshape(x.shape);
  const [rows, ...rest] = x.shape;
  const n = rows / videos.length;
  return tidy(() => {
    const ids = ops.tensor(x.backend, of, [of.length], 'i32');
    return ops.embedding(x.reshape([videos.length, -1]), ids).reshape([of.length * n, ...rest]);
  });
}

/**
 * The teacher-forced examples one after another, each padded at its end to the longest (`seq`) with `pad`:
 * in a causal forward the padding changes no earlier row, and its rows have no target.
 */
export function padded(
  exs: readonly Example[],
  pad: number,
): { ids: Int32Array; targets: Int32Array; seq: number } {
  const forced = exs.map(teacherForced);
  const seq = Math.max(...forced.map((f) => f.ids.length));
  const ids = new Int32Array(exs.length * seq).fill(pad);
  const targets = new Int32Array(exs.length * seq).fill(IGNORE);
  forced.forEach((f, i) => {
    ids.set(f.ids, i * seq);
    targets.set(f.targets, i * seq);
  });
  return { ids, targets, seq };
}

/**
 * Logits [batch·n, vocab] of `batch` sequences of n rows one after another → the same without rows
 * [at, at + drop) of each (the video rows a family's logits leave out, so that row j again predicts token j + 1).
 * Takes `all` over (disposed once copied).
 */
export function dropRows(all: Tensor, batch: number, at: number, drop: number): Tensor {
  if (!drop) return all;
  const [rows, vocab] = all.shape;
  const n = rows / batch;
  const out = tidy(() => {
    const seqs = all.reshape([batch, n, vocab]);
    const parts = [ops.slice(seqs, 1, 0, at), ops.slice(seqs, 1, at + drop, n)].filter((t) => t.shape[1]);
    return (parts.length > 1 ? ops.concat(parts, 1) : parts[0]).reshape([batch * (n - drop), vocab]);
  });
  all.dispose();
  return out;
}

/**
 * A greedy answer from the prompt's logits: argmax tokens fed back through `step` until <|im_end|> (left out)
 * or `maxNew` tokens. Each logits tensor is freed once read. (TimeViper's decode step is async.)
 */
export async function greedyAnswer(
  first: Tensor,
  step: (token: number) => Tensor | Promise<Tensor>,
  imEnd: number,
  maxNew: number,
): Promise<number[]> {
  const answer: number[] = [];
  let logits = first;
  for (;;) {
    const next = ops.argmax(logits);
    logits.dispose();
    const tok = await next.item();
    next.dispose();
    if (tok === imEnd) break;
    answer.push(tok);
    if (answer.length >= maxNew) break;
    logits = await step(tok);
  }
  return answer;
}
