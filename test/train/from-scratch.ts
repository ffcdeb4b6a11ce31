/**
 * The initialisation checks' common ground: a recipe of recipes/ set up from scratch (f32, CPU) as
 * `longshot train` does, and the summary statistics its weights are judged by.
 */
import { join } from 'node:path';
import '../../src/backends/cpu/index.js';
import { getBackend } from '../../src/runtime/device.js';
import { readRecipe } from '../../src/train/recipe.js';
import { type Setup, setupModel } from '../../src/train/setup.js';

/** Mean, standard deviation, smallest and largest element. */
export const stats = (v: Float32Array) => {
  let sum = 0;
  let sq = 0;
  let min = Infinity;
  let max = -Infinity;
  for (const x of v) {
    sum += x;
    sq += x * x;
    min = Math.min(min, x);
    max = Math.max(max, x);
  }
  const mean = sum / v.length;
  return { mean, std: Math.sqrt(sq / v.length - mean * mean), min, max };
};

/**
 * Sets up recipes/`name` from scratch in f32 on the CPU and runs `check` with the setup and a reader of a weight's
 * values by name; the model is disposed afterwards.
 */
export async function fromScratch(
  name: string,
  check: (setup: Setup, weight: (n: string) => Promise<Float32Array>) => Promise<void>,
): Promise<void> {
  const recipe = await readRecipe(join(import.meta.dirname, '..', '..', 'recipes', name));
  const setup = await setupModel(recipe, await getBackend('cpu'), 'f32', null);
  try {
    await check(setup, async (n) => Float32Array.from(await setup.model.weights.get(n)!.data()));
  } finally {
    setup.model[Symbol.dispose]();
  }
}
