/**
 * A TimeViper checkpoint's config.json (model_type "timeviper"; the official code keeps these settings as
 * command-line arguments and the LLM's own config): the Nemotron-H LLM (`llm_config`), the SigLIP tower
 * (`vision_config`, its parameter layout and the block whose output is the feature: −2, the second to last,
 * without the final norm), ToMe's tokens per frame, the `<image>` placeholder id, and the LLM's TimeViper keys
 * `use_pdrop` / `pdrop_type` / `merge_module`.
 */
import { join } from 'node:path';
import { Fields, isObject, readJsonFile } from '../../io/json-fields.js';
import { type NemotronHConfig, parseNemotronHConfig } from '../nemotron_h/config.js';
import {
  parseSiglipVisionConfig,
  patchGrid,
  type SiglipLayout,
  type SiglipVisionConfig,
  so400m,
} from '../siglip/config.js';
import { resolveBlock } from '../siglip/model.js';
import { type DropStage, parsePdropType } from './pdrop.js';

export interface TimeViperConfig {
  llm: NemotronHConfig;
  vision: SiglipVisionConfig;
  visionLayout: SiglipLayout;
  /** The SigLIP block (0-based, resolved) whose output feeds ToMe. */
  featureBlock: number;
  /** Tokens per frame after ToMe (16). */
  tokensPerFrame: number;
  projectorAct: string;
  /** −1: the tokenizer's `<image>` (an official checkpoint's config does not say it). */
  imageTokenId: number;
  /** The drop stages in effect (none when use_pdrop is false). */
  stages: DropStage[];
  pdropType: string | null;
  mergeModule: string;
}

/**
 * A checkpoint as the official training writes it: the LLM's config.json (model_type "nano", its TimeViper keys
 * use_pdrop / pdrop_type / merge_module) beside the whole model's torch.save file; the rest is the official
 * defaults — timm SigLIP so400m at 384 px, block −2, ToMe to 16, `<image>` from the tokenizer (id −1 here).
 */
function officialDefaults(json: Record<string, unknown>): Record<string, unknown> {
  const { use_pdrop, pdrop_type, merge_module, ...llm } = json;
  return {
    model_type: 'timeviper',
    llm_config: { ...llm, model_type: 'nemotron_h' },
    vision_config: so400m('timm'),
    image_token_index: -1,
    use_pdrop,
    pdrop_type,
    merge_module,
  };
}

/** Whether a config.json is the official training's LLM config (read as TimeViper with its defaults). */
export const isOfficialNanoConfig = (json: Record<string, unknown>): boolean => json.model_type === 'nano';

export function parseTimeViperConfig(json: unknown, source = 'config.json'): TimeViperConfig {
  if (isObject(json) && isOfficialNanoConfig(json)) json = officialDefaults(json);
  const f = Fields.of(json, source);
  const type = f.str('model_type');
  if (type !== 'timeviper') throw f.error('model_type', `is "${type}", not "timeviper"`);
  const visionLayout = f.str('vision_layout', 'timm');
  if (visionLayout !== 'timm' && visionLayout !== 'hf')
    throw f.error('vision_layout', 'must be "timm" or "hf"');
  const rawVision = f.get('vision_config');
  const vision = parseSiglipVisionConfig(
    Fields.of(rawVision ?? {}, `${source}: vision_config`).obj,
    visionLayout,
  );
  const llm = parseNemotronHConfig(f.get('llm_config'), `${source}: llm_config`);
  const usePdrop = f.bool('use_pdrop', false);
  const pdropType = f.str('pdrop_type') ?? null;
  const mergeModule = f.str('merge_module', 'no_merge');
  if (usePdrop && !pdropType) throw f.error('pdrop_type', 'must be set when use_pdrop is true');
  const stages = usePdrop ? parsePdropType(pdropType, mergeModule, source) : [];
  for (const s of stages) {
    const kind = llm.hybrid_override_pattern[s.layer];
    if (kind === undefined)
      throw f.error(
        'pdrop_type',
        `names block ${s.layer}, but the LLM has ${llm.hybrid_override_pattern.length}`,
      );
    if (s.kind === 'attn' && kind !== '*')
      throw f.error(
        'pdrop_type',
        `has an attention-guided stage at block ${s.layer}, which is not an attention block`,
      );
  }
  const tokensPerFrame = f.int('num_compressed_tokens', 16);
  const imageTokenId = f.num('image_token_index');
  if (imageTokenId === undefined || !Number.isInteger(imageTokenId))
    throw f.error('image_token_index', 'is missing (the <image> placeholder id)');
  if (!(tokensPerFrame > 0)) throw f.error('num_compressed_tokens', 'must be a positive integer');
  const patches = patchGrid(vision).tokens;
  if (tokensPerFrame > patches)
    throw f.error(
      'num_compressed_tokens',
      `is ${tokensPerFrame}, more than the ${patches} patches a frame has (ToMe only merges; ${patches} keeps them all)`,
    );
  const block = f.num('vision_feature_block', -2);
  const featureBlock = resolveBlock(vision, block);
  return {
    llm,
    vision,
    visionLayout,
    featureBlock,
    tokensPerFrame,
    projectorAct: f.str('projector_hidden_act', 'gelu'),
    imageTokenId,
    stages,
    pdropType,
    mergeModule,
  };
}

export async function readTimeViperConfig(dir: string): Promise<TimeViperConfig> {
  const path = join(dir, 'config.json');
  return parseTimeViperConfig(await readJsonFile(path), path);
}
