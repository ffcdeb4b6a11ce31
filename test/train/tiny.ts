/**
 * The tiny needle Vamba recipe of the training tests (hidden 32, 2 layers, 8-frame 56×56 videos), its TSTAR-MambaMia
 * and TimeViper siblings, and the check that training one learns what only the video tells.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InputError } from '../../src/errors.js';
import { getBackend } from '../../src/runtime/device.js';
import { type Example, openSource } from '../../src/train/data.js';
import { autogradEngine } from '../../src/train/engine.js';
import { parseRecipe, type Recipe } from '../../src/train/recipe.js';
import { type EvalResult, type StepInfo, type TrainReport, train } from '../../src/train/trainer.js';

/** A recipe's JSON as the tests edit it. */
// biome-ignore lint/suspicious/noExplicitAny: tests reach into the JSON freely
export type RecipeJson = Record<string, any>;

export const TINY_PATH = join(dirname(fileURLToPath(import.meta.url)), 'tiny-vamba.recipe.json');
/** The tiny needle TSTAR-MambaMia recipe (the same tower, LLM, data and optimizer around a MambaMia compressor). */
export const TINY_MAMBAMIA_PATH = join(dirname(TINY_PATH), 'tiny-mambamia.recipe.json');
/** The tiny needle TimeViper recipe (hidden 32, 3 blocks with a TransV stage, 8-frame 56×56 videos). */
export const TINY_TIMEVIPER_PATH = join(dirname(TINY_PATH), 'tiny-timeviper.recipe.json');
export const tinyJson = (path = TINY_PATH): RecipeJson => JSON.parse(readFileSync(path, 'utf8'));

/** The error parseRecipe gives for the tiny recipe at `path` with `edit` applied (fails if it is accepted). */
export function recipeError(edit: (j: RecipeJson) => void, path = TINY_PATH): string {
  const j = tinyJson(path);
  edit(j);
  try {
    parseRecipe(j, 'r.json', '/tmp');
  } catch (e) {
    assert.ok(e instanceof InputError, `an InputError, got ${e}`);
    return e.message;
  }
  assert.fail('the recipe was accepted');
}
/** The recipe with its output in a fresh temporary directory and `edit` applied to the JSON first. */
export function tinyRecipe(edit: (j: RecipeJson) => void = () => {}, path = TINY_PATH): Recipe {
  const j = tinyJson(path);
  edit(j);
  const r = parseRecipe(j, path, dirname(path));
  return { ...r, output: { ...r.output, dir: mkdtempSync(join(tmpdir(), 'longshot-train-')) } };
}

/** Mean per-token loss of the best video-blind predictor: per prompt, the answers' empirical distribution. */
export function blindBound(items: { prompt: number[]; answer: number[] }[]): number {
  const byPrompt = new Map<string, string[]>();
  for (const it of items) {
    const k = it.prompt.join(',');
    byPrompt.set(k, [...(byPrompt.get(k) ?? []), it.answer.join(',')]);
  }
  let nats = 0;
  let tokens = 0;
  for (const answers of byPrompt.values()) {
    const counts = new Map<string, number>();
    for (const a of answers) counts.set(a, (counts.get(a) ?? 0) + 1);
    for (const c of counts.values()) nats -= c * Math.log(c / answers.length);
  }
  for (const it of items) tokens += it.answer.length;
  return nats / tokens;
}

/**
 * Trains `recipe` on the CPU backend and asserts that it learns what only the video tells: its pool holds askings
 * only the video answers (blind bound > 0.1), the first 5 steps' mean loss is near ln(vocab) (> 3), the last 20
 * steps' mean is below the blind bound / `below`, and the evaluation answers ≥ 75% of the pool. `onStep` sees
 * every step as well. Returns the report and the pool's examples.
 */
export async function assertLearns(
  recipe: Recipe,
  opts: { below?: number; onStep?: (s: StepInfo) => void } = {},
): Promise<{ report: TrainReport & { eval: EvalResult }; items: Example[] }> {
  const pool = await openSource(recipe.data.train, { tokenizer: null, prompt: (q) => q });
  const items = await pool.fixed(0);
  const bound = blindBound(items);
  assert.ok(bound > 0.1, `the pool must hold askings only the video answers (blind bound ${bound})`);
  const losses: number[] = [];
  const report = await train({
    recipe,
    backend: await getBackend('cpu'),
    engine: autogradEngine,
    onStep: (s) => {
      losses.push(s.loss);
      opts.onStep?.(s);
    },
  });
  const first = losses.slice(0, 5).reduce((a, b) => a + b) / 5;
  const last = losses.slice(-20).reduce((a, b) => a + b) / 20;
  assert.ok(first > 3, `an untrained model starts near ln(vocab): ${first}`);
  assert.ok(
    last < bound / (opts.below ?? 3),
    `final loss ${last} should be far below the blind bound ${bound}`,
  );
  const evaluated = report.eval;
  assert.ok(evaluated && evaluated.accuracy >= 0.75, `pool accuracy ${evaluated?.accuracy}`);
  await pool.close();
  return { report: { ...report, eval: evaluated }, items };
}

/**
 * Trains the tiny recipe at `path` (with `edit`) on the CPU backend straight through, and again stopped after step 2
 * and resumed from that checkpoint; asserts that the resumed run starts at step 2 and ends with weights and
 * optimizer state bit-identical to the straight run's. Returns both reports.
 */
export async function assertResumesBitExact(
  edit: (j: RecipeJson) => void,
  path: string,
): Promise<{ straight: TrainReport; resumed: TrainReport }> {
  const backend = await getBackend('cpu');
  const straight = await train({ recipe: tinyRecipe(edit, path), backend, engine: autogradEngine });
  const broken = tinyRecipe(edit, path);
  await train({ recipe: broken, backend, engine: autogradEngine, stopAfter: 2 });
  const resumed = await train({ recipe: broken, backend, engine: autogradEngine, resume: true });
  assert.equal(resumed.startStep, 2);
  for (const f of ['model.safetensors', 'trainer/optimizer.safetensors'])
    assert.ok(
      readFileSync(join(straight.checkpoint, f)).equals(readFileSync(join(resumed.checkpoint, f))),
      f,
    );
  return { straight, resumed };
}
