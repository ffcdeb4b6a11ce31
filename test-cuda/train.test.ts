/**
 * `longshot train` on CUDA against the CPU trainer: the tiny needle Vamba recipe, f32, three steps from the
 * same initial weights and data — the losses and the trained weights agree within f32 tolerance (the CPU run
 * is the reference); then a bf16 run (bf16 weights, f32 masters) learns on the GPU as the CPU f32 run does.
 */
import { test } from 'node:test';
import { assertBf16Learns, assertWeightsClose, trainThreeStepsOnBoth } from './helpers.js';

test('three f32 training steps on CUDA match the CPU trainer', async () => {
  const [g, c] = await trainThreeStepsOnBoth();
  // Adam moves a weight by about lr per step: disagreement far below one step.
  assertWeightsClose(g, c, 3e-4);
});

test('bf16 weights with f32 masters learn on CUDA', () => assertBf16Learns());
