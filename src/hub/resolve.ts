/**
 * `--model` accepts a directory, the name of a model shipped in the package (`needle-mambamia-tiny`) or a hub id.
 * A directory is used as it is; a hub id is answered from the cache when its snapshot is complete there (no
 * network), and downloaded otherwise.
 */
import { existsSync, statSync } from 'node:fs';
import { ModelError } from '../errors.js';
import { looksLikeRepoId } from './cache.js';
import { cachedSnapshot, type HubOptions, snapshotDownload } from './download.js';
import { shippedModelDir, shippedModels } from './shipped.js';

export async function resolveModel(model: string, opts: HubOptions = {}): Promise<string> {
  if (existsSync(model)) {
    if (!statSync(model).isDirectory())
      throw new ModelError(`${model} is a file; --model takes a checkpoint directory or a hub id (org/name)`);
    return model;
  }
  const shipped = shippedModelDir(model);
  if (shipped) return shipped;
  if (!looksLikeRepoId(model))
    throw new ModelError(
      `model '${model}' is neither a directory, a shipped model (${shippedModels().join(', ') || 'none installed'}) nor a Hugging Face id (org/name)`,
    );
  const cached = await cachedSnapshot(model, opts);
  if (cached) return cached.dir;
  try {
    return (await snapshotDownload(model, opts)).dir;
  } catch (e) {
    if (e instanceof ModelError)
      throw new ModelError(`${e.message} (and there is no local directory '${model}')`, { cause: e });
    throw e;
  }
}
