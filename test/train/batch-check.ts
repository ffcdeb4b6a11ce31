/**
 * The checks of a family's batched training forward (TrainForward.batchLogits): each example's rows of the
 * batched logits equal its own forward's, and the gradients of the summed loss equal the sum of the
 * per-example gradients.
 */
import assert from 'node:assert/strict';
import { crossEntropy, valueAndGrad } from '../../src/autograd/index.js';
import * as ops from '../../src/runtime/ops.js';
import type { Tensor } from '../../src/runtime/tensor.js';
import { type Example, openSource } from '../../src/train/data.js';
import { IGNORE, padded, type SyncTrainForward, teacherForced } from '../../src/train/model.js';
import { Random } from '../../src/util/random.js';
import { assertCloseScaled } from '../helpers.js';
import { tinyRecipe } from './tiny.js';

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

/** Σ over the answer rows of the cross-entropy (the trainer's objective without its scaling). */
function lossSum(logits: Tensor, targets: Int32Array): Tensor {
  const rows = targets.filter((t) => t !== IGNORE).length;
  const t = ops.tensor(logits.backend, targets, [targets.length], 'i32');
  return ops.scale(crossEntropy(logits, t, { ignoreIndex: IGNORE }), rows);
}

const maxAbs = (v: number[]) => v.reduce((m, x) => Math.max(m, Math.abs(x)), 0);

/**
 * Asserts that `model`'s batched forward of `exs` matches its per-example forwards (logits to 1e-5 of the
 * largest, every gradient to 1e-4 of its largest, or of a thousandth of the largest of all for gradients that
 * are zero in exact arithmetic); returns the names of the weights the loss does not reach.
 */
export async function assertBatchMatches(
  model: { weights: ReadonlyMap<string, Tensor>; forward(): SyncTrainForward },
  exs: readonly Example[],
): Promise<string[]> {
  const params = [...model.weights.values()];
  // Logits: example i's rows are rows [i·seq, i·seq + its length) of the batch.
  const { targets, seq } = padded(exs, 0);
  {
    using fwd = model.forward();
    assert.ok(fwd.canBatch?.(exs), 'the examples batch');
    using all = fwd.batchLogits!(exs);
    const vocab = all.shape[1];
    assert.deepEqual(all.shape, [exs.length * seq, vocab]);
    const batched = (await all.data()) as Float32Array;
    for (const [i, ex] of exs.entries()) {
      using one = fwd.logits(ex);
      const rows = one.shape[0];
      assert.equal(rows, teacherForced(ex).ids.length);
      assertCloseScaled(
        batched.subarray(i * seq * vocab, (i * seq + rows) * vocab),
        (await one.data()) as Float32Array,
        1e-5,
        `example ${i} logits`,
      );
    }
  }

  // Gradients of the summed loss: one batched forward against the examples one by one.
  const b = valueAndGrad(() => {
    using fwd = model.forward();
    return lossSum(fwd.batchLogits!(exs), targets);
  }, params);
  const s = valueAndGrad(() => {
    using fwd = model.forward();
    let total: Tensor | null = null;
    for (const ex of exs) {
      const l = lossSum(fwd.logits(ex), teacherForced(ex).targets);
      total = total ? ops.add(total, l) : l;
    }
    return total!;
  }, params);
  assert.ok(Math.abs(b.value - s.value) <= 1e-5 * Math.abs(s.value), `loss ${b.value} vs ${s.value}`);
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
    assert.ok(err <= 1e-4, `${names[i]}: relative error ${err}`);
  }
  return zero;
}
