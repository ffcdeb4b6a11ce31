// Qwen2-VL / Vamba config.json: both transformers layouts, the class defaults, what is checked and what is not.
// Expected values are written out by hand from the fixture files and transformers' config classes.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import { ModelError } from '../../src/errors.js';
import { RandomWeights } from '../../src/io/random-weights.js';
import {
  parseQwen2VLConfig,
  type Qwen2VLConfig,
  readQwen2VLConfig,
} from '../../src/models/qwen2vl/config.js';
import { Qwen2VL, type Qwen2VLInputs } from '../../src/models/qwen2vl/model.js';
import { loadQwen2VLParams, qwen2vlSpecs } from '../../src/models/qwen2vl/weights.js';
import { CONFIG_FIXTURES, configJson } from './config-fixtures.js';
import { FIXTURES } from './qwen2vl-fixtures.js';

const dir = await mkdtemp(join(tmpdir(), 'longshot-qwen2vl-cfg-'));
after(() => rm(dir, { recursive: true, force: true }));

type Json = Record<string, unknown>;
const clone = (j: Json): Json => structuredClone(j);

// The tiny model of v4-flat-small-vocab and v5-small-vocab (the same model in the two layouts).
const SMALL_TEXT = {
  vocab_size: 1000,
  hidden_size: 24,
  intermediate_size: 40,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  head_dim: 12,
  rms_norm_eps: 1e-5,
  rope_theta: 1e6,
  mrope_section: [2, 2, 2],
  max_position_embeddings: 32768,
  tie_word_embeddings: false,
  hidden_act: 'silu',
};
const SMALL_VISION = {
  depth: 1,
  embed_dim: 16,
  num_heads: 2,
  mlp_ratio: 2,
  hidden_size: 24,
  patch_size: 14,
  temporal_patch_size: 2,
  spatial_merge_size: 2,
  in_channels: 3,
  hidden_act: 'quick_gelu',
  rope_theta: 10000,
};
const SMALL_IDS = {
  bos_token_id: 151643,
  eos_token_id: [151645],
  pad_token_id: null,
  vision_start_token_id: 995,
  vision_end_token_id: 996,
  vision_token_id: 997,
  image_token_id: 998,
  video_token_id: 999,
};

const idsOf = (c: ReturnType<typeof parseQwen2VLConfig>) => ({
  bos_token_id: c.bos_token_id,
  eos_token_id: c.eos_token_id,
  pad_token_id: c.pad_token_id,
  vision_start_token_id: c.vision_start_token_id,
  vision_end_token_id: c.vision_end_token_id,
  vision_token_id: c.vision_token_id,
  image_token_id: c.image_token_id,
  video_token_id: c.video_token_id,
});

test('Qwen2-VL-7B-Instruct (4.x flat, transformers 4.41.2): its sizes, the vision tower from the class defaults', async () => {
  const c = await readQwen2VLConfig(join(CONFIG_FIXTURES, 'qwen2vl-7b-instruct'));
  assert.deepEqual(c.text, {
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
  });
  // vision_config holds only in_chans, model_type and spatial_patch_size: transformers ignores the two old
  // names and takes every size from Qwen2VLVisionConfig's defaults.
  assert.deepEqual(c.vision, {
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
    rope_theta: 10000,
  });
  assert.deepEqual(idsOf(c), {
    bos_token_id: 151643,
    eos_token_id: [151645],
    pad_token_id: null,
    vision_start_token_id: 151652,
    vision_end_token_id: 151653,
    vision_token_id: 151654,
    image_token_id: 151655,
    video_token_id: 151656,
  });
  assert.equal(c.dtype, 'bfloat16');
  assert.deepEqual(c.architectures, ['Qwen2VLForConditionalGeneration']);
  assert.equal(c.use_alpha_balancing, false);
  assert.equal(c.vision_mamba_mixer_config.enable, false);
  // Keys the model does not use are kept, nested ones prefixed.
  assert.equal(c.extra['vision_config.in_chans'], 3);
  assert.equal(c.extra['vision_config.spatial_patch_size'], 14);
  assert.equal(c.extra.initializer_range, 0.02);
  assert.equal(c.extra.use_cache, true);
  assert.equal(c.extra.hidden_size, undefined);
});

test('the same tiny model in the 4.x flat and the 5.x nested layout: equal values, bos/eos outside the vocabulary', () => {
  for (const name of ['v4-flat-small-vocab', 'v5-small-vocab']) {
    const c = parseQwen2VLConfig(configJson(name), name);
    assert.deepEqual(c.text, SMALL_TEXT, name);
    assert.deepEqual(c.vision, SMALL_VISION, name);
    // transformers' default bos/eos (151643/151645) are no rows of a 1000-token vocabulary; nothing looks them
    // up, so they are accepted.
    assert.deepEqual(idsOf(c), SMALL_IDS, name);
    assert.equal(c.dtype, 'float32', name);
  }
  const v5 = parseQwen2VLConfig(configJson('v5-small-vocab'));
  assert.equal(v5.extra['text_config.model_type'], 'qwen2_vl_text');
  assert.equal(v5.extra['vision_config.model_type'], 'qwen2_vl_vision');
  assert.equal(v5.extra['text_config.use_cache'], true);
});

test('a config saved by transformers 5.17 (the tiny-a parity fixture) reads as written', async () => {
  const c = await readQwen2VLConfig(join(FIXTURES, 'tiny-a'));
  assert.deepEqual(
    [c.text.vocab_size, c.text.hidden_size, c.text.num_key_value_heads, c.text.head_dim, c.text.rms_norm_eps],
    [512, 64, 2, 16, 1e-6],
  );
  assert.deepEqual(c.text.mrope_section, [2, 3, 3]);
  assert.deepEqual([c.vision.embed_dim, c.vision.num_heads, c.vision.rope_theta], [32, 2, 10000]);
  assert.deepEqual([c.bos_token_id, c.eos_token_id, c.video_token_id], [505, [506], 504]);
});

test('keys 5.x no longer writes, or never wrote, take the transformers class defaults', () => {
  const j = configJson('v5-small-vocab');
  const text = j.text_config as Json;
  const vision = j.vision_config as Json;
  for (const k of ['rms_norm_eps', 'max_position_embeddings', 'hidden_act', 'bos_token_id', 'eos_token_id'])
    delete text[k];
  delete (text.rope_parameters as Json).rope_theta;
  for (const k of ['rope_parameters', 'hidden_act', 'in_channels', 'patch_size', 'temporal_patch_size'])
    delete vision[k];
  delete j.tie_word_embeddings;
  delete j.dtype;
  delete j.vision_token_id;
  const c = parseQwen2VLConfig(j);
  // Qwen2VLTextConfig: rms_norm_eps 1e-5, max_position_embeddings 32768, silu, rope_theta 1e6, bos/eos
  // 151643/151645, tie_word_embeddings false; Qwen2VLVisionConfig: quick_gelu, 3 channels, 14×14×2 patches,
  // rotary base 10000.
  assert.deepEqual(c.text, SMALL_TEXT);
  assert.deepEqual(c.vision, SMALL_VISION);
  // vision_token_id is no Qwen2VLConfig argument: the Qwen2-VL tokenizer's id stands in.
  assert.deepEqual(idsOf(c), { ...SMALL_IDS, vision_token_id: 151654 });
  assert.equal(c.dtype, null);

  // num_key_value_heads: absent means the class default 8 (which 2 query heads cannot share), null means
  // "as many as the query heads".
  delete text.num_key_value_heads;
  assert.throws(
    () => parseQwen2VLConfig(j),
    /num_attention_heads 2 is not a multiple of num_key_value_heads 8/,
  );
  text.num_key_value_heads = null;
  assert.equal(parseQwen2VLConfig(j).text.num_key_value_heads, 2);

  // An empty config is Qwen2VLConfig()'s: the 72B text sizes, the 7B vision tower. transformers itself has no
  // mrope_section default (its attention looks the key up), so neither do we.
  assert.throws(() => parseQwen2VLConfig({ model_type: 'qwen2_vl' }), /"mrope_section" is missing/);
  const d = parseQwen2VLConfig({
    rope_scaling: { type: 'mrope', mrope_section: [16, 24, 24] },
    vision_config: { hidden_size: 8192 },
  });
  assert.deepEqual(
    [d.text.vocab_size, d.text.hidden_size, d.text.intermediate_size, d.text.num_hidden_layers],
    [152064, 8192, 29568, 80],
  );
  assert.deepEqual([d.text.num_attention_heads, d.text.num_key_value_heads, d.text.head_dim], [64, 8, 128]);
  assert.deepEqual([d.vision.depth, d.vision.embed_dim, d.vision.num_heads], [32, 1280, 16]);
  assert.deepEqual([d.image_token_id, d.video_token_id, d.vision_start_token_id], [151655, 151656, 151652]);
});

test('text_config alone describes the language model; stale top-level copies are extras', () => {
  // A 5.x config derived from a 4.x one can keep the old flat keys beside text_config;
  // transformers builds the text model from text_config only.
  const j = {
    ...configJson('v5-small-vocab'),
    hidden_size: 1536,
    vocab_size: 151936,
    rope_scaling: { type: 'mrope', mrope_section: [16, 24, 24] },
    torch_dtype: 'bfloat16',
  };
  const c = parseQwen2VLConfig(j);
  assert.deepEqual(c.text, SMALL_TEXT);
  assert.equal(c.dtype, 'float32'); // `dtype` first, as 5.x reads it
  assert.equal(c.extra.hidden_size, 1536);
  assert.deepEqual(c.extra.rope_scaling, { type: 'mrope', mrope_section: [16, 24, 24] });
  // rope_scaling (the 4.x name) wins over rope_parameters when a text config has both, as in transformers.
  const both = clone(configJson('v5-small-vocab'));
  (both.text_config as Json).rope_scaling = { type: 'mrope', mrope_section: [1, 2, 3], rope_theta: 5e5 };
  const r = parseQwen2VLConfig(both).text;
  assert.deepEqual([r.mrope_section, r.rope_theta], [[1, 2, 3], 5e5]);
  // A head_dim key equal to hidden_size / heads is harmless (one that differs is refused, see below).
  const hd = clone(configJson('v5-small-vocab'));
  (hd.text_config as Json).head_dim = 12;
  assert.equal(parseQwen2VLConfig(hd).text.head_dim, 12);
});

test('Vamba config: the five extras, mixer defaults from mamba_ssm, Python Infinity accepted', async () => {
  const vamba = {
    ...configJson('qwen2vl-7b-instruct'),
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

test('configs the model cannot run are ModelErrors naming the key and the file', async () => {
  const bad = (edit: (j: Json) => void, pattern: RegExp) => {
    const j = clone(configJson('v5-small-vocab'));
    edit(j);
    assert.throws(
      () => parseQwen2VLConfig(j, 'ckpt/config.json'),
      (e) => e instanceof ModelError && pattern.test(e.message) && e.message.includes('ckpt/config.json'),
      pattern.source,
    );
  };
  const text = (patch: Json) => (j: Json) => Object.assign(j.text_config as Json, patch);
  const vision = (patch: Json) => (j: Json) => Object.assign(j.vision_config as Json, patch);
  const rope = (patch: Json) => (j: Json) =>
    Object.assign((j.text_config as Json).rope_parameters as Json, patch);

  bad(text({ hidden_size: 25 }), /text_config.hidden_size 25 is not divisible by num_attention_heads 2/);
  bad(
    text({ num_attention_heads: 4, num_key_value_heads: 3 }),
    /num_attention_heads 4 is not a multiple of num_key_value_heads 3/,
  );
  bad(text({ num_key_value_heads: 0 }), /text_config.num_key_value_heads must be positive \(got 0\)/);
  bad(text({ vocab_size: 0 }), /text_config.vocab_size must be positive/);
  bad(text({ num_hidden_layers: 2.5 }), /"num_hidden_layers" must be a non-negative integer/);
  bad(text({ rms_norm_eps: 'small' }), /"rms_norm_eps" must be a number/);
  bad(rope({ mrope_section: [2, 2, 1] }), /mrope_section \[2, 2, 1\] must sum to head_dim\/2 = 6/);
  bad(rope({ mrope_section: [] }), /mrope_section \[\] must be a list of non-negative integers/);
  bad(rope({ mrope_section: [7, -1] }), /mrope_section \[7, -1\] must be a list of non-negative integers/);
  bad(
    rope({ mrope_section: [3, 1, 1, 1] }),
    /mrope_section \[3, 1, 1, 1\] has 4 sections; longshot supports 1 to 3/,
  );
  // meta-5.17.json probes: transformers builds these but runs neither text nor images.
  bad(text({ head_dim: 64 }), /text_config.head_dim 64 ≠ hidden_size \/ num_attention_heads = 12/);
  bad(rope({ rope_type: 'yarn', factor: 4 }), /rope_parameters: rope type "yarn" is not supported/);
  bad(rope({ rope_theta: 0 }), /rope_theta must be positive/);
  bad(
    text({ use_sliding_window: true, layer_types: ['full_attention', 'sliding_attention'] }),
    /sliding-window attention/,
  );
  bad(vision({ depth: 0 }), /vision_config.depth must be positive/);
  bad(
    vision({ rope_parameters: { rope_type: 'yarn' } }),
    /rope type "yarn" is not supported \(the vision tower/,
  );
  bad((j) => Object.assign(j, { model_type: 'llava' }), /model_type "llava" is not a Qwen2-VL/);
  bad(
    (j) => Object.assign(j, { vision_mamba_mixer_config: { enable: true, headdim: 5 } }),
    /d_ssm 48 is not divisible by headdim 5/,
  );

  // From a file, the error names the file.
  await writeFile(
    join(dir, 'config.json'),
    JSON.stringify({ ...configJson('v5-small-vocab'), model_type: 'llava' }),
  );
  await assert.rejects(
    readQwen2VLConfig(dir),
    (e) =>
      e instanceof ModelError &&
      e.message.startsWith(join(dir, 'config.json')) &&
      /model_type "llava"/.test(e.message),
  );
});

/** A model of the config's shapes with seeded random weights, disposed after `use`. */
async function withRandomModel<T>(config: Qwen2VLConfig, use: (m: Qwen2VL) => Promise<T>): Promise<T> {
  const backend = cpuBackend();
  const source = new RandomWeights(qwen2vlSpecs(config), { seed: 3, std: 0.3 });
  const params = await loadQwen2VLParams(source, config, backend, 'f32', 'random');
  source[Symbol.dispose]();
  const model = Qwen2VL.fromParams(config, params, backend, 'f32');
  try {
    return await use(model);
  } finally {
    model[Symbol.dispose]();
  }
}

const PIXELS = new Float32Array(4 * 1176).map((_, i) => Math.sin(i * 0.37));
const TEXT_PROMPT: Qwen2VLInputs = { inputIds: [11, 12, 13, 14] };
// One 2×2-patch image merges into one token between vision start and end.
const IMAGE_PROMPT: Qwen2VLInputs = {
  inputIds: [11, 995, 998, 996, 12],
  pixelValues: PIXELS,
  imageGridThw: [[1, 2, 2]],
};

async function logitsOf(model: Qwen2VL, p: Qwen2VLInputs): Promise<Float32Array> {
  const logits = model.forward(p);
  assert.deepEqual(logits.shape, [p.inputIds.length, 1000]);
  const data = (await logits.data()) as Float32Array;
  logits.dispose();
  return data;
}

/** Logits of a text prompt and of a one-image prompt, from seeded random weights of the config's shapes. */
function randomModelLogits(config: Qwen2VLConfig): Promise<{ text: Float32Array; image: Float32Array }> {
  return withRandomModel(config, async (m) => ({
    text: await logitsOf(m, TEXT_PROMPT),
    image: await logitsOf(m, IMAGE_PROMPT),
  }));
}

test('the tiny model runs from either layout with the same logits; the vision rotary base comes from the config', async () => {
  const v4 = await randomModelLogits(parseQwen2VLConfig(configJson('v4-flat-small-vocab')));
  const v5 = await randomModelLogits(parseQwen2VLConfig(configJson('v5-small-vocab')));
  assert.ok(v4.text.every(Number.isFinite) && v4.image.every(Number.isFinite));
  assert.deepEqual(v5.text, v4.text);
  assert.deepEqual(v5.image, v4.image);
  // Another vision rope_theta changes the image tokens only.
  const j = configJson('v5-small-vocab');
  ((j.vision_config as Json).rope_parameters as Json).rope_theta = 100;
  const other = await randomModelLogits(parseQwen2VLConfig(j));
  assert.deepEqual(other.text, v4.text);
  assert.notDeepEqual(other.image, v4.image);
});

test('configs transformers 5.17 builds and runs for text (meta-5.17.json probes) load; images/videos are refused at use', async () => {
  const base = await randomModelLogits(parseQwen2VLConfig(configJson('v5-small-vocab')));
  const variant = (edit: (j: Json) => void) => {
    const j = clone(configJson('v5-small-vocab'));
    edit(j);
    return parseQwen2VLConfig(j);
  };
  const refuses = (m: Qwen2VL, p: Qwen2VLInputs, pattern: RegExp) =>
    assert.throws(
      () => m.forward(p),
      (e) => e instanceof ModelError && pattern.test(e.message),
      pattern.source,
    );
  const videoPrompt = (pad: number): Qwen2VLInputs => ({
    inputIds: [11, 995, pad, 996, 12],
    pixelValuesVideos: PIXELS,
    videoGridThw: [[1, 2, 2]],
  });

  // video_token_id outside the vocabulary: transformers runs text and images; the id is looked up for videos.
  await withRandomModel(
    variant((j) => Object.assign(j, { video_token_id: 5000 })),
    async (m) => {
      assert.deepEqual(await logitsOf(m, TEXT_PROMPT), base.text);
      assert.deepEqual(await logitsOf(m, IMAGE_PROMPT), base.image);
      refuses(
        m,
        videoPrompt(5000),
        /cannot take a video: video_token_id 5000 is outside the vocabulary \(vocab_size 1000\)/,
      );
    },
  );
  // The same spirit for the image and vision-start ids.
  await withRandomModel(
    variant((j) => Object.assign(j, { image_token_id: 5000 })),
    async (m) => {
      assert.deepEqual(await logitsOf(m, TEXT_PROMPT), base.text);
      refuses(m, IMAGE_PROMPT, /cannot take an image: image_token_id 5000 is outside the vocabulary/);
      // Videos (id 999) still run.
      const video = await logitsOf(m, videoPrompt(999));
      assert.ok(video.every(Number.isFinite));
    },
  );
  await withRandomModel(
    variant((j) => Object.assign(j, { vision_start_token_id: 1001 })),
    async (m) => {
      assert.deepEqual(await logitsOf(m, TEXT_PROMPT), base.text);
      refuses(m, IMAGE_PROMPT, /cannot take an image: vision_start_token_id 1001 is outside the vocabulary/);
      refuses(m, videoPrompt(999), /cannot take a video: vision_start_token_id 1001 is outside/);
    },
  );

  // A vision head size the 2-D rotary cannot split (12 / 2 = 6) and a merger narrower or wider than the text
  // model: the weights load, text runs, pixels are refused (transformers' image prompts fail there too).
  const vision = (patch: Json) => variant((j) => Object.assign(j.vision_config as Json, patch));
  await withRandomModel(vision({ embed_dim: 12, num_heads: 2 }), async (m) => {
    assert.equal(m.visual.blocks[0].attn.qkv.inFeatures, 12);
    assert.ok((await logitsOf(m, TEXT_PROMPT)).every(Number.isFinite));
    refuses(
      m,
      IMAGE_PROMPT,
      /cannot take an image: vision_config embed_dim 12 \/ num_heads 2 is not an integer head size divisible by 4/,
    );
    // Through the tower directly (as Vamba's encoder calls it): the same reason.
    assert.throws(
      () => m.encodeVision(PIXELS, [[1, 2, 2]]),
      /Qwen2-VL vision tower: .*runs text prompts only/,
    );
  });
  await withRandomModel(vision({ hidden_size: 32 }), async (m) => {
    assert.ok((await logitsOf(m, TEXT_PROMPT)).every(Number.isFinite)); // other random draws: other logits
    refuses(m, IMAGE_PROMPT, /vision_config.hidden_size 32 \(merger output\) ≠ hidden_size 24/);
    refuses(m, videoPrompt(999), /cannot take a video: vision_config.hidden_size 32/);
  });
});
