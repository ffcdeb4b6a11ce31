import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ModelError } from '../../src/errors.js';
import { parseGenerationConfig, readGenerationConfig } from '../../src/io/index.js';
import { parseQwen2VLConfig, readQwen2VLConfig } from '../../src/models/qwen2vl/config.js';
import {
  parsePreprocessorConfig,
  readPreprocessorConfig,
} from '../../src/models/qwen2vl/preprocessor-config.js';

const dir = await mkdtemp(join(tmpdir(), 'longshot-cfg-'));
after(() => rm(dir, { recursive: true, force: true }));

// Qwen/Qwen2-VL-7B-Instruct config.json, flat transformers-4.x layout (numbers from research/vamba.md §1.2).
const QWEN2VL_7B_FLAT = {
  architectures: ['Qwen2VLForConditionalGeneration'],
  attention_dropout: 0.0,
  bos_token_id: 151643,
  eos_token_id: 151645,
  vision_start_token_id: 151652,
  vision_end_token_id: 151653,
  vision_token_id: 151654,
  image_token_id: 151655,
  video_token_id: 151656,
  hidden_act: 'silu',
  hidden_size: 3584,
  initializer_range: 0.02,
  intermediate_size: 18944,
  max_position_embeddings: 32768,
  max_window_layers: 28,
  model_type: 'qwen2_vl',
  num_attention_heads: 28,
  num_hidden_layers: 28,
  num_key_value_heads: 4,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000.0,
  sliding_window: 32768,
  tie_word_embeddings: false,
  torch_dtype: 'bfloat16',
  transformers_version: '4.41.2',
  use_cache: true,
  use_sliding_window: false,
  vision_config: { in_chans: 3, model_type: 'qwen2_vl', spatial_patch_size: 14 },
  rope_scaling: { type: 'mrope', mrope_section: [16, 24, 24] },
  vocab_size: 152064,
};

// The same model as transformers 5.x writes it: nested text_config with rope_parameters.
const QWEN2VL_7B_NESTED = {
  architectures: ['Qwen2VLForConditionalGeneration'],
  model_type: 'qwen2_vl',
  dtype: 'bfloat16',
  image_token_id: 151655,
  video_token_id: 151656,
  vision_start_token_id: 151652,
  vision_end_token_id: 151653,
  text_config: {
    model_type: 'qwen2_vl_text',
    vocab_size: 152064,
    hidden_size: 3584,
    intermediate_size: 18944,
    num_hidden_layers: 28,
    num_attention_heads: 28,
    num_key_value_heads: 4,
    hidden_act: 'silu',
    max_position_embeddings: 32768,
    rms_norm_eps: 1e-6,
    use_sliding_window: false,
    sliding_window: null,
    max_window_layers: 28,
    attention_dropout: 0.0,
    bos_token_id: 151643,
    eos_token_id: 151645,
    rope_parameters: { rope_type: 'default', rope_theta: 1000000.0, mrope_section: [16, 24, 24] },
  },
  vision_config: {
    model_type: 'qwen2_vl',
    depth: 32,
    embed_dim: 1280,
    hidden_size: 3584,
    hidden_act: 'quick_gelu',
    mlp_ratio: 4,
    num_heads: 16,
    in_channels: 3,
    patch_size: 14,
    spatial_merge_size: 2,
    temporal_patch_size: 2,
    initializer_range: 0.02,
  },
  tie_word_embeddings: false,
  transformers_version: '5.0.0',
};

// The expected normalised 7B values, written out independently of the parser's default tables.
const EXPECTED_TEXT = {
  vocab_size: 152064,
  hidden_size: 3584,
  intermediate_size: 18944,
  num_hidden_layers: 28,
  num_attention_heads: 28,
  num_key_value_heads: 4,
  head_dim: 128,
  rms_norm_eps: 1e-6,
  rope_theta: 1e6,
  mrope_section: [16, 24, 24],
  max_position_embeddings: 32768,
  tie_word_embeddings: false,
  hidden_act: 'silu',
  attention_dropout: 0,
  use_sliding_window: false,
  sliding_window: 32768,
  max_window_layers: 28,
};
const EXPECTED_VISION = {
  depth: 32,
  embed_dim: 1280,
  num_heads: 16,
  mlp_ratio: 4,
  hidden_size: 3584,
  patch_size: 14,
  temporal_patch_size: 2,
  spatial_merge_size: 2,
  in_channels: 3,
  hidden_act: 'quick_gelu',
};

test('flat transformers-4.x Qwen2-VL-7B-Instruct config normalises to the 7B values', () => {
  const c = parseQwen2VLConfig(QWEN2VL_7B_FLAT);
  assert.deepEqual(c.text, EXPECTED_TEXT);
  assert.deepEqual(c.vision, EXPECTED_VISION);
  assert.equal(c.dtype, 'bfloat16');
  assert.deepEqual(c.architectures, ['Qwen2VLForConditionalGeneration']);
  assert.deepEqual(
    [
      c.bos_token_id,
      c.eos_token_id,
      c.vision_start_token_id,
      c.vision_end_token_id,
      c.image_token_id,
      c.video_token_id,
    ],
    [151643, [151645], 151652, 151653, 151655, 151656],
  );
  // A plain Qwen2-VL config: every Vamba feature off.
  assert.equal(c.use_alpha_balancing, false);
  assert.equal(c.vision_mamba_mixer_config.enable, false);
  // Unknown keys are kept, nested ones prefixed.
  assert.equal(c.extra.initializer_range, 0.02);
  assert.equal(c.extra.use_cache, true);
  assert.equal(c.extra['vision_config.model_type'], 'qwen2_vl');
  assert.equal(c.extra.hidden_size, undefined);
});

test('nested transformers-5.x layout gives the same text and vision config', () => {
  const c = parseQwen2VLConfig(QWEN2VL_7B_NESTED);
  assert.deepEqual(c.text, EXPECTED_TEXT); // sliding_window: null means unset → default
  assert.deepEqual(c.vision, EXPECTED_VISION);
  assert.equal(c.dtype, 'bfloat16');
  assert.deepEqual(c.eos_token_id, [151645]);
  assert.equal(c.extra['text_config.model_type'], 'qwen2_vl_text');
});

test('Vamba config: the five extras, mixer defaults from mamba_ssm, Python Infinity accepted', async () => {
  const vamba = {
    ...QWEN2VL_7B_FLAT,
    use_alpha_balancing: true,
    cross_attn_use_position_embeddings: false,
    cross_attn_use_layer_norm: false,
    distill_coeff: 0.0,
    vision_mamba_mixer_config: { enable: true, chunk_size: 256 },
  };
  const c = parseQwen2VLConfig(vamba);
  assert.equal(c.use_alpha_balancing, true);
  assert.deepEqual(c.vision_mamba_mixer_config, {
    enable: true,
    d_state: 128,
    d_conv: 4,
    expand: 2,
    headdim: 64,
    ngroups: 1,
    d_ssm: null,
    chunk_size: 256,
    rmsnorm: true,
    norm_before_gate: false,
    D_has_hdim: false,
    bias: false,
    conv_bias: true,
    dt_min: 0.001,
    dt_max: 0.1,
    dt_init_floor: 1e-4,
    dt_limit: [0, Number.POSITIVE_INFINITY],
    A_init_range: [1, 16],
    use_mem_eff_path: true,
  });
  // json.dumps writes float('inf') as a bare Infinity; the file reader accepts it.
  const text = JSON.stringify({
    ...vamba,
    vision_mamba_mixer_config: { enable: true, dt_limit: [0.0, 'PY_INF'] },
  }).replace('"PY_INF"', 'Infinity');
  await writeFile(join(dir, 'config.json'), text);
  const fromFile = await readQwen2VLConfig(dir);
  assert.deepEqual(fromFile.vision_mamba_mixer_config.dt_limit, [0, Number.POSITIVE_INFINITY]);
});

test('absent keys take the Qwen2-VL-7B values (not the 72B class defaults)', () => {
  const c = parseQwen2VLConfig({ model_type: 'qwen2_vl' });
  assert.deepEqual(c.text, EXPECTED_TEXT);
  assert.deepEqual(c.vision, EXPECTED_VISION);
  assert.equal(c.video_token_id, 151656);
  // A smaller model (Qwen2-VL-2B sizes): head_dim and the merger width follow the given hidden size.
  const small = parseQwen2VLConfig({
    hidden_size: 1536,
    num_attention_heads: 12,
    num_key_value_heads: 2,
    intermediate_size: 8960,
    rope_scaling: { type: 'mrope', mrope_section: [16, 24, 24] },
    vision_config: { hidden_size: 1536, in_chans: 3 },
  });
  assert.equal(small.text.head_dim, 128);
  assert.equal(small.vision.hidden_size, 1536);
});

test('contradictory or malformed configs are ModelErrors naming the problem', () => {
  const bad = (patch: Record<string, unknown>, pattern: RegExp) =>
    assert.throws(
      () => parseQwen2VLConfig({ ...QWEN2VL_7B_FLAT, ...patch }, 'ckpt/config.json'),
      (e) => e instanceof ModelError && pattern.test(e.message) && e.message.includes('config.json'),
    );
  bad({ hidden_size: 3585 }, /hidden_size 3585 is not divisible by num_attention_heads 28/);
  bad({ num_key_value_heads: 5 }, /not a multiple of num_key_value_heads 5/);
  bad(
    { rope_scaling: { type: 'mrope', mrope_section: [16, 24, 16] } },
    /mrope_section \[16, 24, 16\].*head_dim\/2 = 64/,
  );
  bad({ rope_scaling: { type: 'yarn', factor: 4 } }, /rope type "yarn" is not supported/);
  bad({ text_config: { hidden_size: 4096 } }, /hidden_size = 3584 but .*text_config: hidden_size = 4096/);
  bad({ text_config: { rope_parameters: { rope_theta: 10000 } } }, /rope_theta/);
  bad({ vision_config: { hidden_size: 1536 } }, /vision_config.hidden_size 1536 .* ≠ hidden_size 3584/);
  bad({ vision_config: { in_chans: 3, in_channels: 4 } }, /in_chans = 3|in_channels = 4/);
  bad({ vocab_size: 'big' }, /"vocab_size" must be a number/);
  bad({ num_hidden_layers: 2.5 }, /"num_hidden_layers" must be a non-negative integer/);
  bad({ model_type: 'llava' }, /model_type "llava" is not a Qwen2-VL/);
  bad({ video_token_id: 200000 }, /video_token_id 200000 is outside the vocabulary/);
  bad(
    { vision_mamba_mixer_config: { enable: true, headdim: 100 } },
    /d_ssm 7168 is not divisible by headdim 100/,
  );
  bad({ vision_config: { embed_dim: 1280, num_heads: 24 } }, /embed_dim 1280 \/ num_heads 24/);
  // Agreeing duplicates are fine.
  assert.equal(
    parseQwen2VLConfig({ ...QWEN2VL_7B_FLAT, text_config: { hidden_size: 3584 } }).text.hidden_size,
    3584,
  );
});

test('generation_config.json: eos int or list, sampling fields, defaults, validation', async () => {
  // Qwen2-VL-7B-Instruct's generation_config.json.
  const g = parseGenerationConfig({
    bos_token_id: 151643,
    pad_token_id: 151643,
    do_sample: true,
    eos_token_id: [151645, 151643],
    repetition_penalty: 1.05,
    temperature: 0.1,
    top_k: 1,
    top_p: 0.001,
    transformers_version: '4.45.0.dev0',
  });
  assert.deepEqual(g.eos_token_id, [151645, 151643]);
  assert.deepEqual(
    [g.do_sample, g.temperature, g.top_k, g.top_p, g.repetition_penalty],
    [true, 0.1, 1, 0.001, 1.05],
  );
  assert.equal(g.max_new_tokens, null);
  assert.deepEqual(g.extra, { transformers_version: '4.45.0.dev0' });
  assert.deepEqual(
    parseGenerationConfig({ eos_token_id: 151645, max_new_tokens: 512 }).eos_token_id,
    [151645],
  );
  // Missing file: Hugging Face defaults.
  const d = await readGenerationConfig(join(dir, 'no-such-dir'));
  assert.deepEqual(
    [d.do_sample, d.temperature, d.top_k, d.top_p, d.repetition_penalty],
    [false, 1, 50, 1, 1],
  );
  assert.throws(() => parseGenerationConfig({ top_p: 0 }), /"top_p" must be in \(0, 1\]/);
  assert.throws(() => parseGenerationConfig({ eos_token_id: ['x'] }), /"eos_token_id" must be a token id/);
});

test('preprocessor_config.json: min/max_pixels form, size form, contradictions', async () => {
  const mean = [0.48145466, 0.4578275, 0.40821073];
  const std = [0.26862954, 0.26130258, 0.27577711];
  await writeFile(
    join(dir, 'preprocessor_config.json'),
    JSON.stringify({
      min_pixels: 3136,
      max_pixels: 12845056,
      patch_size: 14,
      temporal_patch_size: 2,
      merge_size: 2,
      image_mean: mean,
      image_std: std,
      image_processor_type: 'Qwen2VLImageProcessor',
      processor_class: 'Qwen2VLProcessor',
    }),
  );
  const p = await readPreprocessorConfig(dir);
  assert.deepEqual(
    [p.min_pixels, p.max_pixels, p.patch_size, p.temporal_patch_size, p.merge_size],
    [3136, 12845056, 14, 2, 2],
  );
  assert.deepEqual(p.image_mean, mean);
  assert.deepEqual(p.image_std, std);
  assert.equal(p.rescale_factor, 1 / 255);
  assert.equal(p.extra.image_processor_type, 'Qwen2VLImageProcessor');
  const newer = parsePreprocessorConfig({
    size: { shortest_edge: 200704, longest_edge: 1003520 },
    image_mean: mean,
    image_std: std,
  });
  assert.deepEqual([newer.min_pixels, newer.max_pixels], [200704, 1003520]);
  assert.throws(
    () => parsePreprocessorConfig({ min_pixels: 3136, size: { shortest_edge: 4096 } }),
    /contradictory pixel bounds: min_pixels 3136 but size.shortest_edge 4096/,
  );
  assert.throws(
    () => parsePreprocessorConfig({ min_pixels: 10, max_pixels: 5 }),
    /min_pixels 10 exceeds max_pixels 5/,
  );
  assert.throws(
    () => parsePreprocessorConfig({ image_mean: [0.5, 0.5] }),
    /"image_mean" must have 3 entries/,
  );
  await assert.rejects(readPreprocessorConfig(join(dir, 'nope')), /preprocessor_config.json: file not found/);
});
