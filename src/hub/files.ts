/**
 * Which files of a model repository longshot needs: the JSON that describes the model, tokenizer and
 * processor, and the safetensors weights — never the .bin/.pth/.gguf/.onnx duplicates many repos also
 * carry, which would multiply the download.
 */
import { ModelError } from '../errors.js';

/** Small files read when present (missing ones are fine: not every repo has every file). */
export const METADATA_FILES = [
  'config.json',
  'generation_config.json',
  'preprocessor_config.json',
  'video_preprocessor_config.json',
  'processor_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'added_tokens.json',
  'vocab.json',
  'merges.txt',
  'chat_template.json',
  'chat_template.jinja',
] as const;

export const WEIGHTS_INDEX = 'model.safetensors.index.json';
export const WEIGHTS_SINGLE = 'model.safetensors';

/** The metadata files and the weights entry point (the index, or the single file) a repo listing offers. */
export function selectFiles(repo: string, siblings: readonly string[]): string[] {
  const have = new Set(siblings);
  if (!have.has('config.json'))
    throw new ModelError(`${repo} has no config.json: it is not a model repository`);
  const weights = have.has(WEIGHTS_INDEX)
    ? WEIGHTS_INDEX
    : have.has(WEIGHTS_SINGLE)
      ? WEIGHTS_SINGLE
      : undefined;
  if (!weights) {
    const other = siblings.filter((f) => /\.(bin|pth|pt|gguf|ckpt|onnx)$/.test(f));
    throw new ModelError(
      `${repo} has no safetensors weights (${WEIGHTS_INDEX} or ${WEIGHTS_SINGLE})` +
        (other.length
          ? `; it only offers ${other.slice(0, 3).join(', ')}, which longshot does not read`
          : ''),
    );
  }
  return [...METADATA_FILES.filter((f) => have.has(f)), weights];
}

/** The shard file names a `model.safetensors.index.json` maps tensors to. */
export function shardsOfIndex(indexJson: string, where: string): string[] {
  let map: unknown;
  try {
    map = JSON.parse(indexJson)?.weight_map;
  } catch (e) {
    throw new ModelError(`${where}: unreadable ${WEIGHTS_INDEX} (${(e as Error).message})`);
  }
  if (map === null || typeof map !== 'object' || Array.isArray(map))
    throw new ModelError(`${where}: malformed ${WEIGHTS_INDEX} (no "weight_map" object)`);
  const shards = new Set<string>();
  for (const f of Object.values(map)) {
    if (typeof f !== 'string' || !f.endsWith('.safetensors') || f.includes('..') || f.startsWith('/'))
      throw new ModelError(`${where}: ${WEIGHTS_INDEX} names an invalid shard ${JSON.stringify(f)}`);
    shards.add(f);
  }
  return [...shards].sort();
}
