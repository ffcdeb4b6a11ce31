/**
 * `longshot train` of TimeViper on CUDA against the CPU trainer: the tiny needle TimeViper recipe (a TransV stage,
 * ToMe, α trainable), f32, three steps from the same initial weights and data — the losses and the trained
 * weights agree within f32 tolerance (the CPU run is the reference); then a bf16 run learns on the GPU.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TINY_TIMEVIPER_PATH } from '../test/train/tiny.js';
import { assertBf16Learns, assertWeightsClose, trainThreeStepsOnBoth } from './helpers.js';

test('three f32 TimeViper training steps on CUDA match the CPU trainer', async () => {
  const [g, c] = await trainThreeStepsOnBoth(TINY_TIMEVIPER_PATH);
  // α starts at 0 and moves: the gates train on the GPU too.
  assert.ok(c.get('llm_backbone.llm.backbone.alpha')!.some((v) => v !== 0));
  // Adam moves a weight by about lr per step: disagreement far below one step.
  assertWeightsClose(g, c, 3e-4);
});

test('a bf16 TimeViper (f32 masters, α in f32) learns on CUDA', () => assertBf16Learns(TINY_TIMEVIPER_PATH));
