/**
 * The model families this build knows, in the order they are asked to recognise a checkpoint (a family that
 * specialises another comes first: Vamba checkpoints are Qwen2-VL checkpoints with more fields). Adding a
 * family is one line here.
 */
import { ModelError } from '../errors.js';
import type { CheckpointFiles, ModelFamily } from './family.js';
import { nemotronH } from './nemotron_h/family.js';
import { qwen2vl } from './qwen2vl/family.js';
import { timeViper } from './timeviper/family.js';
import { tstar } from './tstar/family.js';
import { vamba } from './vamba/family.js';

// Qwen2-VL also reads configs without a model_type, so families that can recognise one come before it.
const families: ModelFamily[] = [timeViper, tstar, nemotronH, vamba, qwen2vl];

/** Adds a family (a plug-in, a test's toy family); it is asked before the built-in ones. */
export function registerFamily(family: ModelFamily): void {
  if (families.some((f) => f.name === family.name))
    throw new ModelError(`a model family named '${family.name}' is already registered`);
  families.unshift(family);
}

/** Removes a family added with registerFamily. */
export function unregisterFamily(family: ModelFamily): void {
  const i = families.indexOf(family);
  if (i >= 0) families.splice(i, 1);
}

export function modelFamilies(): readonly ModelFamily[] {
  return families;
}

/** The family that reads this checkpoint, or a ModelError that says what the checkpoint is. */
export function familyOf(files: CheckpointFiles): ModelFamily {
  const family = families.find((f) => f.recognizes(files));
  if (family) return family;
  const type =
    typeof files.config.model_type === 'string' ? `model_type '${files.config.model_type}'` : 'no model_type';
  throw new ModelError(
    `${files.dir}: config.json has ${type}, which no model family of this build reads (known: ${families.map((f) => f.name).join(', ')})`,
  );
}
