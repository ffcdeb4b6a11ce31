/**
 * A training step's videos in one forward (TrainForward.batchLogits): each example's rows of the batched
 * logits equal its own forward's, padding rows included nowhere in the loss, and the gradients of the summed
 * loss equal the sum of the per-example gradients — with and without the video tokens' M-RoPE in the
 * cross-attention (cross_attn_use_position_embeddings), so the batched video path covers both layouts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { crossEntropy, valueAndGrad } from '../../src/autograd/index.js';
import '../../src/backends/cpu/index.js';
import { getBackend } from '../../src/runtime/device.js';
import * as ops from '../../src/runtime/ops.js';
import type { Tensor } from '../../src/runtime/tensor.js';
import { type Example, openSource } from '../../src/train/data.js';
import { IGNORE, padded, sameVideoShape, teacherForced } from '../../src/train/model.js';
import { VambaTrainModel } from '../../src/train/vamba.js';
import { Random } from '../../src/util/random.js';
import { assertCloseScaled } from '../helpers.js';
import { tinyRecipe } from './tiny.js';

const backend = await getBackend('cpu');

/** Three examples of one frame count whose prompts are not all one length (so the batch pads). */
async function examples(): Promise<Example[]> {
  const recipe = tinyRecipe();
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

for (const crossRope of [false, true])
  test(`batched training forward = one forward per example (cross-attention rope ${crossRope})`, async () => {
    const exs = await examples();
    assert.ok(sameVideoShape(exs));
    const json = structuredClone(tinyRecipe().model.config!) as Record<string, unknown>;
    json.cross_attn_use_position_embeddings = crossRope;
    json.vocab_size = 100; // the needle tokenizer's (setup.ts sets it from the tokenizer)
    using model = await VambaTrainModel.scratch(json, backend, 'f32', 3, 1);
    const params = [...model.weights.values()];

    // Logits: example i's rows are rows [i·seq, i·seq + its length) of the batch.
    const { targets, seq } = padded(exs, 0);
    let batched: Float32Array;
    {
      using fwd = model.forward();
      using all = fwd.batchLogits!(exs);
      assert.deepEqual(all.shape, [exs.length * seq, 100]);
      batched = (await all.data()) as Float32Array;
      for (const [i, ex] of exs.entries()) {
        using one = fwd.logits(ex);
        const rows = one.shape[0];
        assertCloseScaled(
          batched.subarray(i * seq * 100, (i * seq + rows) * 100),
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
    const maxAbs = (v: number[]) => v.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
    const largest = Math.max(...gs.map(maxAbs));
    const zero: string[] = [];
    for (let i = 0; i < params.length; i++) {
      if (maxAbs(gs[i]) <= 1e-6 * largest) zero.push(names[i]);
      // Relative to the tensor's largest, or to a thousandth of the largest of all for gradients that are
      // zero in exact arithmetic (attention's key biases: a constant added to every score of a query).
      const err = maxAbs(gb[i].map((v, j) => v - gs[i][j])) / Math.max(maxAbs(gs[i]), 1e-3 * largest);
      assert.ok(err <= 1e-4, `${names[i]}: relative error ${err}`);
    }
    // The loss reaches every weight but α (read as a number), the last layer's Mamba block (its update feeds
    // no later cross-attention) and, without rotary keys, the cross-attention's key bias (shift-invariant).
    const blind = new RegExp(
      `\\.alpha$|layers\\.1\\.vision_mixer\\.${crossRope ? '' : '|cross_attn\\.k_proj\\.bias'}`,
    );
    assert.deepEqual(
      zero,
      names.filter((n) => blind.test(n)),
    );
    for (const g of [...b.grads, ...s.grads]) g.dispose();
  });
