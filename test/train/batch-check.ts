/**
 * The checks of a family's batched training forward (TrainForward.batchLogits): each example's rows of the
 * batched logits equal its own forward's, and the gradients of the summed loss equal the sum of the
 * per-example gradients.
 */
import assert from 'node:assert/strict';
import { crossEntropy, valueAndGradAsync } from '../../src/autograd/index.js';
import { ModelError } from '../../src/errors.js';
import type { JsonObject } from '../../src/io/json-fields.js';
import { ALPHA } from '../../src/models/timeviper/weights.js';
import { parseTstarConfig } from '../../src/models/tstar/config.js';
import { needleTokenizerConfig, needleTokenizerJson } from '../../src/needle/tokenizer.js';
import type { Backend } from '../../src/runtime/backend.js';
import * as ops from '../../src/runtime/ops.js';
import type { Tensor } from '../../src/runtime/tensor.js';
import { type Example, openSource } from '../../src/train/data.js';
import { batches, IGNORE, padded, type TrainForward, teacherForced } from '../../src/train/model.js';
import { type TimeViperTrainModel, timeViperScratch } from '../../src/train/timeviper.js';
import { TstarTrainModel } from '../../src/train/tstar.js';
import { Random } from '../../src/util/random.js';
import { assertCloseScaled, dropVambaFields } from '../helpers.js';
import { randomHost } from '../models/tiny-tstar.js';
import { TINY_TIMEVIPER_PATH, tinyRecipe } from './tiny.js';

/** Three examples of the tiny recipe at `path` of one frame count whose prompts are not all one length. */
export async function needleExamples(path?: string): Promise<Example[]> {
  const recipe = tinyRecipe(undefined, path);
  const src = await openSource(recipe.data.train, { tokenizer: null, prompt: (q) => q });
  const rng = new Random(7);
  const out: Example[] = [];
  while (out.length < 3 || new Set(out.map((e) => teacherForced(e).ids.length)).size < 2) {
    const ex = await src.draw(rng, 8);
    if (out.length === 3) out.shift();
    out.push(ex);
  }
  await src.close();
  return out;
}

/** Examples of 4 frames of size×size (bytes from `seed`) with these prompts; answers of different lengths. */
export function videoExamples(prompts: number[][], seed = 1, size = 56): Example[] {
  return prompts.map((prompt, i) => {
    const n = 4 * size * size * 3;
    const frames = Uint8Array.from({ length: n }, (_, j) => (j * (29 + 2 * i) + (j >> 7) * 13 + seed) % 256);
    const answer = [...[40, 41, 42].slice(0, i + 1), 2];
    return { frames, count: 4, width: size, height: size, prompt, answer, group: '' };
  });
}

/**
 * `exs` and one more example: exs[q]'s question and answer over exs[v]'s video, its very bytes, as the askings of
 * one v2 video share them (the batched forward encodes that video once and gives it to both).
 */
export const withAsking = (exs: readonly Example[], v: number, q: number): Example[] => [
  ...exs,
  { ...exs[q], frames: exs[v].frames, count: exs[v].count, width: exs[v].width, height: exs[v].height },
];

/**
 * Asserts that `fwd` refuses to batch an example of prompt `a` with one whose video sits elsewhere in its prompt
 * (`elsewhere`) or with one of smaller frames (`smaller`: 28×28) — `canBatch` says no, the trainer goes one by one,
 * `batchLogits` throws — and batches `a` with itself.
 */
export function assertRefusesUnlikeVideos(
  fwd: TrainForward,
  a: number[],
  elsewhere: number[],
  smaller: number[],
): void {
  const [ea, eb] = videoExamples([a, elsewhere]);
  const [ec] = videoExamples([smaller], 2, 28);
  for (const exs of [
    [ea, eb],
    [ea, ec],
  ]) {
    assert.equal(fwd.canBatch!(exs), false);
    assert.equal(batches(fwd, exs), false);
    assert.throws(() => fwd.batchLogits!(exs), ModelError);
  }
  assert.equal(batches(fwd, [ea, ea]), true);
}

/** A TSTAR train model over random weights (randomHost's ranges) of `json` on `backend`. */
export function randomTstar(json: JsonObject, seed: number, backend: Backend): TstarTrainModel {
  const host = randomHost(parseTstarConfig(json), seed);
  const weights = new Map([...host].map(([n, h]) => [n, ops.tensor(backend, h.values, h.shape)]));
  return TstarTrainModel.create(json, weights, 2);
}

/** The tiny recipe's model as a Qwen2-VL (as qwen2vl.test.ts trains it), with the needle tokenizer's vocabulary. */
export function tinyQwen2VLJson(): JsonObject {
  const json = structuredClone(tinyRecipe().model.config!) as JsonObject;
  dropVambaFields(json);
  json.vocab_size = 100;
  return json;
}

/** Σ over the answer rows of the cross-entropy (the trainer's objective without its scaling). */
function lossSum(logits: Tensor, targets: Int32Array): Tensor {
  const rows = targets.filter((t) => t !== IGNORE).length;
  const t = ops.tensor(logits.backend, targets, [targets.length], 'i32');
  return ops.scale(crossEntropy(logits, t, { ignoreIndex: IGNORE }), rows);
}

const maxAbs = (v: number[]) => v.reduce((m, x) => Math.max(m, Math.abs(x)), 0);

/**
 * Asserts (for a forward that awaits too: TimeViper) that `model`'s batched forward of `exs` matches its per-example forwards (logits to `tol.logits` of
 * the largest, every gradient to `tol.grads` of its largest, or of a thousandth of the largest of all for
 * gradients that are zero in exact arithmetic); returns the names of the weights the loss does not reach.
 */
export async function assertBatchMatches(
  model: { weights: ReadonlyMap<string, Tensor>; forward(): TrainForward },
  exs: readonly Example[],
  tol = { logits: 1e-5, grads: 1e-4 },
): Promise<string[]> {
  const params = [...model.weights.values()];
  // Logits: example i's rows are rows [i·seq, i·seq + its length) of the batch.
  const { targets, seq } = padded(exs, 0);
  {
    using fwd = model.forward();
    assert.ok(fwd.canBatch?.(exs), 'the examples batch');
    using all = await fwd.batchLogits!(exs);
    const vocab = all.shape[1];
    assert.deepEqual(all.shape, [exs.length * seq, vocab]);
    const batched = (await all.data()) as Float32Array;
    for (const [i, ex] of exs.entries()) {
      using one = await fwd.logits(ex);
      const rows = one.shape[0];
      assert.equal(rows, teacherForced(ex).ids.length);
      assertCloseScaled(
        batched.subarray(i * seq * vocab, (i * seq + rows) * vocab),
        (await one.data()) as Float32Array,
        tol.logits,
        `example ${i} logits`,
      );
    }
  }

  // Gradients of the summed loss: one batched forward against the examples one by one.
  const b = await valueAndGradAsync(async () => {
    using fwd = model.forward();
    return lossSum(await fwd.batchLogits!(exs), targets);
  }, params);
  const s = await valueAndGradAsync(async () => {
    using fwd = model.forward();
    let total: Tensor | null = null;
    for (const ex of exs) {
      const l = lossSum(await fwd.logits(ex), teacherForced(ex).targets);
      total = total ? ops.add(total, l) : l;
    }
    return total!;
  }, params);
  assert.ok(Math.abs(b.value - s.value) <= tol.logits * Math.abs(s.value), `loss ${b.value} vs ${s.value}`);
  const names = [...model.weights.keys()];
  const [gb, gs] = [
    await Promise.all(b.grads.map((g) => g.toArray())),
    await Promise.all(s.grads.map((g) => g.toArray())),
  ];
  for (const g of [...b.grads, ...s.grads]) g.dispose();
  const largest = Math.max(...gs.map(maxAbs));
  const zero: string[] = [];
  for (let i = 0; i < params.length; i++) {
    if (maxAbs(gs[i]) <= 1e-6 * largest) zero.push(names[i]);
    // Relative to the tensor's largest, or to a thousandth of the largest of all for gradients that are
    // zero in exact arithmetic (attention's key biases: a constant added to every score of a query).
    const err = maxAbs(gb[i].map((v, j) => v - gs[i][j])) / Math.max(maxAbs(gs[i]), 1e-3 * largest);
    assert.ok(err <= tol.grads, `${names[i]}: relative error ${err}`);
  }
  return zero;
}

/** The tiny needle TimeViper from scratch, its TransV gates α opened (at 0 they pass no gradient to TransV). */
export function tinyTimeViper(
  backend: Backend,
  seed: number,
  /** Config keys over the tiny recipe's (e.g. no drop stages: use_pdrop false, merge_module no_merge). */
  patch: Record<string, unknown> = {},
): TimeViperTrainModel {
  const base = tinyRecipe(undefined, TINY_TIMEVIPER_PATH);
  const recipe = { ...base, seed, model: { ...base.model, config: { ...base.model.config, ...patch } } };
  const files = {
    'tokenizer.json': JSON.stringify(needleTokenizerJson(1)),
    'tokenizer_config.json': JSON.stringify(needleTokenizerConfig()),
  };
  const { model } = timeViperScratch(recipe, files, backend, 'f32');
  const alpha = model.weights.get(ALPHA);
  if (alpha) backend.upload(alpha, new Float32Array(alpha.size).fill(0.5));
  return model;
}

/** `ex` with its first `count` frames, each cut to its top-left side×side. */
export function cut(ex: Example, count: number, side: number): Example {
  const frames = new Uint8Array(count * side * side * 3);
  for (let f = 0; f < count; f++)
    for (let y = 0; y < side; y++) {
      const from = (f * ex.height + y) * ex.width * 3;
      frames.set(ex.frames.subarray(from, from + side * 3), (f * side + y) * side * 3);
    }
  return { ...ex, frames, count, width: side, height: side };
}
