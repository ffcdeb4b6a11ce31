/**
 * NVIDIA-Nemotron-Nano-9B-v2's config.json (values from its model card and docs/research-nemotron-h.md §2),
 * written to a directory and read back: 56 layers (27 Mamba-2, 4 attention at 14/21/30/39, 25 MLP), the
 * published tensor shapes and 8,888,227,328 parameters (the sum worked out by hand in the research doc).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  layerCensus,
  type NemotronHConfig,
  readNemotronHConfig,
} from '../../src/models/nemotron_h/config.js';
import { nemotronHStateBytes } from '../../src/models/nemotron_h/size.js';
import { nemotronHParamCount, nemotronHSpecs } from '../../src/models/nemotron_h/weights.js';

const NANO_9B_V2 = {
  architectures: ['NemotronHForCausalLM'],
  model_type: 'nemotron_h',
  torch_dtype: 'bfloat16',
  vocab_size: 131072,
  hidden_size: 4480,
  intermediate_size: 15680,
  num_hidden_layers: 56,
  hybrid_override_pattern: 'M-M-M-MM-M-M-M*-M-M-M*-M-M-M-M*-M-M-M-M*-M-MM-M-M-M-M-M-',
  num_attention_heads: 40,
  num_key_value_heads: 8,
  head_dim: 128,
  attention_bias: false,
  attention_dropout: 0.0,
  max_position_embeddings: 131072,
  mlp_hidden_act: 'relu2',
  mlp_bias: false,
  mamba_num_heads: 128,
  mamba_head_dim: 80,
  n_groups: 8,
  ssm_state_size: 128,
  conv_kernel: 4,
  chunk_size: 128,
  expand: 2,
  mamba_hidden_act: 'silu',
  use_conv_bias: true,
  mamba_proj_bias: false,
  use_bias: false,
  time_step_min: 0.001,
  time_step_max: 0.1,
  time_step_floor: 0.0001,
  layer_norm_epsilon: 1e-5,
  rms_norm_eps: 1e-5,
  residual_in_fp32: false,
  rescale_prenorm_residual: true,
  tie_word_embeddings: false,
  use_cache: true,
  use_mamba_kernels: true,
  num_logits_to_keep: 1,
  initializer_range: 0.02,
  hidden_dropout: 0.0,
  bos_token_id: 1,
  eos_token_id: 12,
  pad_token_id: 0,
};

describe('Nemotron-H: NVIDIA-Nemotron-Nano-9B-v2 config.json', () => {
  let dir: string;
  let config: NemotronHConfig;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'nemoh-nano-'));
    await writeFile(join(dir, 'config.json'), JSON.stringify(NANO_9B_V2, null, 2));
    config = await readNemotronHConfig(dir);
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  it('has 56 layers: 27 Mamba-2, 4 attention (at 14, 21, 30, 39), 25 MLP', () => {
    assert.equal(config.hybrid_override_pattern.length, 56);
    assert.deepEqual(layerCensus(config), { mamba: 27, attention: 4, mlp: 25 });
    const attention = [...config.hybrid_override_pattern].flatMap((ch, i) => (ch === '*' ? [i] : []));
    assert.deepEqual(attention, [14, 21, 30, 39]);
  });

  it('has the published tensor shapes', () => {
    const shapes = new Map(nemotronHSpecs(config).map((s) => [s.name, s.shape]));
    const want: Record<string, number[]> = {
      'backbone.embeddings.weight': [131072, 4480],
      'backbone.layers.0.norm.weight': [4480],
      'backbone.layers.0.mixer.in_proj.weight': [22656, 4480],
      'backbone.layers.0.mixer.conv1d.weight': [12288, 1, 4],
      'backbone.layers.0.mixer.conv1d.bias': [12288],
      'backbone.layers.0.mixer.dt_bias': [128],
      'backbone.layers.0.mixer.A_log': [128],
      'backbone.layers.0.mixer.D': [128],
      'backbone.layers.0.mixer.norm.weight': [10240],
      'backbone.layers.0.mixer.out_proj.weight': [4480, 10240],
      'backbone.layers.1.mixer.up_proj.weight': [15680, 4480],
      'backbone.layers.1.mixer.down_proj.weight': [4480, 15680],
      'backbone.layers.14.mixer.q_proj.weight': [5120, 4480],
      'backbone.layers.14.mixer.k_proj.weight': [1024, 4480],
      'backbone.layers.14.mixer.v_proj.weight': [1024, 4480],
      'backbone.layers.14.mixer.o_proj.weight': [4480, 5120],
      'backbone.norm_f.weight': [4480],
      'lm_head.weight': [131072, 4480],
    };
    for (const [name, shape] of Object.entries(want)) assert.deepEqual(shapes.get(name), shape, name);
    // embeddings, norm_f, lm_head; 56 block norms; 8 tensors per Mamba-2 mixer, 4 per attention, 2 per MLP.
    assert.equal(shapes.size, 3 + 56 + 27 * 8 + 4 * 4 + 25 * 2);
  });

  it('has 8,888,227,328 parameters', () => {
    assert.equal(nemotronHParamCount(config), 8_888_227_328);
  });

  it('decodes at 32k tokens in bf16 with 512 MiB of K/V and 137 MiB of Mamba-2 state', () => {
    // K/V: 4 layers × (k, v) × 8 heads × 128 × 2 B per token; Mamba: 27 × (f32 SSM 128·80·128 + 3 conv rows of 12288 in bf16).
    assert.deepEqual(nemotronHStateBytes(config, 32768, 'bf16'), {
      kv: 536_870_912,
      mamba: 27 * (128 * 80 * 128 * 4 + 3 * 12288 * 2),
    });
  });
});
