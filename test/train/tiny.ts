/** The tiny needle Vamba recipe of the training tests (hidden 32, 2 layers, 8-frame 56×56 videos). */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseRecipe, type Recipe } from '../../src/train/recipe.js';

/** A recipe's JSON as the tests edit it. */
// biome-ignore lint/suspicious/noExplicitAny: tests reach into the JSON freely
export type RecipeJson = Record<string, any>;

export const TINY_PATH = join(dirname(fileURLToPath(import.meta.url)), 'tiny-vamba.recipe.json');
export const tinyJson = (): RecipeJson => JSON.parse(readFileSync(TINY_PATH, 'utf8'));

/** The recipe with its output in a fresh temporary directory and `edit` applied to the JSON first. */
export function tinyRecipe(edit: (j: RecipeJson) => void = () => {}): Recipe {
  const j = tinyJson();
  edit(j);
  const r = parseRecipe(j, TINY_PATH, dirname(TINY_PATH));
  return { ...r, output: { ...r.output, dir: mkdtempSync(join(tmpdir(), 'longshot-train-')) } };
}
