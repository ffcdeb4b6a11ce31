/**
 * The batched training forward of the families whose video tokens sit inside the text (TSTAR-MambaMia,
 * Qwen2-VL): with the video at one index of every prompt, each example's rows of the batched logits equal its
 * own forward's and the gradients of the summed loss equal the per-example sum (batch-check.ts) — TSTAR with
 * the Qwen2 LLM on the needle data (video after <|vision_start|>), with Nemotron-H (Mamba-2 and attention over
 * the padded batch) and with a SigLIP tower and the compressor's frame sampling (video at a placeholder);
 * Qwen2-VL on the needle data. Examples whose videos differ in shape or place are refused (`canBatch`), and
 * the trainer then runs them one by one.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import type { JsonObject } from '../../src/io/json-fields.js';
import { Qwen2VLTrainModel } from '../../src/train/qwen2vl.js';
import { TstarTrainModel } from '../../src/train/tstar.js';
import { tinySiglip, tinyTstarJson } from '../models/tiny-tstar.js';
import {
  assertBatchMatches,
  assertRefusesUnlikeVideos,
  needleExamples,
  randomTstar,
  tinyQwen2VLJson,
  videoExamples,
  withAsking,
} from './batch-check.js';
import { TINY_MAMBAMIA_PATH, tinyRecipe } from './tiny.js';

const be = cpuBackend();

describe('TSTAR-MambaMia: batched training forward = one forward per example', () => {
  it('the needle recipe (Qwen2-VL tower, Qwen2 LLM; video after <|vision_start|>; two askings of one video)', async () => {
    const exs = withAsking(await needleExamples(TINY_MAMBAMIA_PATH), 0, 1);
    const json = structuredClone(tinyRecipe(undefined, TINY_MAMBAMIA_PATH).model.config!) as JsonObject;
    json.vocab_size = 100; // the needle tokenizer's (setup.ts sets it from the tokenizer)
    using model = TstarTrainModel.scratch(json, be, 'f32', 3, 1);
    const zero = await assertBatchMatches(model, exs);
    assert.deepEqual(zero, []); // the loss reaches every weight
  });

  it('Nemotron-H LLM, video at its placeholder', async () => {
    const json = tinyTstarJson('nemotron_h');
    const pad = 310;
    using model = randomTstar(json, 5, be);
    const exs = videoExamples([
      [1, 20, 21, pad, 30, 31],
      [1, 22, 23, pad, 32],
      [1, 24, 25, pad, 33, 34, 35, 36],
    ]);
    const zero = await assertBatchMatches(model, exs);
    assert.deepEqual(zero, []); // the loss reaches every weight
  });

  it('SigLIP tower and frame sampling ½, video at its placeholder, two askings of one video', async () => {
    const json = tinyTstarJson('qwen2');
    json.vision_config = tinySiglip('hf');
    (json.mm_projector_config as JsonObject).mambamia_frame_sampling = 0.5;
    const pad = 6;
    using model = randomTstar(json, 6, be);
    const exs = withAsking(
      videoExamples([
        [1, 20, pad, 30, 31],
        [1, 22, pad, 32, 33, 34],
      ]),
      0,
      1,
    );
    const zero = await assertBatchMatches(model, exs);
    // Every weight but SigLIP's key biases (no rotary: a constant added to every score of a query).
    assert.deepEqual(
      zero,
      [...model.weights.keys()].filter((n) => /^vision_tower\..*self_attn\.k_proj\.bias$/.test(n)),
    );
  });

  it('refuses examples whose videos differ in place or shape; the trainer then goes one by one', () => {
    const pad = 6;
    using model = randomTstar(tinyTstarJson('qwen2'), 7, be);
    using fwd = model.forward();
    assertRefusesUnlikeVideos(fwd, [1, 20, pad, 30], [1, 20, 21, pad, 30], [1, 22, pad, 31]);
  });
});

describe('Qwen2-VL: batched training forward = one forward per example', () => {
  it('the needle recipe (video pads after <|vision_start|>; two askings of one video)', async () => {
    const exs = withAsking(await needleExamples(), 0, 1);
    using model = Qwen2VLTrainModel.scratch(tinyQwen2VLJson(), be, 'f32', 3, 1);
    const zero = await assertBatchMatches(model, exs);
    assert.deepEqual(zero, []); // the loss reaches every weight
  });

  it('refuses examples whose videos differ in place or shape', () => {
    using model = Qwen2VLTrainModel.scratch(tinyQwen2VLJson(), be, 'f32', 3, 1);
    using fwd = model.forward();
    const start = model.config.vision_start_token_id;
    assertRefusesUnlikeVideos(fwd, [1, start, 30], [1, 20, start, 30], [1, start, 31]);
  });
});
