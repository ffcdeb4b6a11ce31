/**
 * `generation_config.json`: the checkpoint's default decoding settings. Absent keys take the Hugging Face
 * `GenerationConfig` defaults; an absent file means all defaults (it is optional on the hub).
 */
import { join } from 'node:path';
import { Fields, fileExists, type JsonObject, readJsonFile } from './json-fields.js';

export interface GenerationConfig {
  bos_token_id: number | null;
  /** Always a list (files store an int or a list); empty when unset. */
  eos_token_id: number[];
  pad_token_id: number | null;
  do_sample: boolean;
  temperature: number;
  top_k: number;
  top_p: number;
  repetition_penalty: number;
  max_new_tokens: number | null;
  max_length: number | null;
  extra: JsonObject;
}

export function parseGenerationConfig(json: unknown, source = 'generation_config.json'): GenerationConfig {
  const f = Fields.of(json, source);
  const config: GenerationConfig = {
    bos_token_id: f.int('bos_token_id') ?? null,
    eos_token_id: f.intOrList('eos_token_id') ?? [],
    pad_token_id: f.int('pad_token_id') ?? null,
    do_sample: f.bool('do_sample', false),
    temperature: f.num('temperature', 1),
    top_k: f.int('top_k', 50),
    top_p: f.num('top_p', 1),
    repetition_penalty: f.num('repetition_penalty', 1),
    max_new_tokens: f.int('max_new_tokens') ?? null,
    max_length: f.int('max_length') ?? null,
    extra: {},
  };
  if (config.temperature < 0) throw f.error('temperature', `must be ≥ 0 (got ${config.temperature})`);
  if (!(config.top_p > 0 && config.top_p <= 1))
    throw f.error('top_p', `must be in (0, 1] (got ${config.top_p})`);
  if (config.repetition_penalty <= 0)
    throw f.error('repetition_penalty', `must be positive (got ${config.repetition_penalty})`);
  config.extra = f.unread();
  return config;
}

/** Reads `<dir>/generation_config.json`, or the defaults when the checkpoint has none. */
export async function readGenerationConfig(dir: string): Promise<GenerationConfig> {
  const path = join(dir, 'generation_config.json');
  return parseGenerationConfig((await fileExists(path)) ? await readJsonFile(path) : {}, path);
}
