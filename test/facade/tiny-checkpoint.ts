/** A small random-weight Qwen2-VL-shaped checkpoint (config.json + model.safetensors), written by tests. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { saveSafetensors } from '../../src/io/safetensors-write.js';
import { randn, rng } from '../helpers.js';

export const TINY_CONFIG = {
  architectures: ['Qwen2VLForConditionalGeneration'],
  model_type: 'qwen2_vl',
  torch_dtype: 'float32',
  vocab_size: 64,
  bos_token_id: 1,
  eos_token_id: 2,
  pad_token_id: 0,
  vision_start_token_id: 3,
  vision_end_token_id: 4,
  vision_token_id: 5,
  image_token_id: 6,
  video_token_id: 7,
  hidden_size: 16,
  intermediate_size: 32,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  rope_scaling: { type: 'mrope', mrope_section: [2, 1, 1] },
  vision_config: {
    depth: 1,
    embed_dim: 8,
    num_heads: 2,
    hidden_size: 16,
    patch_size: 14,
    spatial_merge_size: 2,
    temporal_patch_size: 2,
  },
};

/** The tensors (name → shape) written; the parameter count is their product sum. */
export const TINY_TENSORS: Record<string, number[]> = {
  'model.embed_tokens.weight': [64, 16],
  'model.layers.0.self_attn.q_proj.weight': [16, 16],
  'model.layers.1.mlp.up_proj.weight': [32, 16],
  'lm_head.weight': [64, 16],
};

export async function writeTinyCheckpoint(dir: string, config: object = TINY_CONFIG): Promise<void> {
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  const r = rng(7);
  await saveSafetensors(
    join(dir, 'model.safetensors'),
    Object.fromEntries(
      Object.entries(TINY_TENSORS).map(([name, shape]) => [
        name,
        {
          dtype: 'F32' as const,
          shape,
          data: randn(
            shape.reduce((a, b) => a * b, 1),
            r,
          ),
        },
      ]),
    ),
  );
}
