/**
 * Tiny random-weight Qwen2-VL and Vamba checkpoints written by the tests: the real model code runs on them
 * (vision tower, decoder, cross-attention and Mamba for Vamba, generation), with the needle task's small
 * WordPiece tokenizer, which has Qwen's chat and vision special tokens. Their answers are noise; their
 * shapes, token counts and determinism are real. Also a tiny TimeViper (the needle fixture's shapes and
 * tokenizer, random weights).
 */
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { saveSafetensors } from '../../src/io/safetensors-write.js';
import { parseQwen2VLConfig } from '../../src/models/qwen2vl/config.js';
import { qwen2vlSpecs } from '../../src/models/qwen2vl/weights.js';
import { parseTimeViperConfig } from '../../src/models/timeviper/config.js';
import { timeViperSpecs } from '../../src/models/timeviper/weights.js';
import { vambaSpecs } from '../../src/models/vamba/weights.js';
import {
  needleTokenizerConfig,
  needleTokenizerJson,
  needleVocabulary,
  SPECIAL_TOKENS,
} from '../../src/needle/tokenizer.js';
import { randn, rng } from '../helpers.js';

export const TINY_QWEN2VL_CONFIG = {
  architectures: ['Qwen2VLForConditionalGeneration'],
  model_type: 'qwen2_vl',
  torch_dtype: 'float32',
  vocab_size: SPECIAL_TOKENS.length + needleVocabulary().length,
  hidden_size: 32,
  intermediate_size: 64,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  rope_scaling: { type: 'mrope', mrope_section: [2, 3, 3] },
  bos_token_id: 1,
  eos_token_id: 2,
  pad_token_id: 0,
  vision_start_token_id: 3,
  vision_end_token_id: 4,
  image_token_id: 5,
  video_token_id: 6,
  vision_token_id: 5,
  vision_config: {
    depth: 1,
    embed_dim: 32,
    num_heads: 2,
    hidden_size: 32,
    mlp_ratio: 2,
    patch_size: 14,
    spatial_merge_size: 2,
    temporal_patch_size: 2,
  },
};

/** Qwen2-VL-Instruct's chat template (pads inside the vision span, where the processor expands them). */
const QWEN2VL_TEMPLATE =
  "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

/** Frames become at most 4×4 merged tokens per temporal group (max_pixels = 16·28²). */
export const TINY_PREPROCESSOR = {
  min_pixels: 4 * 28 * 28,
  max_pixels: 16 * 28 * 28,
  patch_size: 14,
  merge_size: 2,
  temporal_patch_size: 2,
};

/** Vamba: the same model plus cross-attention, α balancing and a small Mamba-2 mixer on the video tokens. */
export const TINY_VAMBA_CONFIG = {
  ...TINY_QWEN2VL_CONFIG,
  use_alpha_balancing: true,
  vision_mamba_mixer_config: {
    enable: true,
    d_state: 8,
    headdim: 16,
    expand: 2,
    ngroups: 1,
    chunk_size: 16,
    d_conv: 4,
  },
};

export function writeTinyQwen2VL(dir: string, seed = 11): Promise<void> {
  return writeTinyModel(dir, 'qwen2_vl', seed);
}

export function writeTinyVamba(dir: string, seed = 12): Promise<void> {
  return writeTinyModel(dir, 'vamba', seed);
}

const NEEDLE_TIMEVIPER = join(import.meta.dirname, '..', 'fixtures', 'timeviper', 'needle-tiny');

/**
 * TimeViper with the needle fixture's shapes (SigLIP 112 px, 8×8 patches, 32 wide; a 4-block Nemotron-H 48 wide)
 * and its tokenizer, whose `<image>` is 103 (the LLM's vocabulary widened to hold it); no drop stages.
 */
export async function writeTinyTimeViper(dir: string, seed = 13): Promise<void> {
  const json = JSON.parse(readFileSync(join(NEEDLE_TIMEVIPER, 'config.json'), 'utf8'));
  json.llm_config.vocab_size = 112;
  json.image_token_index = 103;
  writeFileSync(join(dir, 'config.json'), JSON.stringify(json));
  for (const f of ['tokenizer.json', 'tokenizer_config.json'])
    copyFileSync(join(NEEDLE_TIMEVIPER, 'tokenizer', f), join(dir, f));
  await writeRandom(join(dir, 'model.safetensors'), timeViperSpecs(parseTimeViperConfig(json)), seed);
}

async function writeTinyModel(dir: string, architecture: 'qwen2_vl' | 'vamba', seed: number): Promise<void> {
  const json = architecture === 'vamba' ? TINY_VAMBA_CONFIG : TINY_QWEN2VL_CONFIG;
  writeFileSync(join(dir, 'config.json'), JSON.stringify(json));
  writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: 2 }));
  writeFileSync(join(dir, 'preprocessor_config.json'), JSON.stringify(TINY_PREPROCESSOR));
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(needleTokenizerJson()));
  writeFileSync(
    join(dir, 'tokenizer_config.json'),
    JSON.stringify({ ...needleTokenizerConfig(), chat_template: QWEN2VL_TEMPLATE }),
  );
  const config = parseQwen2VLConfig(json);
  const specs = architecture === 'vamba' ? vambaSpecs(config) : qwen2vlSpecs(config);
  await writeRandom(join(dir, 'model.safetensors'), specs, seed);
}

async function writeRandom(
  path: string,
  specs: readonly { name: string; shape: readonly number[] }[],
  seed: number,
): Promise<void> {
  const r = rng(seed);
  await saveSafetensors(
    path,
    specs.map((s) => {
      const n = s.shape.reduce((a, b) => a * b, 1);
      // Norm weights near 1, everything else small: activations stay tame through the layers.
      const data =
        s.name.endsWith('norm.weight') || /norm\d?\.weight$/.test(s.name)
          ? randn(n, r, 0.9, 1.1)
          : randn(n, r, -0.2, 0.2);
      return [s.name, { dtype: 'F32' as const, shape: [...s.shape], data }] as const;
    }),
  );
}
