/**
 * `preprocessor_config.json` of the Qwen2-VL image processor. Pixel bounds come either as
 * `min_pixels`/`max_pixels` (older files) or as `size: {shortest_edge, longest_edge}` (newer ones, where
 * the "edges" are in fact pixel counts); both forms present must agree. Absent keys take the
 * Qwen2-VL-7B-Instruct file's values (research/vamba.md §4.2–4.3).
 */
import { join } from 'node:path';
import { ModelError } from '../../errors.js';
import { Fields, type JsonObject, readJsonFile } from '../../io/json-fields.js';

export interface PreprocessorConfig {
  min_pixels: number;
  max_pixels: number;
  patch_size: number;
  temporal_patch_size: number;
  merge_size: number;
  image_mean: [number, number, number];
  image_std: [number, number, number];
  do_resize: boolean;
  do_rescale: boolean;
  rescale_factor: number;
  do_normalize: boolean;
  do_convert_rgb: boolean;
  extra: JsonObject;
}

export const QWEN2VL_PREPROCESSOR: Readonly<Omit<PreprocessorConfig, 'extra'>> = {
  min_pixels: 3136,
  max_pixels: 12845056,
  patch_size: 14,
  temporal_patch_size: 2,
  merge_size: 2,
  image_mean: [0.48145466, 0.4578275, 0.40821073],
  image_std: [0.26862954, 0.26130258, 0.27577711],
  do_resize: true,
  do_rescale: true,
  rescale_factor: 1 / 255,
  do_normalize: true,
  do_convert_rgb: true,
};

export function parsePreprocessorConfig(
  json: unknown,
  source = 'preprocessor_config.json',
): PreprocessorConfig {
  const f = Fields.of(json, source);
  const D = QWEN2VL_PREPROCESSOR;
  const size = f.nested('size');
  const bound = (key: 'min_pixels' | 'max_pixels', edge: 'shortest_edge' | 'longest_edge'): number => {
    const a = f.int(key);
    const b = size.int(edge);
    if (a !== undefined && b !== undefined && a !== b)
      throw new ModelError(`${source}: contradictory pixel bounds: ${key} ${a} but size.${edge} ${b}`);
    return a ?? b ?? D[key];
  };
  const triple = (key: 'image_mean' | 'image_std') =>
    (f.numList(key, 3) ?? D[key]) as [number, number, number];
  const config: PreprocessorConfig = {
    min_pixels: bound('min_pixels', 'shortest_edge'),
    max_pixels: bound('max_pixels', 'longest_edge'),
    patch_size: f.int('patch_size', D.patch_size),
    temporal_patch_size: f.int('temporal_patch_size', D.temporal_patch_size),
    merge_size: f.int('merge_size', D.merge_size),
    image_mean: triple('image_mean'),
    image_std: triple('image_std'),
    do_resize: f.bool('do_resize', D.do_resize),
    do_rescale: f.bool('do_rescale', D.do_rescale),
    rescale_factor: f.num('rescale_factor', D.rescale_factor),
    do_normalize: f.bool('do_normalize', D.do_normalize),
    do_convert_rgb: f.bool('do_convert_rgb', D.do_convert_rgb),
    extra: {},
  };
  if (config.min_pixels > config.max_pixels)
    throw new ModelError(
      `${source}: min_pixels ${config.min_pixels} exceeds max_pixels ${config.max_pixels}`,
    );
  for (const k of ['patch_size', 'temporal_patch_size', 'merge_size'] as const)
    if (config[k] <= 0) throw f.error(k, `must be positive (got ${config[k]})`);
  if (!config.image_std.every((s) => s > 0)) throw f.error('image_std', 'must be positive');
  config.extra = f.unread();
  const sizeRest = size.unread();
  if (Object.keys(sizeRest).length) config.extra.size = sizeRest;
  return config;
}

/** Reads `<dir>/preprocessor_config.json`. */
export async function readPreprocessorConfig(dir: string): Promise<PreprocessorConfig> {
  const path = join(dir, 'preprocessor_config.json');
  return parsePreprocessorConfig(await readJsonFile(path), path);
}
