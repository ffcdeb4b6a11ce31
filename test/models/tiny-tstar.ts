/**
 * Tiny TSTAR checkpoints with random weights for the family, runner and composition tests: a 2-block Qwen2-VL
 * vision tower (56×56 frames → 4 merged tokens per 2-frame group), a bidirectional gated MambaMia compressor
 * with k = 4, and a 2-layer Qwen2 (the needle models' tokenizer, video placeholder 6) or the `nano-like`
 * Nemotron-H fixture's stack.
 */
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import type { JsonObject } from '../../src/io/json-fields.js';
import { saveSafetensors } from '../../src/io/safetensors-write.js';
import { parseTstarConfig, type TstarConfig } from '../../src/models/tstar/config.js';
import { tstarSpecs } from '../../src/models/tstar/model.js';
import { ParamStore } from '../../src/nn/params.js';
import * as ops from '../../src/runtime/ops.js';
import type { Tensor } from '../../src/runtime/tensor.js';
import { randn, rng } from '../helpers.js';

const be = cpuBackend();
const NEEDLE = 'models/needle-qwen2vl-tiny';

const VISION = {
  model_type: 'qwen2_vl',
  depth: 2,
  embed_dim: 32,
  num_heads: 2,
  mlp_ratio: 2,
  patch_size: 14,
  temporal_patch_size: 2,
  spatial_merge_size: 2,
  in_channels: 3,
  hidden_size: 48,
  hidden_act: 'quick_gelu',
};

const projector = (output: number) => ({
  input_size: 48,
  output_size: output,
  hidden_size: 32,
  num_hidden_layers: 2,
  num_heads: 4,
  head_dim: 16,
  state_size: 8,
  chunk_size: 8,
  version: 'v2',
  mambamia_gated_aggregation: true,
  mambamia_chunk_size: 4,
});

const QWEN2 = {
  model_type: 'qwen2',
  vocab_size: 100,
  hidden_size: 64,
  intermediate_size: 96,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  rope_theta: 10000,
  tie_word_embeddings: false,
  bos_token_id: 0,
  eos_token_id: 2,
};

/** A 3-block SigLIP tower (32×32 frames, 8×8 patches: 16 tokens per frame, 48 wide) in either layout. */
export const tinySiglip = (layout: 'hf' | 'timm') => ({
  model_type: 'siglip_vision_model',
  vision_layout: layout,
  hidden_size: 48,
  intermediate_size: 80,
  num_hidden_layers: 3,
  num_attention_heads: 4,
  image_size: 32,
  patch_size: 8,
  num_channels: 3,
  layer_norm_eps: 1e-6,
  hidden_act: layout === 'timm' ? 'gelu' : 'gelu_pytorch_tanh',
});

/** A TSTAR config.json object with the Qwen2 or the Nemotron-H LLM. */
export function tinyTstarJson(text: 'qwen2' | 'nemotron_h'): JsonObject {
  const nemotron = JSON.parse(
    readFileSync('test/fixtures/nemotron_h/nano-like/config.json', 'utf8'),
  ) as JsonObject;
  return {
    model_type: 'tstar',
    architectures: ['TstarForConditionalGeneration'],
    vision_config: VISION,
    mm_projector_config: projector(text === 'qwen2' ? QWEN2.hidden_size : (nemotron.hidden_size as number)),
    text_config: text === 'qwen2' ? QWEN2 : nemotron,
    video_token_id: text === 'qwen2' ? 6 : 310,
  };
}

/** Random values for every parameter of `c` (norm weights near 1, A_log/dt_bias in their usual ranges). */
export function randomHost(
  c: TstarConfig,
  seed: number,
): Map<string, { shape: number[]; values: Float32Array }> {
  const r = rng(seed);
  const host = new Map<string, { shape: number[]; values: Float32Array }>();
  for (const s of tstarSpecs(c)) {
    const n = s.shape.reduce((a, b) => a * b, 1);
    const range: [number, number] = /dt_bias/.test(s.name)
      ? [-3, -1]
      : /A_(b_)?log/.test(s.name)
        ? [0, 2]
        : /norm|layernorm|ln_q/.test(s.name) && s.shape.length === 1 && !/bias$/.test(s.name)
          ? [0.8, 1.2]
          : [-0.3, 0.3];
    host.set(s.name, { shape: [...s.shape], values: randn(n, r, ...range) });
  }
  return host;
}

/** A ParamStore of host values, the patch embedding flattened as the loader leaves it. */
export function storeOf(host: Map<string, { shape: number[]; values: Float32Array }>): ParamStore {
  return new ParamStore(
    [...host].map(([name, h]): [string, Tensor] => {
      const shape =
        name === 'visual.patch_embed.proj.weight' ? [h.shape[0], h.values.length / h.shape[0]] : h.shape;
      return [name, ops.tensor(be, h.values, shape)];
    }),
  );
}

/**
 * Writes a tiny TSTAR checkpoint (by default the Qwen2 LLM; the needle models' tokenizer and processor, whose
 * video placeholder is 6) to `dir`.
 */
export async function writeTinyTstar(
  dir: string,
  seed = 1,
  json: JsonObject = tinyTstarJson('qwen2'),
): Promise<TstarConfig> {
  const config = parseTstarConfig(json);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(json));
  for (const f of [
    'tokenizer.json',
    'tokenizer_config.json',
    'preprocessor_config.json',
    'generation_config.json',
  ])
    copyFileSync(join(NEEDLE, f), join(dir, f));
  const tensors = [...randomHost(config, seed)].map(([name, h]): [string, Tensor] => [
    name,
    ops.tensor(be, h.values, h.shape),
  ]);
  try {
    await saveSafetensors(join(dir, 'model.safetensors'), tensors);
  } finally {
    for (const [, t] of tensors) t.dispose();
  }
  return config;
}
