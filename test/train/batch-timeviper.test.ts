/**
 * TimeViper's batched training forward (TrainForward.batchLogits): the vision half — SigLIP, ToMe, the
 * projector — over every frame of the micro-batch in one pass, the LLM per example. A frame's ToMe merge in a
 * batch of several videos' frames is its merge alone; each example's rows of the batched logits equal its own
 * forward's and the gradients of the summed loss equal the per-example sum (batch-check.ts) — on the tiny needle
 * TimeViper (a uniform drop stage with TransV), with videos of one shape and of different frame counts and sizes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import '../../src/backends/cpu/index.js';
import { siglipPixels } from '../../src/models/siglip/preprocess.js';
import { TimeViperModel } from '../../src/models/timeviper/model.js';
import { ALPHA } from '../../src/models/timeviper/weights.js';
import { needleTokenizerConfig, needleTokenizerJson } from '../../src/needle/tokenizer.js';
import { ParamStore } from '../../src/nn/params.js';
import { tomePlan } from '../../src/nn/tome.js';
import { getBackend } from '../../src/runtime/device.js';
import * as ops from '../../src/runtime/ops.js';
import type { Example } from '../../src/train/data.js';
import { batches } from '../../src/train/model.js';
import { timeViperScratch } from '../../src/train/timeviper.js';
import { assertCloseScaled } from '../helpers.js';
import { assertBatchMatches, needleExamples } from './batch-check.js';
import { TINY_TIMEVIPER_PATH, tinyRecipe } from './tiny.js';

const cpu = await getBackend('cpu');

/** The tiny needle TimeViper from scratch, its TransV gates α opened (at 0 they pass no gradient to TransV). */
function tinyTimeViper(seed = 0) {
  const recipe = { ...tinyRecipe(undefined, TINY_TIMEVIPER_PATH), seed };
  const files = {
    'tokenizer.json': JSON.stringify(needleTokenizerJson(1)),
    'tokenizer_config.json': JSON.stringify(needleTokenizerConfig()),
  };
  const { model } = timeViperScratch(recipe, files, cpu, 'f32');
  const alpha = model.weights.get(ALPHA)!;
  cpu.upload(alpha, new Float32Array(alpha.size).fill(0.5));
  return model;
}

/** `ex` with its first `count` frames, each cut to its top-left side×side. */
function cut(ex: Example, count: number, side: number): Example {
  const frames = new Uint8Array(count * side * side * 3);
  for (let f = 0; f < count; f++)
    for (let y = 0; y < side; y++) {
      const from = (f * ex.height + y) * ex.width * 3;
      frames.set(ex.frames.subarray(from, from + side * 3), (f * side + y) * side * 3);
    }
  return { ...ex, frames, count, width: side, height: side };
}

describe('TimeViper: batched training forward = one forward per example', () => {
  it('a frame merges alike in a batch of several videos’ frames and alone (ToMe is per frame)', async () => {
    using model = tinyTimeViper();
    const [a, b] = await needleExamples(TINY_TIMEVIPER_PATH);
    const size = model.config.vision.image_size;
    const views = new Map([...model.weights].map(([n, w]) => [n, w.reshape(w.shape)]));
    using m = await TimeViperModel.fromParams(model.config, new ParamStore(views));
    const features = (exs: Example[]) => {
      const frames = exs.flatMap((ex) =>
        Array.from({ length: ex.count }, (_, t) => ({
          width: ex.width,
          height: ex.height,
          data: ex.frames.subarray(t * ex.width * ex.height * 3, (t + 1) * ex.width * ex.height * 3),
        })),
      );
      using px = ops.tensor(cpu, siglipPixels(frames, size), [frames.length, 3, size, size]);
      return m.vision.forward(px);
    };
    using both = features([a, b]);
    using fa = features([a]);
    using fb = features([b]);
    const plan = await tomePlan(both, model.config.tokensPerFrame);
    const apart = [
      ...(await tomePlan(fa, model.config.tokensPerFrame)),
      ...(await tomePlan(fb, model.config.tokensPerFrame)),
    ];
    assert.equal(plan.length, a.count + b.count);
    assert.deepEqual(plan, apart);
    assertCloseScaled(
      (await both.data()) as Float32Array,
      Float32Array.from([...(await fa.data()), ...(await fb.data())]),
      1e-6,
      'SigLIP features',
    );
  });

  it('the needle recipe (videos of one shape; prompts of different lengths)', async () => {
    using model = tinyTimeViper(3);
    const exs = await needleExamples(TINY_TIMEVIPER_PATH);
    using fwd = model.forward();
    assert.equal(batches(fwd, exs), true);
    const zero = await assertBatchMatches(model, exs);
    assert.deepEqual(zero, []); // the loss reaches every weight, TransV's included
  });

  it('videos of different frame counts and sizes', async () => {
    using model = tinyTimeViper(4);
    const [a, b, c] = await needleExamples(TINY_TIMEVIPER_PATH);
    const exs = [a, cut(b, 5, 40), cut(c, 3, 56)];
    using fwd = model.forward();
    assert.equal(batches(fwd, exs), true);
    await assertBatchMatches(model, exs);
  });
});
