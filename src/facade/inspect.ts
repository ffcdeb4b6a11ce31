/**
 * What a checkpoint is, read from its config.json and safetensors headers only (no weights loaded; a directory
 * whose only weights are a torch.save file has that file's pickle read by the safe reader of io/pth.ts): the
 * model family that reads it, the family's view of it (description, memory estimate, loader), and the
 * parameter count and stored size.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ModelError } from '../errors.js';
import { Checkpoint, INDEX_FILE } from '../io/checkpoint.js';
import { isObject, readJsonFile } from '../io/json-fields.js';
import { openTorchWeights, TORCH_WEIGHT_FILES } from '../io/pth.js';
import type { ModelFamily, OpenedCheckpoint, WeightSummary } from '../models/family.js';
import { familyOf } from '../models/registry.js';
import type { SamplingOptions } from './types.js';
import { videoDefaultsOf } from './video-defaults.js';

export interface ModelSummary extends WeightSummary {
  dir: string;
  family: ModelFamily;
  checkpoint: OpenedCheckpoint;
  /** The checkpoint's own sampling defaults (config.json `longshot_video_defaults`). */
  videoDefaults: SamplingOptions;
}

export async function inspectModel(dir: string): Promise<ModelSummary> {
  const path = join(dir, 'config.json');
  const config = await readJsonFile(path);
  if (!isObject(config)) throw new ModelError(`${path}: expected a JSON object`);
  const read = (await hasWeights(dir)) ? await readWeights(dir) : null;
  const files = { dir, config, tensorNames: read?.tensorNames ?? [] };
  const family = familyOf(files);
  // A directory with a config but no weights: the family counts its parameters from the config if it can,
  // else reading the weights fails with the checkpoint's own "no weights found" error.
  const weights = read?.weights ?? family.sizeFromConfig?.(files) ?? (await readWeights(dir)).weights;
  return {
    dir,
    family,
    checkpoint: await family.open(files, weights),
    videoDefaults: videoDefaultsOf(config, dir),
    ...weights,
  };
}

/**
 * Tensor names and sizes from the safetensors headers, else (a directory holding only the official torch.save
 * file, e.g. TimeViper's) from that file's pickle.
 */
async function readWeights(dir: string): Promise<{ tensorNames: string[]; weights: WeightSummary }> {
  const names = await readdir(dir).catch(() => null);
  const safetensors = names === null || names.some((n) => n.endsWith('.safetensors') || n === INDEX_FILE);
  await using source = (!safetensors && (await openTorchWeights(dir))) || (await Checkpoint.open(dir));
  const tensorNames = source.names();
  let parameters = 0;
  let weightBytes = 0;
  const bytesByDtype = new Map<string, number>();
  for (const name of tensorNames) {
    const t = source.info(name);
    parameters += t.shape.reduce((a, d) => a * d, 1);
    weightBytes += t.end - t.begin;
    bytesByDtype.set(t.dtype, (bytesByDtype.get(t.dtype) ?? 0) + t.end - t.begin);
  }
  const dtype = [...bytesByDtype].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 'none';
  return { tensorNames, weights: { parameters, weightBytes, dtype } };
}

/** Whether the directory holds any weights (a file or an unreadable path is left to Checkpoint.open). */
async function hasWeights(dir: string): Promise<boolean> {
  const names = await readdir(dir).catch(() => null);
  return (
    names === null ||
    names.some(
      (n) =>
        n.endsWith('.safetensors') ||
        n === INDEX_FILE ||
        (TORCH_WEIGHT_FILES as readonly string[]).includes(n),
    )
  );
}
