/**
 * A training step's videos in one forward (TrainForward.batchLogits): each example's rows of the batched
 * logits equal its own forward's, padding rows included nowhere in the loss, and the gradients of the summed
 * loss equal the sum of the per-example gradients — with and without the video tokens' M-RoPE in the
 * cross-attention (cross_attn_use_position_embeddings), so the batched video path covers both layouts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import '../../src/backends/cpu/index.js';
import { getBackend } from '../../src/runtime/device.js';
import * as ops from '../../src/runtime/ops.js';
import { batchVideos, perExample, sameVideoShape } from '../../src/train/model.js';
import { VambaTrainModel } from '../../src/train/vamba.js';
import { assertBatchMatches, needleExamples, videoExamples, withAsking } from './batch-check.js';
import { tinyRecipe } from './tiny.js';

const backend = await getBackend('cpu');

for (const crossRope of [false, true])
  test(`batched training forward = one forward per example (cross-attention rope ${crossRope})`, async () => {
    const exs = withAsking(await needleExamples(), 0, 1); // the first video asked twice
    assert.ok(sameVideoShape(exs));
    const json = structuredClone(tinyRecipe().model.config!) as Record<string, unknown>;
    json.cross_attn_use_position_embeddings = crossRope;
    json.vocab_size = 100; // the needle tokenizer's (setup.ts sets it from the tokenizer)
    using model = await VambaTrainModel.scratch(json, backend, 'f32', 3, 1);
    const zero = await assertBatchMatches(model, exs);
    // The loss reaches every weight but α (read as a number), the last layer's Mamba block (its update feeds
    // no later cross-attention) and, without rotary keys, the cross-attention's key bias (shift-invariant).
    const blind = new RegExp(
      `\\.alpha$|layers\\.1\\.vision_mixer\\.${crossRope ? '' : '|cross_attn\\.k_proj\\.bias'}`,
    );
    assert.deepEqual(
      zero,
      [...model.weights.keys()].filter((n) => blind.test(n)),
    );
  });

test('a batch encodes each video once: askings of one video (its very bytes) share it, equal copies do not', async () => {
  const [a, b] = videoExamples([
    [1, 20],
    [1, 21],
  ]);
  const copy = { ...a, frames: a.frames.slice() };
  const exs = withAsking([a, b, copy], 0, 1); // a, b, a copy of a, then b's question over a's bytes
  const shared = batchVideos(exs);
  assert.deepEqual(shared.videos, [a, b, copy]);
  assert.deepEqual([...shared.of], [0, 1, 2, 0]);
  // Each video's 2 rows, given to each example in its order; a batch of distinct videos keeps x as it is.
  using x = ops.tensor(backend, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], [6, 2]);
  using rows = perExample(x, shared);
  assert.deepEqual([...(await rows.data())], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 1, 2, 3, 4]);
  using same = perExample(x, batchVideos([a, b, copy]));
  assert.deepEqual([...(await same.data())], [...(await x.data())]);
});
