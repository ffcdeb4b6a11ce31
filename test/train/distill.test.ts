/**
 * Top-k distillation: a student starting from the teacher's own checkpoint has KL 0 to it on the first step
 * (same logits, same top-k), and drifts away as it trains on the answers; the log records both losses.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import '../../src/backends/cpu/index.js';
import { getBackend } from '../../src/runtime/device.js';
import { autogradEngine } from '../../src/train/engine.js';
import { type StepInfo, train } from '../../src/train/trainer.js';
import { type RecipeJson, tinyRecipe } from './tiny.js';

test('KL to a teacher: 0 against itself at the start, logged per step beside the answer loss', async () => {
  const backend = await getBackend('cpu');
  const setup = (j: RecipeJson) => {
    j.schedule = { steps: 2, warmup: 1, minRatio: 0.1 };
    j.output = { dir: 'x', logEvery: 1, evalEvery: 1000 };
    delete j.data.eval;
  };
  const teacher = await train({ recipe: tinyRecipe(setup), backend, engine: autogradEngine });
  const student = tinyRecipe(setup);
  const recipe = {
    ...student,
    model: { ...student.model, from: teacher.checkpoint, config: null },
    distill: { teacher: teacher.checkpoint, topK: 5, weight: 0.5, temperature: 1 },
    schedule: { steps: 4, warmup: 1, minRatio: 0.1 },
  };
  const steps: StepInfo[] = [];
  const r = await train({ recipe, backend, engine: autogradEngine, onStep: (s) => steps.push(s) });
  assert.ok(steps[0].kl !== null && Math.abs(steps[0].kl) < 1e-6, `first-step KL ${steps[0].kl}`);
  assert.ok(steps[3].kl! > 1e-6, `the student moved away: KL ${steps[3].kl}`);
  assert.ok(steps.every((s) => s.loss > 0));
  const logged = readFileSync(r.log, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.deepEqual(
    logged.map((l) => typeof l.kl),
    ['number', 'number', 'number', 'number'],
  );
});
