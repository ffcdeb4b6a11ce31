/**
 * The model used when `--model` is not given: a tiny Vamba trained on the needle-in-a-haystack task,
 * shipped inside the package under models/needle-vamba-tiny/ so that `npx longshot ask` works offline.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ModelError } from '../errors.js';
import { packageRoot } from '../util/package-root.js';

/** The name the embedded default model goes by (in `--json` output, `/v1/models`). */
export const DEFAULT_MODEL_ID = 'needle-vamba-tiny';

/** Path of the embedded default model. */
const DEFAULT_MODEL_DIR = join(packageRoot(), 'models', DEFAULT_MODEL_ID);

export function defaultModelDir(): string {
  if (!existsSync(join(DEFAULT_MODEL_DIR, 'config.json')))
    throw new ModelError(
      `the default model is not installed (expected ${DEFAULT_MODEL_DIR}); pass --model <directory or org/name>, ` +
        'e.g. --model TIGER-Lab/Vamba-Qwen2-VL-7B (downloads about 22 GB) or a local checkpoint directory',
    );
  return DEFAULT_MODEL_DIR;
}
