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
/** The tiny needle TSTAR-MambaMia recipe (the same tower, LLM, data and optimizer around a MambaMia compressor). */
export const TINY_MAMBAMIA_PATH = join(dirname(TINY_PATH), 'tiny-mambamia.recipe.json');
export const tinyJson = (path = TINY_PATH): RecipeJson => JSON.parse(readFileSync(path, 'utf8'));

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
