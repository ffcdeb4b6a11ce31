/**
 * The tiny models shipped inside the package (models/<name>/: the embedded needle Vamba, its Qwen2-VL baseline,
 * TSTAR-MambaMia): `--model <name>` finds them from any working directory, as an npm install puts them
 * somewhere the user never looks.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../util/package-root.js';

/** Where the shipped models are: the package's models/. */
export const MODELS_DIR = join(packageRoot(), 'models');

/** The names of the shipped models (directories of models/ with a config.json), sorted. */
export function shippedModels(): string[] {
  if (!existsSync(MODELS_DIR)) return [];
  return readdirSync(MODELS_DIR, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(MODELS_DIR, d.name, 'config.json')))
    .map((d) => d.name)
    .sort();
}

/** The directory of the shipped model `name`, or null when none goes by it. */
export function shippedModelDir(name: string): string | null {
  return shippedModels().includes(name) ? join(MODELS_DIR, name) : null;
}
