/**
 * What the trainer asks of a model family: its weights by Hugging Face name, a recorded forward to the logits
 * of one example, greedy answers for the evaluation, and saving in the family's own checkpoint layout.
 */
import * as ops from '../runtime/ops.js';
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
   * [prompt + answer − 1, vocab] f32 with the answer fed in (row j predicts token j + 1).
   */
  forward(): TrainForward;
  /** Greedy answers (at most maxNew tokens each, stopping at <|im_end|>, which is left out). */
  answers(examples: readonly Example[], maxNew: number): Promise<number[][]>;
}

export interface TrainForward extends Disposable {
  logits(ex: Example): Tensor;
  /**
   * Where the family can: examples whose videos have one shape in one forward, as `padded(exs)` lays them
   * out — logits [exs.length · seq, vocab] f32 (a step's videos in one pass instead of one pass each).
   */
  batchLogits?(exs: readonly Example[]): Tensor;
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
 * A greedy answer from the prompt's logits: argmax tokens fed back through `step` until <|im_end|> (left out)
 * or `maxNew` tokens. Each logits tensor is freed once read.
 */
export async function greedyAnswer(
  first: Tensor,
  step: (token: number) => Tensor,
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
    logits = step(tok);
  }
  return answer;
}
