/**
 * TimeViper's batched training forward (TrainForward.batchLogits): the vision half — SigLIP, ToMe, the
 * projector — over every frame of the micro-batch in one pass, the LLM per example with drop stages and over
 * the whole batch without. A frame's ToMe merge in a batch of several videos' frames is its merge alone; each
 * example's rows of the batched logits equal its own forward's and the gradients of the summed loss equal the
 * per-example sum (batch-check.ts) — on the tiny needle TimeViper (a uniform drop stage with TransV) and the same
 * without drop stages (the shipped needle recipe's), with videos of one shape and of different frame counts and
 * sizes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { valueAndGradAsync } from '../../src/autograd/index.js';
import '../../src/backends/cpu/index.js';
import { siglipPixels } from '../../src/models/siglip/preprocess.js';
import { TimeViperModel } from '../../src/models/timeviper/model.js';
import { ParamStore } from '../../src/nn/params.js';
import { tomePlan } from '../../src/nn/tome.js';
import { getBackend } from '../../src/runtime/device.js';
import * as ops from '../../src/runtime/ops.js';
import type { Example } from '../../src/train/data.js';
import { autogradEngine as engine } from '../../src/train/engine.js';
import { batches, IGNORE, padded } from '../../src/train/model.js';
import { train } from '../../src/train/trainer.js';
import { assertCloseScaled } from '../helpers.js';
import { assertBatchMatches, cut, needleExamples, tinyTimeViper, withAsking } from './batch-check.js';
import { TINY_TIMEVIPER_PATH, tinyRecipe } from './tiny.js';

const cpu = await getBackend('cpu');

describe('TimeViper: batched training forward = one forward per example', () => {
  it('a frame merges alike in a batch of several videos’ frames and alone (ToMe is per frame)', async () => {
    using model = tinyTimeViper(cpu, 0);
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

  it('the needle recipe (videos of one shape; prompts of different lengths; two askings of one video)', async () => {
    using model = tinyTimeViper(cpu, 3);
    const exs = withAsking(await needleExamples(TINY_TIMEVIPER_PATH), 0, 1);
    using fwd = model.forward();
    assert.equal(batches(fwd, exs), true);
    const zero = await assertBatchMatches(model, exs);
    assert.deepEqual(zero, []); // the loss reaches every weight, TransV's included
  });

  it('videos of different frame counts and sizes', async () => {
    using model = tinyTimeViper(cpu, 4);
    const [a, b, c] = await needleExamples(TINY_TIMEVIPER_PATH);
    const exs = [a, cut(b, 5, 40), cut(c, 3, 56)];
    using fwd = model.forward();
    assert.equal(batches(fwd, exs), true);
    await assertBatchMatches(model, exs);
  });
});

const NO_DROPS = { use_pdrop: false, merge_module: 'no_merge' };

describe('TimeViper without drop stages: the LLM over the whole batch = one LLM pass per example', () => {
  it('the needle recipe (prompts of different lengths, padded at their ends)', async () => {
    using model = tinyTimeViper(cpu, 6, NO_DROPS);
    assert.equal(model.config.stages.length, 0);
    const exs = await needleExamples(TINY_TIMEVIPER_PATH);
    const zero = await assertBatchMatches(model, exs);
    assert.deepEqual(zero, []);
  });

  it('videos of different frame counts (sequences of different lengths), the middle one asked twice', async () => {
    using model = tinyTimeViper(cpu, 7, NO_DROPS);
    const [a, b, c] = await needleExamples(TINY_TIMEVIPER_PATH);
    await assertBatchMatches(model, withAsking([a, cut(b, 5, 40), cut(c, 3, 56)], 1, 0));
  });

  it('a model with drop stages refuses sequences in one batch', async () => {
    using model = tinyTimeViper(cpu, 8);
    const views = new Map([...model.weights].map(([n, w]) => [n, w.reshape(w.shape)]));
    using m = await TimeViperModel.fromParams(model.config, new ParamStore(views));
    using x = ops.zeros(cpu, [6, model.config.llm.hidden_size]);
    assert.throws(() => m.lm.sequences(x, 2), /without drop stages/);
  });
});

describe('TimeViper: activation checkpointing of the vision half', () => {
  it('gives the same loss and gradients, holding less after the forward', async () => {
    using model = tinyTimeViper(cpu, 5);
    const exs = await needleExamples(TINY_TIMEVIPER_PATH);
    const { targets } = padded(exs, 0);
    const params = [...model.weights.values()];
    const run = async (checkpoint: boolean) => {
      const before = cpu.memory().current;
      let held = 0;
      const r = await valueAndGradAsync(async () => {
        using fwd = model.forward(checkpoint ? engine.checkpoint : undefined);
        assert.equal(fwd.checkpointsParts, true);
        const logits = await fwd.batchLogits!(exs);
        held = cpu.memory().current - before;
        const t = ops.tensor(cpu, targets, [targets.length], 'i32');
        return engine.crossEntropy(logits, t, { ignoreIndex: IGNORE });
      }, params);
      const grads = await Promise.all(r.grads.map((g) => g.toArray()));
      for (const g of r.grads) g.dispose();
      return { value: r.value, grads, held };
    };
    const plain = await run(false);
    const ck = await run(true);
    assert.equal(ck.value, plain.value);
    // The replay recomputes the same ops on the same inputs: the gradients are the same.
    for (const [i, name] of [...model.weights.keys()].entries())
      assertCloseScaled(Float32Array.from(ck.grads[i]), Float32Array.from(plain.grads[i]), 1e-6, name);
    // SigLIP's activations are not kept for backward (its output and the projector's input are).
    assert.ok(ck.held < plain.held, `held ${ck.held} B checkpointed vs ${plain.held} B`);
  });

  it('longshot train with batch.checkpoint: the same losses step by step as without', async () => {
    const losses = async (checkpoint: boolean) => {
      const recipe = tinyRecipe((j) => {
        j.schedule = { steps: 3, warmup: 1 };
        j.batch = { videos: 2, checkpoint };
      }, TINY_TIMEVIPER_PATH);
      const out: number[] = [];
      await train({ recipe, backend: cpu, engine, onStep: (i) => out.push(i.loss) });
      return out;
    };
    const plain = await losses(false);
    assert.equal(plain.length, 3);
    assert.deepEqual(await losses(true), plain);
  });
});
