/** The tiny needle Vamba recipe of the training tests (hidden 32, 2 layers, 8-frame 56×56 videos). */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseRecipe, type Recipe } from '../../src/train/recipe.js';

export const TINY_PATH = join(dirname(fileURLToPath(import.meta.url)), 'tiny-vamba.recipe.json');
export const tinyJson = (): Record<string, unknown> => JSON.parse(readFileSync(TINY_PATH, 'utf8'));

/** The recipe with its output in a fresh temporary directory and `edit` applied to the JSON first. */
export function tinyRecipe(edit: (j: Record<string, any>) => void = () => {}): Recipe {
  const j = tinyJson();
  edit(j);
  const r = parseRecipe(j, TINY_PATH, dirname(TINY_PATH));
  return { ...r, output: { ...r.output, dir: mkdtempSync(join(tmpdir(), 'longshot-train-')) } };
}
