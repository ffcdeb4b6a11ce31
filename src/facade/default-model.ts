/**
 * The model used when `--model` is not given: a tiny Vamba trained on the needle-in-a-haystack task,
 * shipped inside the package under models/needle-vamba-tiny/ so that `npx longshot ask` works offline.
 */
import { join } from 'node:path';
import { ModelError } from '../errors.js';
import { MODELS_DIR, shippedModelDir } from '../hub/shipped.js';

/** The name the embedded default model goes by (in `--json` output, `/v1/models`). */
export const DEFAULT_MODEL_ID = 'needle-vamba-tiny';

/** Path of the embedded default model (one of the shipped models, src/hub/shipped.ts). */
export function defaultModelDir(): string {
  const dir = shippedModelDir(DEFAULT_MODEL_ID);
  if (!dir)
    throw new ModelError(
      `the default model is not installed (expected ${join(MODELS_DIR, DEFAULT_MODEL_ID)}); pass --model <directory or org/name>, ` +
        'e.g. --model TIGER-Lab/Vamba-Qwen2-VL-7B (downloads about 22 GB) or a local checkpoint directory',
    );
  return dir;
}
