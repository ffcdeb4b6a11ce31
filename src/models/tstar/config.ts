/**
 * A TSTAR checkpoint's config.json (`model_type` "tstar"): one file composing a vision tower, the MambaMia
 * compressor and an LLM (docs/tstar.md):
 *
 *   vision_config          the vision tower: Qwen2-VL's (`model_type` "qwen2_vl", the default; its merger's
 *                          width is `hidden_size`) or SigLIP (`model_type` "siglip_vision_model", transformers'
 *                          SiglipVisionConfig keys, plus `vision_layout` "hf" | "timm" and
 *                          `vision_feature_block`, default −1: the last block's output without the final norm)
 *   mm_projector_config    the compressor (models/mambamia/config.ts); its input_size is the tower's output width
 *                          and its output_size the LLM's width
 *   text_config            the LLM: `model_type` "qwen2" (Qwen2's keys, 1-D RoPE) or "nemotron_h" (Nemotron-H's)
 *   video_token_id         the placeholder the compressed tokens replace (one in the prompt, expanded to their count)
 *   text_config.vision_start_token_id   optional: `<|vision_start|>`, after which training puts the video in prompts
 *                          that only mark it (the needle and Vamba prompts); Qwen2's default is Qwen2-VL's id
 *
 * Tensor names: `visual.*` (Qwen2-VL's tower) or `vision_tower.vision_model.*` / `vision_tower.*` (SigLIP in
 * transformers' / timm's layout, LLaVA's prefix), `mm_projector.*` (the compressor), then the LLM's own
 * (`model.*` and `lm_head` for Qwen2, `backbone.*` and `lm_head` for Nemotron-H).
 */
import { ModelError } from '../../errors.js';
import { Fields, type JsonObject } from '../../io/json-fields.js';
import { type MambaMiaConfig, parseMambaMiaConfig } from '../mambamia/config.js';
import { type NemotronHConfig, parseNemotronHConfig } from '../nemotron_h/config.js';
import {
  parseQwen2VLConfig,
  parseQwen2VLVisionConfig,
  type Qwen2VLConfig,
  type Qwen2VLVisionConfig,
} from '../qwen2vl/config.js';
import { parseSiglipVisionConfig, type SiglipLayout, type SiglipVisionConfig } from '../siglip/config.js';
import { resolveBlock } from '../siglip/model.js';

const TSTAR_MODEL_TYPE = 'tstar';

/** transformers' model_type of a SigLIP vision tower's config. */
export const SIGLIP_VISION_TYPE = 'siglip_vision_model';

/**
 * The vision tower: Qwen2-VL's (merged tokens per temporal group of 2 frames) or SigLIP (every patch of each
 * frame: one frame is one group). `width` is the tokens' width, the compressor's input_size.
 */
export type TstarVision =
  | { kind: 'qwen2_vl'; config: Qwen2VLVisionConfig; width: number }
  | {
      kind: 'siglip';
      config: SiglipVisionConfig;
      layout: SiglipLayout;
      /** The block (0-based, resolved) whose output, without the final norm, is the feature. */
      featureBlock: number;
      width: number;
    };

/** The LLM: Qwen2 (carried as a Qwen2-VL config whose M-RoPE rows all hold the 1-D position) or Nemotron-H. */
export type TstarText =
  | { kind: 'qwen2'; config: Qwen2VLConfig }
  | { kind: 'nemotron_h'; config: NemotronHConfig };

export interface TstarConfig {
  vision: TstarVision;
  projector: MambaMiaConfig;
  text: TstarText;
  video_token_id: number;
  /** `<|vision_start|>` (null: not known for this LLM). */
  vision_start_token_id: number | null;
  /** Stop tokens of the LLM. */
  eos_token_id: number[];
  vocab_size: number;
  hidden_size: number;
  num_hidden_layers: number;
}

export const isTstarConfigJson = (json: JsonObject): boolean => json.model_type === TSTAR_MODEL_TYPE;

export function parseTstarConfig(json: unknown, source = 'config.json'): TstarConfig {
  const top = Fields.of(json, source);
  const vis = top.nested('vision_config');
  const vision = readVision(vis, source);
  const projector = parseMambaMiaConfig(
    top.get('mm_projector_config') ?? {},
    `${source}: mm_projector_config`,
  );
  const t = top.nested('text_config');
  const textType = t.str('model_type', 'qwen2');
  const video_token_id = top.int('video_token_id');
  if (video_token_id === undefined) throw top.error('video_token_id', 'is missing');
  const text = readText(textType, t.obj, vision.kind === 'qwen2_vl' ? vis.obj : {}, video_token_id, source);
  const c =
    text.kind === 'qwen2'
      ? {
          eos: text.config.eos_token_id,
          vocab: text.config.text.vocab_size,
          hidden: text.config.text.hidden_size,
          layers: text.config.text.num_hidden_layers,
        }
      : {
          eos: text.config.eos_token_id,
          vocab: text.config.vocab_size,
          hidden: text.config.hidden_size,
          layers: text.config.hybrid_override_pattern.length,
        };
  if (projector.input_size !== vision.width)
    throw new ModelError(
      `${source}: mm_projector_config.input_size ${projector.input_size} ≠ the vision tower's output width vision_config.hidden_size ${vision.width}`,
    );
  if (projector.output_size !== c.hidden)
    throw new ModelError(
      `${source}: mm_projector_config.output_size ${projector.output_size} ≠ the LLM's width text_config.hidden_size ${c.hidden}`,
    );
  if (video_token_id >= c.vocab)
    throw top.error(
      'video_token_id',
      `${video_token_id} is outside the LLM's vocabulary (0..${c.vocab - 1})`,
    );
  return {
    vision,
    projector,
    text,
    video_token_id,
    vision_start_token_id:
      text.kind === 'qwen2' ? text.config.vision_start_token_id : (t.int('vision_start_token_id') ?? null),
    eos_token_id: c.eos,
    vocab_size: c.vocab,
    hidden_size: c.hidden,
    num_hidden_layers: c.layers,
  };
}

function readVision(vis: Fields, source: string): TstarVision {
  const type = vis.str('model_type', 'qwen2_vl');
  if (type === 'qwen2_vl') {
    const config = parseQwen2VLVisionConfig(vis.obj, source);
    return { kind: 'qwen2_vl', config, width: config.hidden_size };
  }
  if (type !== SIGLIP_VISION_TYPE)
    throw vis.error(
      'model_type',
      `"${type}" is not a vision tower TSTAR has here ("qwen2_vl" or "${SIGLIP_VISION_TYPE}")`,
    );
  const layout = vis.str('vision_layout', 'hf');
  if (layout !== 'hf' && layout !== 'timm') throw vis.error('vision_layout', 'must be "hf" or "timm"');
  const config = parseSiglipVisionConfig(vis.obj, layout);
  const block = vis.num('vision_feature_block') ?? -1;
  if (!Number.isInteger(block))
    throw vis.error('vision_feature_block', 'must be an integer (−1: the last block)');
  const featureBlock = resolveBlock(config, block);
  return { kind: 'siglip', config, layout, featureBlock, width: config.hidden_size };
}

function readText(
  type: string,
  text: JsonObject,
  vision: JsonObject,
  video_token_id: number,
  source: string,
): TstarText {
  const where = `${source}: text_config`;
  if (type === 'nemotron_h') return { kind: 'nemotron_h', config: parseNemotronHConfig(text, where) };
  if (type !== 'qwen2')
    throw new ModelError(
      `${where}: model_type "${type}" is not an LLM TSTAR has here ("qwen2" or "nemotron_h")`,
    );
  // Qwen2 as Qwen2-VL's decoder: every prompt token gets the same position on the three M-RoPE rows, which is
  // plain RoPE whatever the section split; a plain Qwen2 config has none, so one section is supplied.
  const heads = typeof text.num_attention_heads === 'number' ? text.num_attention_heads : 0;
  const hidden = typeof text.hidden_size === 'number' ? text.hidden_size : 0;
  const rope = text.rope_scaling ?? { type: 'default', mrope_section: [hidden / heads / 2] };
  return {
    kind: 'qwen2',
    config: parseQwen2VLConfig(
      {
        model_type: 'qwen2_vl',
        text_config: { ...text, rope_scaling: rope },
        vision_config: vision,
        video_token_id,
        // Where the video is marked in a prompt without its placeholder (training on the needle prompts).
        vision_start_token_id: text.vision_start_token_id,
      },
      where,
    ),
  };
}
