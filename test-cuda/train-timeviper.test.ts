/**
 * `longshot train` of TimeViper on CUDA against the CPU trainer: the tiny needle TimeViper recipe (a TransV stage,
 * ToMe, α trainable), f32, three steps from the same initial weights and data — the losses and the trained
 * weights agree within f32 tolerance (the CPU run is the reference); then a bf16 run learns on the GPU.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Checkpoint } from '../src/io/checkpoint.js';
import { autogradEngine } from '../src/train/engine.js';
import { type StepInfo, train } from '../src/train/trainer.js';
import { TINY_TIMEVIPER_PATH, tinyRecipe } from '../test/train/tiny.js';
import { cpu, gpu } from './helpers.js';

test('three f32 TimeViper training steps on CUDA match the CPU trainer', async () => {
  const runs = [];
  for (const backend of [gpu, cpu]) {
    const recipe = tinyRecipe((j) => {
      j.schedule = { steps: 3, warmup: 1, minRatio: 0.1 };
      j.precision = 'f32';
      delete j.data.eval;
    }, TINY_TIMEVIPER_PATH);
    const steps: StepInfo[] = [];
    const r = await train({ recipe, backend, engine: autogradEngine, onStep: (s) => steps.push(s) });
    const ck = await Checkpoint.open(r.checkpoint);
    const weights = new Map<string, Float32Array>();
    for (const n of ck.names()) weights.set(n, (await ck.read(n)).data as Float32Array);
    await ck.close();
    runs.push({ steps, weights });
  }
  const [g, c] = runs;
  g.steps.forEach((s, i) => {
    assert.ok(
      Math.abs(s.loss - c.steps[i].loss) < 1e-4 * c.steps[i].loss,
      `step ${i + 1}: ${s.loss} vs ${c.steps[i].loss}`,
    );
  });
  // α starts at 0 and moves: the gates train on the GPU too.
  assert.ok(c.weights.get('llm_backbone.llm.backbone.alpha')!.some((v) => v !== 0));
  for (const [name, want] of c.weights) {
    const got = g.weights.get(name)!;
    let worst = 0;
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
    // Adam moves a weight by about lr per step: disagreement far below one step.
    assert.ok(worst < 3e-4, `${name}: largest difference ${worst}`);
  }
});

test('a bf16 TimeViper (f32 masters, α in f32) learns on CUDA', async () => {
  const recipe = tinyRecipe((j) => {
    j.schedule = { steps: 150, warmup: 10, minRatio: 0.1 };
    j.precision = 'bf16';
  }, TINY_TIMEVIPER_PATH);
  const losses: number[] = [];
  const r = await train({ recipe, backend: gpu, engine: autogradEngine, onStep: (s) => losses.push(s.loss) });
  assert.equal(r.dtype, 'bf16');
  const last = losses.slice(-10).reduce((a, b) => a + b) / 10;
  assert.ok(last < losses[0] / 4, `loss ${losses[0]} → ${last}`);
});
