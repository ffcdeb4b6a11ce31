/**
 * The batched training forward on CUDA (f32): each family's batched logits and the gradients of its summed
 * loss equal its per-example ones on the GPU (test/train/batch-check.ts, at GPU tolerances: the batched GEMMs
 * and attention reduce in other orders) — Vamba, TSTAR-MambaMia with the Qwen2 LLM on the needle data and
 * with Nemotron-H (Mamba-2 over [videos, seq, …]), Qwen2-VL, TimeViper (one vision pass — SigLIP, ToMe's
 * per-frame merge, the projector — over every frame; videos of one shape and of different counts and sizes).
 * The per-example CUDA forwards are held to the CPU's by train.test.ts, train-mambamia.test.ts and
 * train-timeviper.test.ts.
 */
import { describe, it } from 'node:test';
import { Qwen2VLTrainModel } from '../src/train/qwen2vl.js';
import { TstarTrainModel } from '../src/train/tstar.js';
import { VambaTrainModel } from '../src/train/vamba.js';
import { tinyTstarJson } from '../test/models/tiny-tstar.js';
import {
  assertBatchMatches,
  cut,
  needleExamples,
  randomTstar,
  tinyQwen2VLJson,
  tinyTimeViper,
  videoExamples,
} from '../test/train/batch-check.js';
import { TINY_MAMBAMIA_PATH, TINY_TIMEVIPER_PATH, tinyRecipe } from '../test/train/tiny.js';
import { gpu } from './helpers.js';

const TOL = { logits: 1e-4, grads: 1e-3 };
const config = (path?: string) => {
  const json = structuredClone(tinyRecipe(undefined, path).model.config!) as Record<string, unknown>;
  json.vocab_size = 100; // the needle tokenizer's
  return json;
};

describe('batched training forward on CUDA = one forward per example', () => {
  it('Vamba (the needle recipe)', async () => {
    using model = await VambaTrainModel.scratch(config(), gpu, 'f32', 3, 1);
    await assertBatchMatches(model, await needleExamples(), TOL);
  });

  it('TSTAR-MambaMia, Qwen2 LLM (the needle recipe)', async () => {
    using model = TstarTrainModel.scratch(config(TINY_MAMBAMIA_PATH), gpu, 'f32', 3, 1);
    await assertBatchMatches(model, await needleExamples(TINY_MAMBAMIA_PATH), TOL);
  });

  it('TSTAR-MambaMia, Nemotron-H LLM (video at its placeholder)', async () => {
    const pad = 310;
    using model = randomTstar(tinyTstarJson('nemotron_h'), 5, gpu);
    const exs = videoExamples([
      [1, 20, 21, pad, 30, 31],
      [1, 22, 23, pad, 32],
      [1, 24, 25, pad, 33, 34, 35, 36],
    ]);
    await assertBatchMatches(model, exs, TOL);
  });

  it('Qwen2-VL (the needle recipe)', async () => {
    using model = Qwen2VLTrainModel.scratch(tinyQwen2VLJson(), gpu, 'f32', 3, 1);
    await assertBatchMatches(model, await needleExamples(), TOL);
  });

  it('TimeViper (the needle recipe; then videos of different frame counts and sizes)', async () => {
    using model = tinyTimeViper(gpu, 3);
    const [a, b, c] = await needleExamples(TINY_TIMEVIPER_PATH);
    await assertBatchMatches(model, [a, b, c], TOL);
    await assertBatchMatches(model, [a, cut(b, 5, 40), cut(c, 3, 56)], TOL);
  });
});
