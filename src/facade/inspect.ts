/**
 * What a checkpoint is, read from its config.json and safetensors headers only (no weights loaded): the
 * model family that reads it, the family's view of it (description, memory estimate, loader), and the
 * parameter count and stored size.
 */
import { join } from 'node:path';
import { ModelError } from '../errors.js';
import { Checkpoint } from '../io/checkpoint.js';
import { isObject, readJsonFile } from '../io/json-fields.js';
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
  await using ckpt = await Checkpoint.open(dir);
  const tensorNames = ckpt.names();
  let parameters = 0;
  const bytesByDtype = new Map<string, number>();
  for (const name of tensorNames) {
    const t = ckpt.info(name);
    parameters += t.shape.reduce((a, d) => a * d, 1);
    bytesByDtype.set(t.dtype, (bytesByDtype.get(t.dtype) ?? 0) + t.end - t.begin);
  }
  const dtype = [...bytesByDtype].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 'none';
  const weights = { parameters, weightBytes: ckpt.bytes, dtype };
  const files = { dir, config, tensorNames };
  const family = familyOf(files);
  return {
    dir,
    family,
    checkpoint: await family.open(files, weights),
    videoDefaults: videoDefaultsOf(config, dir),
    ...weights,
  };
}
